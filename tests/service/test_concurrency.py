"""Concurrent events over a real port and a real Redis: no update of one customer is lost, and
customers do not interfere with each other.

The commit is a compare-and-set; a call that keeps meeting newer versions ends ABORTED (after
`conflict_retries` re-decisions) and has changed nothing, so the caller's retry, with the same
event id, applies it exactly once.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from journeyman.v1 import journeyman_pb2 as pb
from tests.service.conftest import Service

pytestmark = pytest.mark.service

CLIENT_RETRIES = 50  # far more than any run needs; a bound so a bug cannot spin forever


def _request(event_id: str, customer: str, type_: str = "product_view") -> pb.DecideRequest:
    event = pb.Event(event_id=event_id, customer_id=customer, type=type_, channel="web")
    return pb.DecideRequest(event=event)


async def _first_try(service: Service, request: pb.DecideRequest) -> pb.Decision | None:
    """The decision, or None when the call ended ABORTED (any other error fails the test)."""
    try:
        return (await service.stub.Decide(request, timeout=10)).decision
    except grpc.aio.AioRpcError as error:
        assert error.code() is grpc.StatusCode.ABORTED, error
        return None


async def _until_applied(service: Service, request: pb.DecideRequest) -> pb.Decision:
    """Decide, retrying ABORTED answers as the status message asks."""
    for _ in range(CLIENT_RETRIES):
        decision = await _first_try(service, request)
        if decision is not None:
            return decision
    raise AssertionError(f"{request.event.event_id} still ABORTED after {CLIENT_RETRIES} tries")


async def _journey(service: Service, customer: str) -> pb.CustomerJourney:
    request = pb.GetCustomerRequest(customer_id=customer)
    (journey,) = (await service.stub.GetCustomer(request)).customer.journeys
    return journey


async def test_a_burst_for_one_customer_counts_every_answered_event_and_nothing_else(
    service: Service,
) -> None:
    requests = [_request(f"view-{i}", "cat") for i in range(50)]
    first = await asyncio.gather(*(_first_try(service, r) for r in requests))
    answered = [d for d in first if d is not None]
    assert answered and not any(d.degraded or d.duplicate for d in answered)
    journey = await _journey(service, "cat")
    # An ABORTED call wrote nothing; every OK answer was written exactly once.
    assert journey.counters["product_views_7d"] == len(answered)


async def test_fifty_concurrent_events_for_one_customer_lose_no_update(service: Service) -> None:
    requests = [_request(f"view-{i}", "dan") for i in range(50)]
    decisions = await asyncio.gather(*(_until_applied(service, r) for r in requests))
    assert sorted(d.event_id for d in decisions) == sorted(r.event.event_id for r in requests)
    assert not any(d.degraded for d in decisions)
    journey = await _journey(service, "dan")
    assert journey.counters["product_views_7d"] == 50
    assert journey.stage == "consideration"
    # The third view to be committed moved the customer on; no other answer claims a move.
    moves = [d.journeys[0].transition for d in decisions if d.journeys[0].changed]
    assert moves == ["started_comparing"]


async def test_concurrent_retries_of_one_event_id_count_it_once(service: Service) -> None:
    same = _request("view-once", "eve")
    decisions = await asyncio.gather(*(_until_applied(service, same) for _ in range(20)))
    assert sum(not d.duplicate for d in decisions) == 1
    assert {d.event_id for d in decisions} == {"view-once"}
    assert (await _journey(service, "eve")).counters["product_views_7d"] == 1


async def test_concurrent_events_of_different_customers_do_not_interfere(
    service: Service,
) -> None:
    # Customer i views i+1 products and, when i is even, adds one to the cart; all interleaved.
    customers = [f"shopper-{i}" for i in range(10)]
    requests = [
        _request(f"{customer}-view-{n}", customer)
        for n in range(10)
        for i, customer in enumerate(customers)
        if n <= i
    ]
    requests += [_request(f"{c}-cart", c, "add_to_cart") for c in customers[::2]]
    await asyncio.gather(*(_until_applied(service, r) for r in requests))
    for i, customer in enumerate(customers):
        journey = await _journey(service, customer)
        assert journey.counters["product_views_7d"] == i + 1, customer
        assert journey.counters["cart_adds_7d"] == (1 if i % 2 == 0 else 0), customer
        comparing = i + 1 >= 3 or i % 2 == 0
        assert journey.stage == ("consideration" if comparing else "awareness"), customer
