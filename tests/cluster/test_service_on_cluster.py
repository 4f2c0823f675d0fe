"""The gRPC service over a real 3-master Redis Cluster: SERVING once the cluster answered, a
journey through the stages, a repeated event id. The concurrency cases run on a cluster as on
one Redis (tests/service/test_concurrency.py)."""

from __future__ import annotations

import asyncio

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from journeyman.v1 import journeyman_pb2 as pb
from tests.conftest import Service
from tests.service.clients import (
    customer_journey,
    decide_request,
)

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
    assert forgotten.deleted_keys == 1  # the state, its decisions inside
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
