"""Timers against a real Redis and real servers: the abandoned cart fires by itself, once, and
reaches a Subscribe client; two servers never fire one timer twice; an event wins the race."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import grpc
import pytest

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.core.config import Settings
from server.runtime.app import create_server
from server.store.keys import due_shard, timer_member
from server.store.redis_store import Store
from tests.conftest import Service, StartService
from tests.rulesets import CHAINED_TIMERS, from_text

pytestmark = pytest.mark.service

HALF_HOUR_MS = 30 * 60 * 1000


@pytest.fixture
def service_settings(service_settings: Settings) -> Settings:
    return replace(service_settings, timers=1, timer_poll_ms=20, timer_lease_ms=2_000)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _add_to_cart(customer: str, at_ms: int, event_id: str | None = None) -> pb.DecideRequest:
    return pb.DecideRequest(event=pb.Event(
        event_id=event_id or f"{customer}-cart", customer_id=customer, type="add_to_cart",
        channel="web", timestamp_ms=at_ms,
    ))  # fmt: skip


async def _entries(
    service: Service, request: pb.SubscribeRequest, wanted: int, timeout_s: float
) -> list[pb.OutboxEntry]:
    """The first `wanted` entries a Subscribe call delivers, or fewer after `timeout_s`."""
    got: list[pb.OutboxEntry] = []
    call = service.stub.Subscribe(request)

    async def read() -> None:
        async for response in call:
            got.append(response.entry)
            if len(got) >= wanted:
                return

    try:
        await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        pass
    finally:
        call.cancel()
    return got


async def test_an_abandoned_cart_fires_once_and_reaches_subscribers(
    start_service: StartService,
) -> None:
    async with start_service() as first, start_service() as second:
        follower = asyncio.create_task(
            _entries(first, pb.SubscribeRequest(stages=["cart_abandoned"]), 10, timeout_s=4)
        )
        await asyncio.sleep(0.3)  # subscribed before the timers fall due
        customers = [f"cart-{i}" for i in range(20)]
        # Added to the cart 30 minutes ago (past times are accepted): due now.
        at_ms = _now_ms() - HALF_HOUR_MS
        for customer in customers[:10]:
            await first.stub.Decide(_add_to_cart(customer, at_ms))
        for customer in customers[10:]:
            await second.stub.Decide(_add_to_cart(customer, _now_ms()))  # not due for 30 min
        entries = await follower
        fired = first.running.timers, second.running.timers
        assert fired[0] is not None and fired[1] is not None
        assert fired[0].fired + fired[1].fired == 10  # each due timer once, over two servers
        assert sorted(e.decision.customer_id for e in entries) == customers[:10]
        assert len({e.decision_id for e in entries}) == 10
        for entry in entries:
            (journey,) = entry.decision.journeys
            assert (journey.stage, journey.transition) == ("cart_abandoned", "abandoned_cart")
            assert entry.kind == "timer"
            assert entry.decision_id == f"{entry.decision.customer_id}/{entry.decision.event_id}"
            assert [a.action for a in entry.decision.actions][:1] == ["cart_reminder"]
        view = await first.stub.GetCustomer(pb.GetCustomerRequest(customer_id=customers[0]))
        assert view.customer.journeys[0].stage == "cart_abandoned"
        later = await second.stub.GetCustomer(pb.GetCustomerRequest(customer_id=customers[10]))
        assert later.customer.journeys[0].stage == "consideration"
        # Resuming from an id delivers what came after it, and nothing before.
        resumed = await _entries(
            second, pb.SubscribeRequest(from_id=entries[4].id), 10, timeout_s=1.5
        )
        assert [e.id for e in resumed] == [e.id for e in entries[5:]]


async def test_an_event_racing_a_timer_wins_and_the_timer_decides_after_it(
    start_service: StartService,
) -> None:
    async with start_service() as service:
        loop = service.running.timers
        assert loop is not None
        await loop.stop()  # this test turns the loop by hand
        customer = "racer"
        at_ms = _now_ms() - HALF_HOUR_MS
        await service.stub.Decide(_add_to_cart(customer, at_ms))
        # The timer is due; an event lands between the loop's load and its commit.
        store = service.running.store
        original = store.commit_many
        raced = False

        async def commit_after_an_event(commits, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal raced
            if not raced:
                raced = True
                checkout = pb.DecideRequest(event=pb.Event(
                    event_id="racer-checkout", customer_id=customer, type="checkout_started",
                    channel="web",
                ))  # fmt: skip
                await service.stub.Decide(checkout)
            return await original(commits, **kwargs)

        store.commit_many = commit_after_an_event  # type: ignore[method-assign]
        try:
            assert await loop.turn() == 0  # the event won; on its state, nothing is due
        finally:
            store.commit_many = original  # type: ignore[method-assign]
        view = await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id=customer))
        assert view.customer.journeys[0].stage == "purchase"


async def test_the_due_time_index_follows_the_commits(start_service: StartService) -> None:
    async with start_service() as service:
        assert service.running.timers is not None
        await service.running.timers.stop()
        store = service.running.store
        customer = "indexed"
        at_ms = _now_ms()
        await service.stub.Decide(_add_to_cart(customer, at_ms))
        member = timer_member(customer)
        key = store.keys.due(due_shard(member, store.timer_shards))
        assert await store.redis.zscore(key, member) == at_ms + HALF_HOUR_MS
        checkout = pb.DecideRequest(event=pb.Event(
            event_id="indexed-2", customer_id=customer, type="checkout_started", channel="web",
        ))  # fmt: skip
        await service.stub.Decide(checkout)
        assert await store.redis.zscore(key, member) is None  # purchase has no timer


async def test_identify_carries_a_visitors_pending_timer_to_the_customer(
    start_service: StartService,
) -> None:
    """A visitor who left a cart, identified: the customer's state now holds the cart, and
    the due-time index holds the customer at the cart's due time (the visitor's own entry
    finds no state once taken, and goes)."""
    async with start_service() as service:
        assert service.running.timers is not None
        await service.running.timers.stop()
        store = service.running.store
        at_ms = _now_ms()
        cart = pb.DecideRequest(event=pb.Event(
            event_id="v-cart", anonymous_id="visitor-cart", type="add_to_cart", channel="web",
            timestamp_ms=at_ms,
        ))  # fmt: skip
        await service.stub.Decide(cart)
        await service.stub.Identify(
            pb.IdentifyRequest(customer_id="known-cart", anonymous_id="visitor-cart")
        )
        member = timer_member("known-cart")
        key = store.keys.due(due_shard(member, store.timer_shards))
        assert await store.redis.zscore(key, member) == at_ms + HALF_HOUR_MS


async def test_subscribe_refuses_a_bad_from_id(service: Service) -> None:
    call = service.stub.Subscribe(pb.SubscribeRequest(from_id="yesterday"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in call:
            pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_timer_into_a_stage_whose_timer_is_already_due_fires_that_one_too(
    store_url: str, service_settings: Settings
) -> None:
    # `waited` moves the customer into `waiting` 30 minutes after their last event: its own
    # `idle: 10m` is due at that same instant, a second timer with the same due time.
    store = Store.from_settings(service_settings, store_url)
    running = await create_server(service_settings, from_text(CHAINED_TIMERS), store)
    try:
        loop = running.timers
        assert loop is not None
        await loop.stop()  # turned by hand below
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.JourneyServiceStub(channel)
            event = pb.Event(
                event_id="chained-1", customer_id="chained", type="page_view",
                timestamp_ms=_now_ms() - HALF_HOUR_MS - 60_000,
            )  # fmt: skip
            await stub.Decide(pb.DecideRequest(event=event))
            assert await loop.turn() + await loop.turn() == 2
            assert await loop.turn() == 0  # nothing more is due
            view = await stub.GetCustomer(pb.GetCustomerRequest(customer_id="chained"))
            assert view.customer.journeys[0].stage == "lapsed"
    finally:
        await running.stop(0.5)
