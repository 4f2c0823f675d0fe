"""Concurrent events over a real port, on one Redis and on a Redis Cluster: no update of one
customer is lost, customers do not interfere with each other, and two servers sharing the Redis
see one state.

The commit is a compare-and-set; a call that keeps meeting newer versions ends ABORTED (after
`conflict_retries` re-decisions) and has changed nothing, so the caller's retry, with the same
event id, applies it exactly once.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import ON_EACH_REDIS, Service, StartService
from tests.service.clients import (
    customer_journey,
    decide_request,
    first_try,
    until_applied,
)

pytestmark = [pytest.mark.service, ON_EACH_REDIS]


async def test_a_burst_for_one_customer_counts_every_answered_event_and_nothing_else(
    service: Service,
) -> None:
    requests = [decide_request(f"view-{i}", "cat") for i in range(50)]
    first = await asyncio.gather(*(first_try(service.stub, r) for r in requests))
    answered = [d for d in first if d is not None]
    assert answered and not any(d.degraded or d.duplicate for d in answered)
    journey = await customer_journey(service.stub, "cat")
    # An ABORTED call wrote nothing; every OK answer was written exactly once.
    assert journey.counters["product_views_7d"] == len(answered)


async def test_fifty_concurrent_events_for_one_customer_lose_no_update(service: Service) -> None:
    requests = [decide_request(f"view-{i}", "dan") for i in range(50)]
    decisions = await asyncio.gather(*(until_applied(service.stub, r) for r in requests))
    assert sorted(d.event_id for d in decisions) == sorted(r.event.event_id for r in requests)
    assert not any(d.degraded for d in decisions)
    journey = await customer_journey(service.stub, "dan")
    assert journey.counters["product_views_7d"] == 50
    assert journey.stage == "consideration"
    # The third view to be committed moved the customer on; no other answer claims a move.
    moves = [d.journeys[0].transition for d in decisions if d.journeys[0].changed]
    assert moves == ["started_comparing"]


async def test_concurrent_retries_of_one_event_id_count_it_once(service: Service) -> None:
    same = decide_request("view-once", "eve")
    decisions = await asyncio.gather(*(until_applied(service.stub, same) for _ in range(20)))
    assert sum(not d.duplicate for d in decisions) == 1
    assert {d.event_id for d in decisions} == {"view-once"}
    assert (await customer_journey(service.stub, "eve")).counters["product_views_7d"] == 1


async def test_concurrent_events_of_different_customers_do_not_interfere(
    service: Service,
) -> None:
    # Customer i views i+1 products and, when i is even, adds one to the cart; all interleaved.
    customers = [f"shopper-{i}" for i in range(10)]
    requests = [
        decide_request(f"{customer}-view-{n}", customer)
        for n in range(10)
        for i, customer in enumerate(customers)
        if n <= i
    ]
    requests += [decide_request(f"{c}-cart", c, "add_to_cart") for c in customers[::2]]
    await asyncio.gather(*(until_applied(service.stub, r) for r in requests))
    for i, customer in enumerate(customers):
        journey = await customer_journey(service.stub, customer)
        assert journey.counters["product_views_7d"] == i + 1, customer
        assert journey.counters["cart_adds_7d"] == (1 if i % 2 == 0 else 0), customer
        comparing = i + 1 >= 3 or i % 2 == 0
        assert journey.stage == ("consideration" if comparing else "awareness"), customer


async def test_two_servers_sharing_the_redis_lose_no_update(start_service: StartService) -> None:
    customers = [f"shared-{i}" for i in range(6)]  # on a cluster, spread over the masters
    async with start_service() as one, start_service() as two:
        servers = (one, two)
        requests = [
            (servers[(n + i) % 2], decide_request(f"{customer}-view-{n}", customer))
            for n in range(10)
            for i, customer in enumerate(customers)
        ]
        # The same event id sent to both servers at once is applied once.
        repeats = [
            decide_request(f"{customer}-cart", customer, "add_to_cart") for customer in customers
        ]
        calls = [until_applied(server.stub, request) for server, request in requests]
        calls += [until_applied(server.stub, request) for request in repeats for server in servers]
        decisions = await asyncio.gather(*calls)
        assert not any(d.degraded for d in decisions)
        assert sum(d.duplicate for d in decisions[len(requests) :]) == len(customers)
        for customer in customers:
            for server in servers:  # both see the same, complete state
                journey = await customer_journey(server.stub, customer)
                assert journey.counters["product_views_7d"] == 10, customer
                assert journey.counters["cart_adds_7d"] == 1, customer
