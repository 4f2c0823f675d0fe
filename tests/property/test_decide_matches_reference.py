"""`engine.decide` against the plain-Python `tests.reference` evaluator, on random journeys.

After every event both sides must agree on each journey's stage, transition and friction, on the
actions offered (in order, with their scores), on the held-out ones, and on why every other action
was excluded. The strategies live in `tests/property/strategies.py`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine.codec import decode_state, encode_state
from engine.compile import Ruleset, compile_ruleset
from engine.decide import decide
from engine.decision import Decision
from engine.event import PropertyValue
from engine.rules.load import LoadedJourney, parse_journey
from engine.state import CustomerState, new_state
from tests.property.strategies import MINUTE_MS, START_MS, Json, Step, journeys, step_lists
from tests.reference import ELIGIBLE, ReferenceDecision, ReferenceEngine

ELIGIBILITY_REASONS = frozenset({"stage", "segment", "condition", "cooldown", "cap"})
# Enough to find a broken branch within a few runs, few enough for the JIT-off coverage run.
EXAMPLES = 60

COMPARE = settings(
    deadline=None,
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
top_ks = st.none() | st.integers(1, 5)


def load(journey_dicts: Sequence[Json]) -> tuple[list[LoadedJourney], Ruleset]:
    # indent: each transition on its own line, so `transition_line` tells them apart.
    loaded = [parse_journey(json.dumps(j, indent=2), f"{j['journey']}.json") for j in journey_dicts]
    return loaded, compile_ruleset(loaded)


def assert_same(
    decision: Decision, expected: ReferenceDecision, loaded: list[LoadedJourney]
) -> None:
    assert decision.duplicate == expected.duplicate
    for outcome, result, journey in zip(decision.journeys, expected.journeys, loaded, strict=True):
        assert (outcome.journey, outcome.stage, outcome.previous_stage) == (
            result.journey, result.stage, result.previous_stage,
        )  # fmt: skip
        line = None if result.transition is None else journey.transition_lines[result.transition]
        assert (outcome.transition, outcome.transition_line) == (result.transition_id, line)
        assert outcome.friction_score == pytest.approx(result.friction_score, rel=1e-9, abs=1e-12)
        if result.friction_level is not None:  # a journey without friction has no level to name
            assert outcome.friction_level == result.friction_level
    assert [(a.journey, a.action) for a in decision.actions] == list(expected.offered_ids)
    assert [a.score for a in decision.actions] == [c.score for c in expected.offered]
    assert decision.held_out == expected.held_out


def assert_same_exclusions(decision: Decision, expected: ReferenceDecision) -> None:
    """Every action kept out by eligibility (not by rank or holdout) is named with its reason."""
    found = {
        (e.journey, e.action): e.reason
        for e in decision.excluded
        if e.reason in ELIGIBILITY_REASONS
    }
    wanted = {
        (result.journey, action): reason
        for result in expected.journeys
        for action, reason in result.statuses.items()
        if reason != ELIGIBLE
    }
    assert found == wanted


def run_both(
    journey_dicts: Sequence[Json],
    steps: Sequence[Step],
    top_k: int | None,
    *,
    store: bool = False,
) -> None:
    """Decide every step with the engine and the reference, and compare after each one.

    With `store`, the engine's state goes through the msgpack codec between events, as it does
    through Redis in the service.
    """
    loaded, ruleset = load(journey_dicts)
    reference = ReferenceEngine([j.model for j in loaded])
    states: dict[str, CustomerState] = {}
    traits: dict[str, dict[str, PropertyValue]] = {}
    now_ms = START_MS
    for index, step in enumerate(steps):
        customer = step.event.customer_id
        state = (states.get(customer) or new_state(ruleset)).with_traits(step.traits)
        traits[customer] = {**traits.get(customer, {}), **step.traits}
        now_ms += step.gap_ms
        note(f"step {index}: {step.event} at {now_ms}, traits {traits[customer]}")
        decision, state = decide(ruleset, state, step.event, now_ms, top_k=top_k, explain=True)
        expected = reference.decide(step.event, traits[customer], now_ms, top_k)
        note(f"  engine: {decision}\n  reference: {expected}")
        assert_same(decision, expected, loaded)
        if not expected.duplicate:
            assert_same_exclusions(decision, expected)
        states[customer] = decode_state(encode_state(ruleset, state), ruleset) if store else state


@COMPARE
@given(journey=journeys(), steps=step_lists(), top_k=top_ks)
def test_one_journey_matches_reference(journey: Json, steps: list[Step], top_k: int | None) -> None:
    run_both([journey], steps, top_k)


@COMPARE
@given(first=journeys("j0"), second=journeys("j1"), steps=step_lists(), top_k=top_ks)
def test_two_journeys_match_reference(
    first: Json, second: Json, steps: list[Step], top_k: int | None
) -> None:
    run_both([first, second], steps, top_k)


@COMPARE
@given(journey=journeys(), steps=step_lists(), top_k=top_ks)
def test_stored_and_reloaded_state_matches_reference(
    journey: Json, steps: list[Step], top_k: int | None
) -> None:
    run_both([journey], steps, top_k, store=True)


# -- purity and repeats ---------------------------------------------------------------------------


def snapshot(state: CustomerState) -> tuple[object, ...]:
    """Everything in `state`, as plain values that compare by content."""
    journeys = {
        name: (journey.ints.tolist(), journey.floats.tolist())
        for name, journey in state.journeys.items()
    }
    return journeys, dict(state.traits), state.recent_event_ids


@COMPARE
@given(journey=journeys(), steps=step_lists(customers=("c0",)))
def test_decide_is_pure_and_repeats_change_nothing(journey: Json, steps: list[Step]) -> None:
    _, ruleset = load([journey])
    state = new_state(ruleset)
    now_ms = START_MS
    for step in steps:
        state = state.with_traits(step.traits)
        now_ms += step.gap_ms
        before = snapshot(state)
        decision, after = decide(ruleset, state, step.event, now_ms)
        assert snapshot(state) == before, "decide changed its input state"
        again, unchanged = decide(ruleset, after, step.event, now_ms + MINUTE_MS)
        assert again.duplicate and not again.actions and not again.held_out
        assert snapshot(unchanged) == snapshot(after)
        assert [j.stage for j in again.journeys] == [j.stage for j in decision.journeys]
        state = after
