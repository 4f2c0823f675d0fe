"""The layouts registry in a real Redis: a customer's state, written as arrays under one
ruleset's layout, is read by name under another in a process that never compiled the first,
because the writer kept the layout before the state (`server/store/layouts.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from engine import codec
from engine.codec import decode_state, encode_state, layouts_of
from engine.decide import decide
from engine.state import CustomerState, new_state
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.core.config import Settings
from server.decisions.active import decode_or_new
from server.rules.rulesource import load_ruleset
from server.runtime.serving import create_server
from server.store.connection import RedisClient
from server.store.redis_store import CommitOutcome, Store
from tests.conftest import ON_EACH_REDIS, MakeStore
from tests.rulesets import T0_MS, event, from_text

pytestmark = pytest.mark.service

SHOP = """
journey: shop
version: 1
stages: [{id: browsing}, {id: buying}]
counters:
  views: {when: {event: view}, window: 7d}
COUNTERS
transitions:
  - {from: browsing, to: buying, when: {event: cart}}
actions:
  - {id: promo}
"""
BEFORE = SHOP.replace("COUNTERS\n", "")
# One more counter: every slot after `views` moves, so the layout is another.
AFTER = SHOP.replace("COUNTERS", "  searches: {when: {event: search}, window: 7d}")


def _as_a_new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget every layout, as a process that never compiled the rulesets of this test."""
    monkeypatch.setattr(codec, "_KNOWN", {})
    monkeypatch.setattr(codec, "_LAYOUTS", codec.per_object(codec._laid_out))


def _views(ruleset_text: str, state: CustomerState) -> float:
    ruleset = from_text(ruleset_text)
    journey = ruleset.journeys[0]
    first = int(journey.rules.counter_offset[0])
    return float(state.journey(journey).floats[first : first + 64].sum())


def _shopped() -> CustomerState:
    before = from_text(BEFORE)
    state = new_state(before)
    for n, type_ in enumerate(["view", "view", "cart"]):
        _, state = decide(before, state, event(type_, "ann"), T0_MS + n * 1000)
    return state


@ON_EACH_REDIS
async def test_a_state_is_read_by_name_through_the_registry_after_load_take_and_conflict(
    make_store: MakeStore, store_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = from_text(BEFORE)
    writer = make_store(store_settings)
    data = encode_state(before, _shopped())
    for customer in ("loaded", "taken", "raced"):
        result = await writer.commit(
            customer_id=customer, expected_version=0, state=data, layouts=layouts_of(before)
        )
        assert result.outcome is CommitOutcome.COMMITTED

    _as_a_new_process(monkeypatch)
    after = from_text(AFTER)
    reader = make_store(store_settings)
    loaded = await reader.load(customer_id="loaded")
    taken = await reader.take(customer_id="taken")
    raced = await reader.commit(customer_id="raced", expected_version=0, state=b"late")
    assert raced.outcome is CommitOutcome.CONFLICT
    for state in (loaded.state, taken, raced.state):
        assert state is not None
        read = decode_state(state, after)
        assert read.journey(after.journeys[0]).ints[0] == 1  # buying
        assert _views(AFTER, read) == 2.0


def _unreadable(reason: str) -> float:
    return (
        REGISTRY.get_sample_value("journeyman_states_unreadable_total", {"reason": reason}) or 0.0
    )


@ON_EACH_REDIS
async def test_a_state_whose_layout_left_the_registry_starts_afresh_counted_and_said(
    make_store: MakeStore,
    store_settings: Settings,
    raw_client: RedisClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The registry deleted by hand or evicted (an allkeys-* Redis): a process that never
    compiled the layout cannot read the state; it starts the customer afresh, as before, and
    now counts it (journeyman_states_unreadable_total), so that an alert can call for the
    restore before more customers are written over."""
    before = from_text(BEFORE)
    writer = make_store(store_settings)
    data = encode_state(before, _shopped())
    await writer.commit(customer_id="lost", expected_version=0, state=data,
                        layouts=layouts_of(before))  # fmt: skip
    await raw_client.delete(writer.keys.layouts())

    _as_a_new_process(monkeypatch)
    after = from_text(AFTER)
    loaded = await make_store(store_settings).load(customer_id="lost")
    missing, damaged = _unreadable("layout_missing"), _unreadable("damaged")
    state = decode_or_new(after, loaded.state)
    assert state.journey(after.journeys[0]).ints[0] == 0  # browsing: afresh
    assert _views(AFTER, state) == 0.0
    assert (_unreadable("layout_missing"), _unreadable("damaged")) == (missing + 1, damaged)
    assert "is not in the layouts registry" in caplog.text  # what to restore
    decode_or_new(after, b"\x81\xa1v\x02")  # a schema 2 map without its arrays: damaged
    assert (_unreadable("layout_missing"), _unreadable("damaged")) == (missing + 1, damaged + 1)


@ON_EACH_REDIS
async def test_a_layout_is_kept_once_before_the_first_commit_that_needs_it(
    make_store: MakeStore, store_settings: Settings, raw_client: RedisClient
) -> None:
    before = from_text(BEFORE)
    store = make_store(store_settings)
    layouts = layouts_of(before)
    await raw_client.delete(store.keys.layouts())
    data = encode_state(before, _shopped())
    await store.commit(customer_id="one", expected_version=0, state=data, layouts=layouts)
    kept = await raw_client.hgetall(store.keys.layouts())
    assert kept == {digest.hex().encode(): text for digest, text in layouts.items()}

    await raw_client.delete(store.keys.layouts())  # kept once: the next commit does not write
    await store.commit(customer_id="two", expected_version=0, state=data, layouts=layouts)
    assert await raw_client.exists(store.keys.layouts()) == 0


@asynccontextmanager
async def _serving(
    rules: Path, settings: Settings, redis_url: str
) -> AsyncIterator[pb_grpc.JourneyServiceStub]:
    running = await create_server(
        settings, load_ruleset([str(rules)]), Store.from_settings(settings, redis_url)
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield pb_grpc.JourneyServiceStub(channel)
    finally:
        await channel.close()
        await running.stop(0.5)


async def test_a_customer_keeps_their_journey_through_a_restart_under_changed_rules(
    service_settings: Settings,
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server with the rules before decides; a server started afresh with a counter added
    (every later slot moved) reads the customer by name: the stage and the counter are kept."""
    rules = tmp_path / "shop.yaml"
    rules.write_text(BEFORE, encoding="utf-8")
    async with _serving(rules, service_settings, store_url) as stub:
        for n, type_ in enumerate(["view", "view", "cart"]):
            request = pb.DecideRequest(
                event=pb.Event(event_id=f"e{n}", customer_id="ann", type=type_, channel="web")
            )
            await stub.Decide(request)

    _as_a_new_process(monkeypatch)
    rules.write_text(AFTER, encoding="utf-8")
    async with _serving(rules, service_settings, store_url) as stub:
        customer = (await stub.GetCustomer(pb.GetCustomerRequest(customer_id="ann"))).customer
        (journey,) = customer.journeys
        assert journey.stage == "buying"
        assert dict(journey.counters) == {"views": 2.0, "searches": 0.0}
        answer = await stub.Decide(
            pb.DecideRequest(
                event=pb.Event(event_id="e3", customer_id="ann", type="search", channel="web")
            )
        )
        assert answer.decision.journeys[0].stage == "buying"
