"""`engine.decide`, `engine.view` and `engine.merge` against the plain-Python `tests.reference`
evaluator, on random journeys.

After every event both sides must agree on each journey's stage, transition and friction, on the
actions offered (in order, with their scores), on the held-out ones, and on why every other action
was excluded. Before every event both read the customer as of that moment (the customer view) and
must agree on it; after an identity merge both decide the merged customer's next events alike.
The strategies live in `tests/property/strategies.py`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import hypothesis
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine.codec import decode_state, encode_state
from engine.compile import Ruleset, compile_ruleset
from engine.decide import decide
from engine.decision import Decision
from engine.event import PropertyValue
from engine.merge import merge_states
from engine.rules.load import LoadedJourney, parse_journey
from engine.state import CustomerState, new_state
from engine.timers import next_due_ms, timer_due_ms, timer_event
from engine.view import CustomerView, customer_view
from tests.property.strategies import MINUTE_MS, START_MS, Json, Step, journeys, step_lists
from tests.reference import ELIGIBLE, JourneyReading, ReferenceDecision, ReferenceEngine

ELIGIBILITY_REASONS = frozenset(
    {"stage", "segment", "condition", "cooldown", "cap", "contact_limit", "quiet_hours"}
)
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
    assert [(e.journey, e.action, e.treated, e.stage) for e in decision.exposures] == list(
        expected.exposures
    )
    assert [
        (c.journey, c.action, c.goal, c.treated, c.exposed_at_ms, c.stage)
        for c in decision.conversions
    ] == [(*conversion[:4], *conversion[5:]) for conversion in expected.conversions]
    assert [c.value for c in decision.conversions] == [c[4] for c in expected.conversions]
    if decision.conversions:  # seen with --hypothesis-show-statistics
        hypothesis.event("a goal converted an exposure")
        if any(c.action in ("a0", "a1", "a2") for c in decision.conversions):
            hypothesis.event("an action converted (responses name a0 to a2)")


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
    # The explanations read the rules again in plain Python: where the kernels said a condition
    # or a segment failed, they name a failing part; a transition that did not fire has one too.
    for exclusion in decision.excluded:
        if exclusion.reason in ("condition", "segment"):
            assert exclusion.detail and "None" not in exclusion.detail, exclusion
    for transition in decision.not_fired:
        assert transition.reason != "its condition holds", transition


def assert_same_view(view: CustomerView, expected: Sequence[JourneyReading]) -> None:
    """The engine's customer view reads each journey as the reference does."""
    for journey, reading in zip(view.journeys, expected, strict=True):
        assert (journey.journey, journey.stage, journey.stage_entered_ms) == (
            reading.journey, reading.stage, reading.stage_entered_ms,
        )  # fmt: skip
        assert journey.friction_score == pytest.approx(reading.friction_score, rel=1e-9, abs=1e-12)
        if reading.friction_level is not None:
            assert journey.friction_level == reading.friction_level
        assert dict(journey.counters) == dict(reading.counters)
        assert list(journey.last_shown_ms.items()) == list(reading.last_shown_ms.items())
        assert journey.recent_stages == reading.recent_stages
        assert journey.segments == reading.segments


class BothSides:
    """The engine and the reference fed the same steps, compared after each one.

    With `store`, the engine's state goes through the msgpack codec between events, as it does
    through Redis in the service.
    """

    def __init__(self, journey_dicts: Sequence[Json], *, store: bool = False) -> None:
        self.loaded, self.ruleset = load(journey_dicts)
        self.reference = ReferenceEngine([j.model for j in self.loaded])
        self.states: dict[str, CustomerState] = {}
        self.traits: dict[str, dict[str, PropertyValue]] = {}
        self.now_ms = START_MS
        self.store = store

    def state(self, customer: str) -> CustomerState:
        return self.states.get(customer) or new_state(self.ruleset)

    def keep(self, customer: str, state: CustomerState) -> None:
        ruleset = self.ruleset
        self.states[customer] = (
            decode_state(encode_state(ruleset, state), ruleset) if self.store else state
        )

    def compare_views(self, customer: str) -> None:
        """Both read `customer` as of now: windows and friction moved on since the last event."""
        view = customer_view(self.ruleset, self.state(customer), self.now_ms)
        expected = self.reference.view(customer, self.now_ms, self.traits.get(customer, {}))
        assert_same_view(view, expected)
        assert dict(view.traits) == self.traits.get(customer, {})

    def timer(self, step: Step) -> Step | None:
        """A timer step as the event both decide: the customer's next due timer, at its due
        time (time moves on to it when it is ahead); None when no timer is due."""
        customer = step.event.customer_id
        due_ms = next_due_ms(self.ruleset, self.state(customer))
        assert due_ms == self.reference.next_due_ms(customer)
        if due_ms is None:
            return None
        hypothesis.event("a timer was decided")
        self.now_ms = max(self.now_ms, due_ms)
        return Step(
            timer_event(self.ruleset, self.state(customer), customer, due_ms), 0, {}, timer=True
        )

    def step(self, index: int, step: Step, top_k: int | None) -> None:
        customer = step.event.customer_id
        self.now_ms += step.gap_ms
        decided_ms = self.now_ms
        if step.timer:
            timer = self.timer(step)
            if timer is None:
                return
            decided_ms = timer_due_ms(timer.event)
            step = timer
        self.compare_views(customer)
        state = self.state(customer).with_traits(step.traits)
        self.traits[customer] = {**self.traits.get(customer, {}), **step.traits}
        note(f"step {index}: {step.event} at {self.now_ms}, traits {self.traits[customer]}")
        decision, state = decide(
            self.ruleset, state, step.event, decided_ms, top_k=top_k, explain=True
        )
        expected = self.reference.decide(step.event, self.traits[customer], decided_ms, top_k)
        note(f"  engine: {decision}\n  reference: {expected}")
        assert_same(decision, expected, self.loaded)
        if not expected.duplicate:
            assert_same_exclusions(decision, expected)
        self.keep(customer, state)

    def merge(self, known: str, visitor: str) -> None:
        """`visitor` identifies as `known`: both stitch the visitor's journeys in."""
        note(f"merge {visitor} into {known} at {self.now_ms}")
        merged = merge_states(self.ruleset, self.state(known), self.state(visitor))
        self.keep(known, merged)
        self.reference.merge(known, visitor)
        self.traits[known] = {**self.traits.get(visitor, {}), **self.traits.get(known, {})}
        self.compare_views(known)


def run_both(
    journey_dicts: Sequence[Json],
    steps: Sequence[Step],
    top_k: int | None,
    *,
    store: bool = False,
) -> None:
    """Decide every step with the engine and the reference, and compare after each one."""
    both = BothSides(journey_dicts, store=store)
    for index, step in enumerate(steps):
        both.step(index, step, top_k)


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
@given(journey=journeys(timed=True), steps=step_lists(), top_k=top_ks, store=st.booleans())
def test_timed_transitions_match_reference(
    journey: Json, steps: list[Step], top_k: int | None, store: bool
) -> None:
    """A journey whose first stage has a timed transition: the timers decided match too."""
    run_both([journey], steps, top_k, store=store)


@COMPARE
@given(journey=journeys(), steps=step_lists(), top_k=top_ks)
def test_stored_and_reloaded_state_matches_reference(
    journey: Json, steps: list[Step], top_k: int | None
) -> None:
    run_both([journey], steps, top_k, store=True)


@COMPARE
@given(
    journey=journeys(),
    before=step_lists(customers=("c0", "v0")),
    after=step_lists(customers=("c0",)),
    top_k=top_ks,
    store=st.booleans(),
)
def test_a_merged_identity_matches_reference(
    journey: Json, before: list[Step], after: list[Step], top_k: int | None, store: bool
) -> None:
    """Visitor `v0` identifies as `c0` between two runs of events; the later events (whose ids
    may repeat either's) are decided on the merged state."""
    both = BothSides([journey], store=store)
    for index, step in enumerate(before):
        both.step(index, step, top_k)
    both.merge("c0", "v0")
    for index, step in enumerate(after, start=len(before)):
        both.step(index, step, top_k)


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
