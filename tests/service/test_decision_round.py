"""One decision round straight against the real-Redis store: lanes in order, the decision ring,
a repeat within the batch, parts of a large batch, and the journey statistics it counts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from journeyman.v1 import journeyman_pb2 as pb
from server.core.config import Settings
from server.decisions.active import ActiveRules
from server.decisions.journey_stats import JourneyStats
from server.decisions.learned_rates import LearnedRates
from server.decisions.retry import RetryPolicy
from server.decisions.round import EVENTS_PER_PART, DecisionRound, Outcome
from server.protocol.convert import DecideInput, decide_input
from server.protocol.errors import EventIdReused
from server.rules.rulesource import load_ruleset
from server.store.redis_store import Store
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
    assert isinstance(again[0], pb.Decision) and again[0].duplicate
    assert again[0].journeys == first[0].journeys  # type: ignore[union-attr]
    assert isinstance(again[1], EventIdReused)


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
