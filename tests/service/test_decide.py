"""Decide over a real port and a real Redis: the journey moves as the rules say, and sticks."""

from __future__ import annotations

import json
from dataclasses import replace

import grpc
import pytest

from journeyman.v1 import journeyman_pb2 as pb
from server.core.config import Settings
from tests.conftest import Service

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
    # Where the customer came from, newest first, and the segments their traits put them in.
    assert [e.stage for e in journey.recent_stages] == ["purchase", "consideration", "awareness"]
    assert journey.recent_stages[0].entered_ms >= journey.recent_stages[-1].entered_ms > 0
    assert list(journey.segments) == []  # no tier, no e-mail opt-in


async def test_a_repeated_event_id_returns_the_original_decision_and_changes_nothing(
    service: Service,
) -> None:
    first = (await service.stub.Decide(_request("dup-1", "ben", "add_to_cart"))).decision
    again = (await service.stub.Decide(_request("dup-1", "ben", "add_to_cart"))).decision
    assert again.duplicate and not first.duplicate
    assert list(again.actions) == list(first.actions) and again.journeys == first.journeys
    customer = (await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="ben"))).customer
    assert customer.journeys[0].stage == "consideration"


async def test_a_repeat_older_than_the_decisions_kept_is_still_not_applied_twice(
    service: Service, service_settings: Settings
) -> None:
    """Within the dedupe window (16) but before the decisions kept (8): the repeat changes
    nothing and is answered `duplicate` with where the customer stands, without its original
    actions; the same id for another event is still refused."""
    kept, window = service_settings.decisions_kept, service_settings.dedupe_window
    assert 0 < kept < window
    events = [_request(f"old-{i}", "oda", "add_to_cart") for i in range(kept + 1)]
    answers = [(await service.stub.Decide(request)).decision for request in events]
    assert answers[0].actions  # an offer the replay could not bring back
    oldest, newest = [(await service.stub.Decide(events[i])).decision for i in (0, kept)]
    assert oldest.duplicate and not oldest.actions
    assert oldest.journeys[0].stage == answers[-1].journeys[0].stage
    assert newest.duplicate and list(newest.actions) == list(answers[-1].actions)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await service.stub.Decide(_request("old-0", "oda", "purchase", amount=10.0))
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    customer = (await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="oda"))).customer
    assert customer.journeys[0].counters["cart_adds_7d"] == kept + 1


async def test_an_event_id_reused_for_a_different_event_is_refused(service: Service) -> None:
    await service.stub.Decide(_request("reuse-1", "cid", "add_to_cart"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await service.stub.Decide(_request("reuse-1", "cid", "purchase", amount=10.0))
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "already used for a different event" in (error.value.details() or "")
    customer = (await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="cid"))).customer
    assert customer.journeys[0].counters["purchases_365d"] == 0


DAY_MS = 86_400_000
REPLAYED_MS = 1_317_422_324_546  # 2011-09-30, a time from the BPIC 2012 log


def _at(event_id: str, customer: str, type_: str, timestamp_ms: int) -> pb.DecideRequest:
    request = _request(event_id, customer, type_)
    request.event.timestamp_ms = timestamp_ms
    return request


async def test_a_customer_never_seen_is_not_known_and_a_stored_one_is(service: Service) -> None:
    unseen = await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="nobody"))
    assert not unseen.known
    assert unseen.customer.journeys[0].stage == "awareness"  # what a newcomer would see
    await service.stub.Decide(_request("k1", "kai", "add_to_cart"))
    seen = await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="kai"))
    assert seen.known and seen.customer.journeys[0].stage == "consideration"
    await service.stub.ForgetCustomer(pb.ForgetCustomerRequest(customer_id="kai"))
    forgotten = await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="kai"))
    assert not forgotten.known


async def test_a_replayed_customer_is_read_at_the_replays_own_time(service: Service) -> None:
    await service.stub.Decide(_at("r1", "rae", "add_to_cart", REPLAYED_MS))
    now = await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="rae"))
    then = await service.stub.GetCustomer(
        pb.GetCustomerRequest(customer_id="rae", as_of_ms=REPLAYED_MS + DAY_MS)
    )
    # A 7-day window over an event of 2011 is empty today, and held it the day after.
    assert now.customer.journeys[0].counters["cart_adds_7d"] == 0
    assert then.customer.journeys[0].counters["cart_adds_7d"] == 1
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="rae", as_of_ms=-5))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_a_late_event_is_applied_and_answered_at_the_last_events_time(
    service: Service,
) -> None:
    first = (await service.stub.Decide(_at("l1", "lee", "page_view", REPLAYED_MS))).decision
    late = await service.stub.Decide(_at("l2", "lee", "page_view", REPLAYED_MS - DAY_MS))
    assert first.decided_at_ms == REPLAYED_MS
    assert late.decision.decided_at_ms == REPLAYED_MS  # the customer's clock never runs back


@pytest.fixture
def service_settings(service_settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The conftest's settings (a key prefix of the test's own, deleted after it); a test may
    remember fewer event ids (an indirect parameter: the dedupe window)."""
    window = getattr(request, "param", service_settings.dedupe_window)
    kept = min(window, service_settings.decisions_kept)
    return replace(service_settings, dedupe_window=window, decisions_kept=kept)


@pytest.mark.parametrize("service_settings", [4], indirect=True)
async def test_an_event_id_older_than_the_dedupe_window_is_treated_as_new(
    service: Service,
) -> None:
    """With a window of 4, the 1st of 6 events sent again is a new event, applied, not a
    duplicate of one the engine happens to remember (it keeps up to 16 ids)."""
    for i in range(6):
        await service.stub.Decide(_request(f"w{i}", "wes", "add_to_cart"))
    again = (await service.stub.Decide(_request("w0", "wes", "add_to_cart"))).decision
    assert not again.duplicate
    customer = (await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="wes"))).customer
    assert customer.journeys[0].counters["cart_adds_7d"] == 7
    recent = (await service.stub.Decide(_request("w5", "wes", "add_to_cart"))).decision
    assert recent.duplicate  # still within the window


async def test_the_content_is_worded_for_the_channel_it_is_delivered_on(service: Service) -> None:
    contents = {}
    for channel in ("email", "web"):
        event = pb.Event(event_id=f"cart-{channel}", customer_id=f"ivy-{channel}",
                         type="add_to_cart", channel=channel)  # fmt: skip
        decision = (await service.stub.Decide(pb.DecideRequest(event=event))).decision
        (offer,) = [a for a in decision.actions if a.action == "free_shipping"]
        contents[channel] = json.loads(offer.content_json)
    assert contents["email"] == {"banner": "free_shipping", "subject": "Your cart ships free today"}
    assert contents["web"] == {"banner": "free_shipping"}
