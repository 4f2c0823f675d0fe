"""The documented precision of counters and the half-life of friction, pinned at their edges."""

from __future__ import annotations

import pytest

from engine.decide import decide
from engine.state import new_state
from tests.rulesets import event, from_text

DAY_MS = 86_400_000
DAY_START_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z: a bucket boundary for any whole-day width

COUNTING = """
journey: windows
version: 1
stages: [{id: start}, {id: busy}]
counters:
  views_7d: {when: {event: view}, window: 7d, precision: 1d}
  spend_7d: {when: {event: buy}, sum: amount, window: 7d, precision: 1d}
friction:
  half_life: 1h
  levels: {low: 0, high: 4}
  signals: [{id: error, when: {event: error}, weight: 8}]
transitions:
  - {from: start, to: busy, when: {counter: views_7d, gte: 2}}
  - {from: busy, to: start, when: {counter: views_7d, lt: 2}}
"""


def _stage_after(view_at_ms: int, check_at_ms: int) -> str:
    """Stage after a first view and a second one `check_at_ms` later: busy if both count."""
    ruleset = from_text(COUNTING)
    _, state = decide(ruleset, new_state(ruleset), event("view", "w"), view_at_ms)
    decision, _ = decide(ruleset, state, event("view", "w"), check_at_ms)
    return decision.stage


@pytest.mark.parametrize(
    ("offset_in_bucket_ms", "counted_for_ms"),
    [(0, 7 * DAY_MS), (DAY_MS // 2, 6 * DAY_MS + DAY_MS // 2), (DAY_MS - 1, 6 * DAY_MS + 1)],
)
def test_an_event_counts_until_its_bucket_leaves_the_window(
    offset_in_bucket_ms: int, counted_for_ms: int
) -> None:
    """7d at 1d precision: an event counts for between 6d and 7d, until its day leaves."""
    first_ms = DAY_START_MS + offset_in_bucket_ms
    assert _stage_after(first_ms, first_ms + counted_for_ms - 1) == "busy"
    assert _stage_after(first_ms, first_ms + counted_for_ms) == "start"


def test_a_sum_counter_adds_numbers_and_ignores_what_is_not_one() -> None:
    ruleset = from_text(COUNTING)
    state = new_state(ruleset)
    for amount in (10.5, "a lot", True, 4):
        _, state = decide(ruleset, state, event("buy", "s", amount=amount), DAY_START_MS)
    _, state = decide(ruleset, state, event("buy", "s"), DAY_START_MS)  # no amount at all
    journey = ruleset.journeys[0]
    first = journey.rules.counter_offset[1]
    buckets = state.journey(journey).floats[first : first + journey.rules.counter_buckets[1]]
    assert buckets.sum() == 14.5


def test_friction_halves_every_half_life() -> None:
    ruleset = from_text(COUNTING)
    decision, state = decide(ruleset, new_state(ruleset), event("error", "f"), DAY_START_MS)
    assert (decision.outcome.friction_score, decision.outcome.friction_level) == (8.0, "high")
    hour_ms = 3_600_000
    later, _ = decide(ruleset, state, event("view", "f"), DAY_START_MS + hour_ms)
    assert later.outcome.friction_score == pytest.approx(4.0)
    assert later.outcome.friction_level == "high"  # 4 reaches the threshold
    much_later, _ = decide(ruleset, state, event("view", "f"), DAY_START_MS + 3 * hour_ms)
    assert much_later.outcome.friction_score == pytest.approx(1.0)
    assert much_later.outcome.friction_level == "low"
