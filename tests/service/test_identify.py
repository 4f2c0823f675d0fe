"""Identify, GetCustomer and ForgetCustomer over a real port and a real Redis: traits, identity
stitching of an anonymous visitor, and erasure that leaves no key behind."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import redis.asyncio as redis

from journeyman.v1 import journeyman_pb2 as pb
from server.store.redis_store import Store
from tests.conftest import Service

pytestmark = pytest.mark.service


def _event(event_id: str, type_: str, *, customer: str = "", visitor: str = "") -> pb.DecideRequest:
    event = pb.Event(
        event_id=event_id, customer_id=customer, anonymous_id=visitor, type=type_, channel="web"
    )
    return pb.DecideRequest(event=event)


async def _decide(service: Service, request: pb.DecideRequest) -> pb.Decision:
    decision = (await service.stub.Decide(request)).decision
    assert not decision.degraded
    return decision


async def _customer(service: Service, customer: str) -> pb.CustomerView:
    return (await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id=customer))).customer


async def _keys(client: redis.Redis, pattern: str) -> list[bytes]:
    return [key async for key in client.scan_iter(match=pattern, count=1000)]


def _score(decision: pb.Decision, action: str) -> float:
    (offered,) = [a for a in decision.actions if a.action == action]
    return offered.score


async def test_identify_sets_traits_that_get_customer_shows(service: Service) -> None:
    traits = {
        "tier": pb.Value(string_value="gold"),
        "email_opt_in": pb.Value(bool_value=True),
        "age": pb.Value(number_value=41.0),
    }
    response = await service.stub.Identify(pb.IdentifyRequest(customer_id="fay", traits=traits))
    assert not response.merged
    assert dict(response.customer.traits) == traits
    assert dict((await _customer(service, "fay")).traits) == traits
    (journey,) = response.customer.journeys
    assert list(journey.segments) == ["vip", "newsletter"]  # gold, and opted in to e-mail


async def test_a_vip_trait_set_by_identify_boosts_free_shipping(service: Service) -> None:
    plain = await _decide(service, _event("cart-1", "add_to_cart", customer="gus"))
    gold = pb.Value(string_value="gold")
    await service.stub.Identify(pb.IdentifyRequest(customer_id="hal", traits={"tier": gold}))
    vip = await _decide(service, _event("cart-1", "add_to_cart", customer="hal"))
    # retail.yaml: free_shipping has priority 50 and `boosts: segment vip, add 20`.
    assert _score(vip, "free_shipping") == _score(plain, "free_shipping") + 20
    assert vip.actions[0].action == "free_shipping"


async def test_later_traits_are_added_to_and_overwrite_earlier_ones(service: Service) -> None:
    first = {"tier": pb.Value(string_value="silver"), "city": pb.Value(string_value="Oslo")}
    await service.stub.Identify(pb.IdentifyRequest(customer_id="ida", traits=first))
    later = {"tier": pb.Value(string_value="platinum")}
    await service.stub.Identify(pb.IdentifyRequest(customer_id="ida", traits=later))
    traits = dict((await _customer(service, "ida")).traits)
    assert traits == {"tier": later["tier"], "city": first["city"]}


async def test_identify_merges_an_anonymous_visitors_journey_into_the_customer(
    service: Service, redis_client: redis.Redis, key_prefix: str
) -> None:
    await _decide(service, _event("k1", "product_view", customer="jan"))
    for i in range(3):  # three views: the visitor moves on to consideration
        await _decide(service, _event(f"a{i}", "product_view", visitor="visitor-7"))
    await _decide(service, _event("a3", "add_to_cart", visitor="visitor-7"))
    assert await _keys(redis_client, f"{key_prefix}{{a:visitor-7}}*")
    assert (await _customer(service, "jan")).journeys[0].stage == "awareness"

    response = await service.stub.Identify(
        pb.IdentifyRequest(customer_id="jan", anonymous_id="visitor-7")
    )

    assert response.merged
    (journey,) = response.customer.journeys
    assert journey.stage == "consideration"  # the stage further along the journey is kept
    assert journey.counters["product_views_7d"] == 4  # 1 known + 3 anonymous
    assert journey.counters["cart_adds_7d"] == 1
    assert (await _customer(service, "jan")).journeys[0] == journey
    assert await _keys(redis_client, f"{key_prefix}{{a:visitor-7}}*") == []
    # The customer goes on from the merged journey.
    after = await _decide(service, _event("k2", "checkout_started", customer="jan"))
    assert after.journeys[0].previous_stage == "consideration"
    assert after.journeys[0].stage == "purchase"


async def test_a_merged_visitors_event_id_is_still_recognised_as_a_retry(
    service: Service,
) -> None:
    await _decide(service, _event("a1", "add_to_cart", visitor="visitor-8"))
    await service.stub.Identify(pb.IdentifyRequest(customer_id="kim", anonymous_id="visitor-8"))
    # The visitor's decisions were forgotten with its keys, but the merged state remembers the
    # event id: the same event, now sent for the customer, changes nothing.
    again = (await service.stub.Decide(_event("a1", "add_to_cart", customer="kim"))).decision
    assert again.duplicate and not again.degraded and not again.actions
    assert (await _customer(service, "kim")).journeys[0].counters["cart_adds_7d"] == 1


async def test_identify_with_an_unknown_visitor_merges_nothing(service: Service) -> None:
    await _decide(service, _event("k1", "add_to_cart", customer="lea"))
    response = await service.stub.Identify(
        pb.IdentifyRequest(customer_id="lea", anonymous_id="never-seen")
    )
    assert not response.merged
    assert response.customer.journeys[0].counters["cart_adds_7d"] == 1


async def test_forget_customer_deletes_every_key_and_the_customer_starts_afresh(
    service: Service, redis_client: redis.Redis, key_prefix: str
) -> None:
    gold = pb.Value(string_value="gold")
    await service.stub.Identify(pb.IdentifyRequest(customer_id="max", traits={"tier": gold}))
    await _decide(service, _event("f1", "add_to_cart", customer="max"))
    await _decide(service, _event("f2", "checkout_started", customer="max"))
    pattern = f"{key_prefix}{{c:max}}*"
    assert len(await _keys(redis_client, pattern)) == 1  # the state, its decisions inside

    forgotten = await service.stub.ForgetCustomer(pb.ForgetCustomerRequest(customer_id="max"))

    assert forgotten.deleted_keys == 1
    assert await _keys(redis_client, pattern) == []
    view = await _customer(service, "max")
    assert view.journeys[0].stage == "awareness" and not view.traits and view.last_event_ms == 0
    assert set(view.journeys[0].counters.values()) == {0.0}
    # Its old event ids are forgotten too: the same event is new again, not a replay.
    again = await _decide(service, _event("f1", "add_to_cart", customer="max"))
    assert not again.duplicate
    assert again.journeys[0].previous_stage == "awareness"
    assert again.journeys[0].stage == "consideration"


async def test_forgetting_an_unknown_customer_deletes_nothing(service: Service) -> None:
    forgotten = await service.stub.ForgetCustomer(pb.ForgetCustomerRequest(customer_id="nobody"))
    assert forgotten.deleted_keys == 0


async def _visitor_views(service: Service, visitor: str, first: int, count: int) -> int:
    """`count` concurrent product views by `visitor`; how many were stored (answered, not
    degraded, not a replay)."""

    async def view(n: int) -> bool:
        request = _event(f"{visitor}-{n}", "product_view", visitor=visitor)
        decision = (await service.stub.Decide(request)).decision
        return not decision.degraded and not decision.duplicate

    results = await asyncio.gather(
        *(view(n) for n in range(first, first + count)), return_exceptions=True
    )
    for result in results:  # ABORTED is allowed (nothing stored); anything else is not
        if isinstance(result, grpc.aio.AioRpcError):
            assert result.code() is grpc.StatusCode.ABORTED, result
    return sum(result is True for result in results)


async def test_visitor_events_racing_identify_are_merged_or_kept_never_lost(
    service: Service,
) -> None:
    for attempt in range(30):  # the race needs an event to land in a short window
        visitor, customer = f"racer-{attempt}", f"known-{attempt}"
        stored = await _visitor_views(service, visitor, 0, 1)
        identify = service.stub.Identify(
            pb.IdentifyRequest(customer_id=customer, anonymous_id=visitor)
        )
        racing, _ = await asyncio.gather(_visitor_views(service, visitor, 1, 30), identify)
        stored += racing
        # Whatever the visitor did after the merge is merged by a second Identify.
        await service.stub.Identify(pb.IdentifyRequest(customer_id=customer, anonymous_id=visitor))
        counted = (await _customer(service, customer)).journeys[0].counters["product_views_7d"]
        assert counted == stored, f"attempt {attempt}: {stored - counted:g} stored views lost"


async def test_forgotten_and_merged_customers_leave_the_stage_counts(
    service: Service, store: Store
) -> None:
    await _decide(service, _event("s1", "product_view", visitor="visitor-9"))
    await _decide(service, _event("s2", "product_view", customer="ned"))
    await service.running.decider.drain()  # the counts are written after the answer
    assert await store.stage_counts("retail") == {"awareness": 2}
    await service.stub.Identify(pb.IdentifyRequest(customer_id="ned", anonymous_id="visitor-9"))
    await service.running.decider.drain()  # moves outside decisions are counted alike
    assert await store.stage_counts("retail") == {"awareness": 1}  # one customer left
    await service.stub.ForgetCustomer(pb.ForgetCustomerRequest(customer_id="ned"))
    await service.running.decider.drain()
    assert await store.stage_counts("retail") in ({}, {"awareness": 0})
