"""RecordResponse over a real port and a real Redis: a response is decided and stored like an
event, converts only the action it names for a `response:` goal, is recorded once however often
it is sent, and a bad request names its field."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from journeyman.v1 import journeyman_pb2 as pb
from tests.conftest import Service

pytestmark = pytest.mark.service


async def _view(service: Service, customer: str) -> pb.Decision:
    event = pb.Event(event_id=f"{customer}-view", customer_id=customer, type="page_view")
    return (await service.stub.Decide(pb.DecideRequest(event=event))).decision


def _click(customer: str, action: str, **fields: str) -> pb.RecordResponseRequest:
    return pb.RecordResponseRequest(
        customer_id=customer, event_id=f"{customer}-view", action=action, response="click",
        **fields,
    )  # fmt: skip


async def _click_row(service: Service) -> pb.ActionGoalReport:
    request = pb.GetActionReportRequest(journey="retail")
    for _ in range(40):  # statistics are flushed every 50 ms
        rows = (await service.stub.GetActionReport(request)).rows
        (row,) = [r for r in rows if (r.action, r.goal) == ("welcome_discount", "click")]
        if row.treated_conversions:
            break
        await asyncio.sleep(0.05)
    return row


async def test_a_click_converts_the_action_clicked_once(service: Service) -> None:
    offered = await _view(service, "ana")
    assert [a.action for a in offered.actions] == ["welcome_discount"]
    first = (await service.stub.RecordResponse(_click("ana", "welcome_discount"))).decision
    assert [(c.action, c.goal, c.treated) for c in first.conversions] == [
        ("welcome_discount", "click", True)
    ]
    again = (await service.stub.RecordResponse(_click("ana", "welcome_discount"))).decision
    assert again.duplicate and list(again.conversions) == list(first.conversions)
    other = (await service.stub.RecordResponse(_click("ana", "free_shipping"))).decision
    assert not other.duplicate and not other.conversions  # never offered free shipping
    row = await _click_row(service)
    assert (row.treated_customers, row.treated_conversions) == (1, 1)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (_click("ana", "no_such_action"), "action"),
        (_click("ana", ""), "action"),
        (_click("ana", "welcome_discount", journey="loan"), "journey"),
        (
            pb.RecordResponseRequest(
                customer_id="ana", action="welcome_discount", response="click"
            ),
            "event_id",
        ),  # fmt: skip
        (
            pb.RecordResponseRequest(
                customer_id="ana", event_id="e", action="welcome_discount", response="clik"
            ),
            "response",
        ),  # fmt: skip
        (
            pb.RecordResponseRequest(event_id="e", action="welcome_discount", response="click"),
            "customer_id",
        ),  # fmt: skip
        (_click("ana", "welcome_discount", response_id="x" * 300), "response_id"),
    ],
)
async def test_a_bad_response_names_its_field(
    service: Service, request_: pb.RecordResponseRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.stub.RecordResponse(request_)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in raised.value.details()
