"""One decision round straight against the real-Redis store: lanes in order, the decision ring,
a repeat within the batch, parts of a large batch, and the journey statistics it counts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

import server.decisions.round
from engine.codec import encode_state
from engine.compile import Ruleset
from engine.decide import decide
from engine.event import Event
from engine.many import decide_many
from engine.state import CustomerState, new_state
from journeyman.v1 import journeyman_pb2 as pb
from server.core.config import Settings
from server.decisions.active import ActiveRules, decode_or_new
from server.decisions.journey_stats import JourneyStats
from server.decisions.learned_rates import LearnedRates
from server.decisions.retry import RetryPolicy
from server.decisions.round import (
    EVENTS_PER_PART,
    MIN_EVENTS_PER_PART,
    PART_SHARE_OF_TIME_LEFT,
    DecisionRound,
    Outcome,
)
from server.protocol.convert import DecideInput, decide_input
from server.protocol.errors import EventIdReused
from server.rules.rulesource import load_ruleset
from server.store.connection import RedisClient
from server.store.redis_store import Store
from tests.conftest import MakeStore
from tests.property.test_decide_matches_reference import snapshot
from tests.rulesets import RULES_DIR

pytestmark = pytest.mark.service

ACTIVE = ActiveRules.of(load_ruleset([str(RULES_DIR / "retail.yaml")]))


@pytest.fixture
async def stats(store: Store) -> AsyncIterator[JourneyStats]:
    stats = JourneyStats(store, lambda: time.time_ns() // 1_000_000)
    yield stats
    await stats.drain()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _input(event_id: str, customer: str, type_: str) -> DecideInput:
    event = pb.Event(event_id=event_id, customer_id=customer, type=type_, channel="web")
    return decide_input(pb.DecideRequest(event=event), int(time.time() * 1000), Settings())


async def _decide(round_: DecisionRound, requests: list[DecideInput]) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    assert await round_.decide(requests, ACTIVE, outcomes, lambda index: True) is None
    return outcomes


async def test_each_customers_events_are_decided_in_order_and_stored(
    store: Store, stats: JourneyStats
) -> None:
    round_ = DecisionRound(store, stats, RetryPolicy(2), LearnedRates(store, _now_ms))
    requests = [
        _input("a1", "ann", "add_to_cart"),
        _input("b1", "bo", "product_view"),
        _input("a2", "ann", "checkout_started"),
    ]
    outcomes = await _decide(round_, requests)
    decisions = [outcomes[index] for index in range(len(requests))]
    assert all(isinstance(d, pb.Decision) and not d.degraded for d in decisions)
    # ann's second event saw the state her first left; bo's lane is his own.
    stages = [d.journeys[0].stage for d in decisions]  # type: ignore[union-attr]
    assert stages == ["consideration", "awareness", "purchase"]
    for index, request in enumerate(requests):
        loaded = await store.load(
            customer_id=request.event.customer_id, event_ids=[request.event.event_id]
        )
        assert loaded.decisions != [None], index  # kept in the decision ring


async def test_a_repeat_is_answered_from_the_ring_and_a_reused_id_refused(
    store: Store, stats: JourneyStats
) -> None:
    round_ = DecisionRound(store, stats, RetryPolicy(2), LearnedRates(store, _now_ms))
    first = await _decide(round_, [_input("r1", "cy", "add_to_cart")])
    again = await _decide(
        round_, [_input("r1", "cy", "add_to_cart"), _input("r1", "cy", "purchase")]
    )
    replayed = again[0]
    assert isinstance(replayed, pb.Decision) and replayed.duplicate
    replayed.duplicate = False
    assert replayed == first[0]  # ids included: the ring keeps the decision without them
    assert isinstance(again[1], EventIdReused)


async def test_a_customer_stored_before_the_ring_moved_into_the_state_carries_on(
    store: Store, stats: JourneyStats, raw_client: RedisClient
) -> None:
    """The layout of journeyman before: the state alone in the blob, the decisions in a hash
    of their own. A repeat of an event from then is still not applied twice (the state's own
    recent event ids; its actions are not replayed), the next event is decided on that state,
    and its commit leaves the customer one key."""
    ruleset = ACTIVE.ruleset
    _, before = decide(ruleset, new_state(ruleset), Event("old-1", "dee", "add_to_cart"), _now_ms())
    keys = store.keys.customer("dee")
    await raw_client.hset(
        keys.state, mapping={"blob": encode_state(ruleset, before), "version": "7"}
    )
    await raw_client.hset(keys.decisions, mapping={"e:old-1": b"fingerprint+decision", "n": 1})
    round_ = DecisionRound(store, stats, RetryPolicy(2), LearnedRates(store, _now_ms))
    repeat, later = (await _decide(
        round_, [_input("old-1", "dee", "add_to_cart"), _input("new-1", "dee", "checkout_started")]
    )).values()  # fmt: skip
    assert isinstance(repeat, pb.Decision) and repeat.duplicate and not repeat.actions
    assert repeat.journeys[0].stage == "consideration"
    assert isinstance(later, pb.Decision) and later.journeys[0].stage == "purchase"
    assert await raw_client.exists(keys.decisions) == 0
    loaded = await store.load(customer_id="dee", event_ids=["old-1", "new-1"])
    assert loaded.decisions[0] is None and loaded.decisions[1] is not None


async def test_a_batch_larger_than_a_part_is_stored_in_full(
    store: Store, stats: JourneyStats
) -> None:
    round_ = DecisionRound(store, stats, RetryPolicy(2), LearnedRates(store, _now_ms))
    count = EVENTS_PER_PART * 2 + 7
    requests = [_input(f"p{i}", f"part-{i}", "product_view") for i in range(count)]
    outcomes = await _decide(round_, requests)
    assert len(outcomes) == count
    assert all(isinstance(o, pb.Decision) and not o.degraded for o in outcomes.values())
    await stats.drain()
    assert (await store.stage_counts("retail"))["awareness"] == count


async def test_a_customer_decided_here_is_not_decoded_again_for_the_next_event(
    store: Store, stats: JourneyStats, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[bytes | None] = []

    def counting(ruleset: Ruleset, data: bytes | None) -> CustomerState:
        decoded.append(data)
        return decode_or_new(ruleset, data)

    monkeypatch.setattr(server.decisions.round, "decode_or_new", counting)
    round_ = DecisionRound(store, stats, RetryPolicy(2), LearnedRates(store, _now_ms))
    first = await _decide(round_, [_input("m1", "mo", "add_to_cart")])
    second = await _decide(round_, [_input("m2", "mo", "checkout_started")])
    assert decoded == [None]  # the new customer's initial state only; m2 came from the cache
    assert [o.journeys[0].stage for o in (*first.values(), *second.values())] == [  # type: ignore[union-attr]
        "consideration", "purchase",
    ]  # fmt: skip
    # Another ruleset in force (a reload): the cached state is decoded under it.
    other = ActiveRules.of(
        load_ruleset([str(RULES_DIR / "retail.yaml"), str(RULES_DIR / "loan_application.yaml")])
    )
    outcomes: dict[int, Outcome] = {}
    wanted = lambda index: True  # noqa: E731
    assert await round_.decide([_input("m3", "mo", "purchase")], other, outcomes, wanted) is None
    assert len(decoded) == 2 and decoded[1] is not None
    assert isinstance(outcomes[0], pb.Decision) and outcomes[0].journeys[0].stage == "purchase"


async def test_lanes_decided_together_answer_and_store_as_decided_one_by_one(
    make_store: MakeStore, store_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rounds through two stores: one deciding the lanes of one new event together
    (the batched kernel), one deciding every event with `decide()`; every answer and every
    stored state must be the same."""
    kernel_calls = []

    def counted(*args: object, **kwargs: object) -> object:
        kernel_calls.append(1)
        return decide_many(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(server.decisions.round, "decide_many", counted)
    now_ms = _now_ms()
    types = ("page_view", "product_view", "add_to_cart", "checkout_started", "payment_error")

    def event(
        n: int, customer: int, at_s: int, *, anonymous: bool = False, **fields: object
    ) -> DecideInput:
        who = {"anonymous_id" if anonymous else "customer_id": f"cust-{customer}"}
        sent = pb.Event(
            event_id=f"t{n}", type=types[n % len(types)], channel="web",
            timestamp_ms=now_ms - 600_000 + at_s * 1000, **who,
        )  # fmt: skip
        return decide_input(pb.DecideRequest(event=sent, **fields), now_ms, Settings())  # type: ignore[arg-type]

    rounds = [
        # New customers, one event each: together; but a visitor whose anonymous id is also a
        # customer's id in the round: one by one, both.
        [event(n, n, 0) for n in range(40)] + [event(300, 3, 0, anonymous=True)],
        [event(100 + n, n, 10) for n in range(40)]  # the same, their second event
        + [event(200, 50, 10), event(201, 50, 11)]  # two events of one customer: one by one
        + [event(5, 5, 0)]  # a repeat of a stored event: answered from the ring
        + [event(202, 60, 10, explain=True), event(203, 61, 10, top_k=1)],
    ]
    answers: dict[str, list[dict[int, Outcome]]] = {}
    stores: dict[str, Store] = {}
    for way, at_least in (("together", server.decisions.round.TOGETHER_AT_LEAST), ("alone", 10**9)):
        monkeypatch.setattr(server.decisions.round, "TOGETHER_AT_LEAST", at_least)
        stores[way] = make_store(
            replace(store_settings, key_prefix=f"{store_settings.key_prefix}{way}:")
        )
        stats = JourneyStats(stores[way], _now_ms)
        round_ = DecisionRound(
            stores[way], stats, RetryPolicy(2), LearnedRates(stores[way], _now_ms)
        )
        calls_before = len(kernel_calls)
        answers[way] = [await _decide(round_, requests) for requests in rounds]
        await stats.drain()
        assert (len(kernel_calls) > calls_before) == (way == "together")
    for together, alone in zip(answers["together"], answers["alone"], strict=True):
        assert together.keys() == alone.keys()
        for index, outcome in together.items():
            assert isinstance(outcome, pb.Decision), outcome
            assert outcome == alone[index], index
    for customer in [*range(40), 50, 60, 61]:
        kept = [
            await stores[way].load(customer_id=f"cust-{customer}", event_ids=[]) for way in stores
        ]
        states = [snapshot(decode_or_new(ACTIVE.ruleset, one.state)) for one in kept]
        assert states[0] == states[1], customer


async def test_parts_are_sized_to_the_time_the_caller_has_left(
    store: Store, stats: JourneyStats, monkeypatch: pytest.MonkeyPatch
) -> None:
    round_ = DecisionRound(store, stats, RetryPolicy(2), LearnedRates(store, _now_ms))
    # Nothing measured yet: full parts, whatever the deadline.
    assert round_.part_events(0.001) == round_.part_events(None) == EVENTS_PER_PART
    started = time.monotonic()
    learning = [_input(f"l{i}", f"learn-{i}", "product_view") for i in range(300)]
    await _decide(round_, learning)
    upper_s = (time.monotonic() - started) / len(learning)  # the whole round's, per event
    assert round_.part_events(None) == EVENTS_PER_PART
    assert round_.part_events(1_000.0) == EVENTS_PER_PART
    assert round_.part_events(0.0) == round_.part_events(-1.0) == MIN_EVENTS_PER_PART
    # Time for 400 events at the whole round's rate: the share of it, or more (deciding is
    # only a share of a round).
    assert round_.part_events(400 * upper_s) >= int(400 * PART_SHARE_OF_TIME_LEFT)
    # Less time left, smaller parts: a time left that gives parts of about 100.
    sizes = {left_s: round_.part_events(left_s) for left_s in (upper_s * 2**k for k in range(12))}
    assert list(sizes.values()) == sorted(sizes.values())
    left_s = min(t for t, size in sizes.items() if size >= 100)
    assert MIN_EVENTS_PER_PART < sizes[left_s] < EVENTS_PER_PART

    parts: list[int] = []
    store_part = round_._store_part

    async def spied(requests, lanes, *args):  # type: ignore[no-untyped-def]
        parts.append(sum(map(len, lanes)))
        return await store_part(requests, lanes, *args)

    monkeypatch.setattr(round_, "_store_part", spied)
    count = EVENTS_PER_PART + 100
    requests = [_input(f"d{i}", f"deadline-{i}", "product_view") for i in range(count)]
    outcomes: dict[int, Outcome] = {}
    deadline = time.monotonic() + left_s
    assert (
        await round_.decide(requests, ACTIVE, outcomes, lambda i: True, deadline=deadline) is None
    )
    assert sum(parts) == count and len(outcomes) == count  # all stored: nothing cut them short
    assert MIN_EVENTS_PER_PART <= parts[0] < EVENTS_PER_PART
    assert all(size >= MIN_EVENTS_PER_PART for size in parts[:-1])
    # Without a deadline: parts of EVENTS_PER_PART, as before.
    parts.clear()
    requests = [_input(f"n{i}", f"nodeadline-{i}", "product_view") for i in range(count)]
    await _decide(round_, requests)
    assert parts == [EVENTS_PER_PART, 100]
