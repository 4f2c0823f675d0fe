"""The gRPC service over a real 3-master Redis Cluster: the journey, idempotency and concurrency
cases of tests/service, with one server and with two servers sharing the cluster."""

from __future__ import annotations

import asyncio

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from journeyman.v1 import journeyman_pb2 as pb
from tests.cluster.conftest import StartService
from tests.service.clients import (
    customer_journey,
    decide_request,
    first_try,
    until_applied,
)
from tests.service.conftest import Service

pytestmark = pytest.mark.service


async def test_health_says_serving_once_the_cluster_answered(service: Service) -> None:
    await asyncio.wait_for(asyncio.shield(service.running.ready), timeout=10)
    health = health_pb2_grpc.HealthStub(service.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_journey_of_decide_calls_moves_through_the_stages(service: Service) -> None:
    stages = []
    for i, type_ in enumerate(["page_view", "add_to_cart", "checkout_started", "purchase"]):
        decision = (
            await service.stub.Decide(decide_request(f"e{i}", "ann", type_, amount=30.0))
        ).decision
        assert not decision.degraded
        stages.append(decision.journeys[0].stage)
    assert stages == ["awareness", "consideration", "purchase", "purchase"]
    journey = await customer_journey(service.stub, "ann")
    assert journey.stage == "purchase" and journey.counters["cart_adds_7d"] == 1
    assert journey.counters["spend_90d"] == 30.0
    forgotten = await service.stub.ForgetCustomer(pb.ForgetCustomerRequest(customer_id="ann"))
    assert forgotten.deleted_keys == 2
    assert (await customer_journey(service.stub, "ann")).counters["cart_adds_7d"] == 0


async def test_a_repeated_event_id_returns_the_original_decision_and_changes_nothing(
    service: Service,
) -> None:
    first = (await service.stub.Decide(decide_request("dup-1", "ben", "add_to_cart"))).decision
    again = (await service.stub.Decide(decide_request("dup-1", "ben", "add_to_cart"))).decision
    assert again.duplicate and not first.duplicate and not again.degraded
    assert list(again.actions) == list(first.actions) and again.journeys == first.journeys
    journey = await customer_journey(service.stub, "ben")
    assert journey.stage == "consideration" and journey.counters["cart_adds_7d"] == 1


async def test_a_burst_for_one_customer_counts_every_answered_event_and_nothing_else(
    service: Service,
) -> None:
    requests = [decide_request(f"view-{i}", "cat") for i in range(50)]
    first = await asyncio.gather(*(first_try(service.stub, r) for r in requests))
    answered = [d for d in first if d is not None]
    assert answered and not any(d.degraded or d.duplicate for d in answered)
    # An ABORTED call wrote nothing; every OK answer was written exactly once.
    assert (await customer_journey(service.stub, "cat")).counters["product_views_7d"] == len(
        answered
    )


async def test_fifty_concurrent_events_for_one_customer_lose_no_update(service: Service) -> None:
    requests = [decide_request(f"view-{i}", "dan") for i in range(50)]
    decisions = await asyncio.gather(*(until_applied(service.stub, r) for r in requests))
    assert sorted(d.event_id for d in decisions) == sorted(r.event.event_id for r in requests)
    assert not any(d.degraded for d in decisions)
    journey = await customer_journey(service.stub, "dan")
    assert journey.counters["product_views_7d"] == 50
    assert journey.stage == "consideration"
    moves = [d.journeys[0].transition for d in decisions if d.journeys[0].changed]
    assert moves == ["started_comparing"]


async def test_two_servers_sharing_the_cluster_lose_no_update(start_service: StartService) -> None:
    customers = [f"shared-{i}" for i in range(6)]  # spread over the masters by their hash tags
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
