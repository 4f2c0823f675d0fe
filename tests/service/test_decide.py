"""Decide over a real port and a real Redis: the journey moves as the rules say, and sticks."""

from __future__ import annotations

import grpc
import pytest

from journeyman.v1 import journeyman_pb2 as pb
from tests.service.conftest import Service

pytestmark = pytest.mark.service


def _request(event_id: str, customer: str, type_: str, **properties: float) -> pb.DecideRequest:
    props = {name: pb.Value(number_value=value) for name, value in properties.items()}
    event = pb.Event(
        event_id=event_id, customer_id=customer, type=type_, channel="web", properties=props
    )
    return pb.DecideRequest(event=event)


async def test_a_journey_of_decide_calls_moves_through_the_stages(service: Service) -> None:
    stages = []
    for i, type_ in enumerate(["page_view", "add_to_cart", "checkout_started", "purchase"]):
        response = await service.stub.Decide(_request(f"e{i}", "ann", type_, amount=30.0))
        stages.append(response.decision.journeys[0].stage)
        assert not response.decision.degraded
    assert stages == ["awareness", "consideration", "purchase", "purchase"]
    customer = (await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="ann"))).customer
    (journey,) = customer.journeys
    assert journey.stage == "purchase" and journey.counters["cart_adds_7d"] == 1
    assert journey.counters["spend_90d"] == 30.0


async def test_a_repeated_event_id_returns_the_original_decision_and_changes_nothing(
    service: Service,
) -> None:
    first = (await service.stub.Decide(_request("dup-1", "ben", "add_to_cart"))).decision
    again = (await service.stub.Decide(_request("dup-1", "ben", "add_to_cart"))).decision
    assert again.duplicate and not first.duplicate
    assert list(again.actions) == list(first.actions) and again.journeys == first.journeys
    customer = (await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="ben"))).customer
    assert customer.journeys[0].stage == "consideration"


async def test_an_event_id_reused_for_a_different_event_is_refused(service: Service) -> None:
    await service.stub.Decide(_request("reuse-1", "cid", "add_to_cart"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await service.stub.Decide(_request("reuse-1", "cid", "purchase", amount=10.0))
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "already used for a different event" in (error.value.details() or "")
    customer = (await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="cid"))).customer
    assert customer.journeys[0].counters["purchases_365d"] == 0
