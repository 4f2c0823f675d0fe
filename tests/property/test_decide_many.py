"""`engine.many.decide_many` against a loop of `engine.decide.decide`, on random journeys.

Both are fed the same customers' events, interleaved, with repeated event ids, late events,
traits and one or two journeys. Every event's decision must be the same (stage, transition and
friction per journey, actions offered in order with their scores, held-out actions, exposures
and conversions), and so must every customer's state at the end, also when the events are
decided in two batches, the second starting from the states the first left, and whatever the
chunks the customers are decided in. Timer steps become the customer's next due timer at its
due time, as a loop of `decide()` finds it, and both sides decide that same synthetic event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine.compile import Ruleset
from engine.decide import decide
from engine.decision import Decision
from engine.event import PropertyValue
from engine.many import CHUNK_EVENTS, decide_many
from engine.state import DEDUPE_WINDOW, CustomerState, new_state
from engine.timers import next_due_ms, timer_event
from tests.property.strategies import (
    START_MS,
    TRAITS,
    Json,
    Step,
    journeys,
    step_lists,
    trait_values,
)
from tests.property.test_decide_matches_reference import load, snapshot

COMPARE = settings(
    deadline=None,
    max_examples=40,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CUSTOMERS = ("c0", "c1", "c2", "c3")
trait_sets = st.dictionaries(st.sampled_from(TRAITS), trait_values, max_size=2)
customer_traits = st.fixed_dictionaries({c: trait_sets for c in CUSTOMERS})
top_ks = st.none() | st.integers(1, 5)
windows = st.sampled_from((DEDUPE_WINDOW, 1, 3))


def comparable(decision: Decision) -> tuple[object, ...]:
    """Everything `decide_many` rebuilds of a decision."""
    journeys = [
        (j.journey, j.stage, j.previous_stage, j.transition, j.transition_line, j.friction_level,
         pytest.approx(j.friction_score, rel=1e-12, abs=1e-12))
        for j in decision.journeys
    ]  # fmt: skip
    return (
        decision.duplicate, journeys, decision.actions, decision.held_out, decision.exposures,
        decision.conversions, decision.ruleset_version,
    )  # fmt: skip


def loop_of_decide(
    ruleset: Ruleset,
    steps: Sequence[tuple[Step, int]],
    states: dict[str, CustomerState],
    top_k: int | None,
    window: int,
) -> list[Decision]:
    decisions = []
    for step, now_ms in steps:
        customer = step.event.customer_id
        decision, states[customer] = decide(
            ruleset, states[customer], step.event, now_ms, top_k=top_k, dedupe_window=window
        )
        decisions.append(decision)
    return decisions


def timed(
    ruleset: Ruleset, steps: Sequence[Step], initial: Mapping[str, CustomerState], window: int
) -> list[tuple[Step, int]]:
    """Each step with its time; a timer step as the customer's next due timer at its due time
    (found by deciding the steps before it), left out when none is due."""
    now_ms, out, states = START_MS, [], dict(initial)
    for step in steps:
        now_ms += step.gap_ms
        at_ms = now_ms
        customer = step.event.customer_id
        if step.timer:
            due_ms = next_due_ms(ruleset, states[customer])
            if due_ms is None:
                continue
            step, at_ms = (
                Step(timer_event(ruleset, states[customer], customer, due_ms), 0, {}, timer=True),
                due_ms,
            )
            now_ms = max(now_ms, due_ms)
        _, states[customer] = decide(
            ruleset, states[customer], step.event, at_ms, dedupe_window=window
        )
        out.append((step, at_ms))
    return out


def check_batches(
    journey_dicts: Sequence[Json],
    steps: Sequence[Step],
    traits: Mapping[str, Mapping[str, PropertyValue]],
    top_k: int | None,
    window: int,
    split: int,
    chunk_events: int = CHUNK_EVENTS,
) -> None:
    _, ruleset = load(journey_dicts)
    initial = {c: new_state(ruleset).with_traits(t) for c, t in traits.items()}
    events = timed(ruleset, steps, initial, window)
    expected_states = dict(initial)
    expected = loop_of_decide(ruleset, events, expected_states, top_k, window)
    states: dict[str, CustomerState] = dict(initial)
    decided: list[Decision] = []
    for part in (events[:split], events[split:]):
        many = decide_many(
            ruleset, [s.event for s, _ in part], [t for _, t in part], states,
            top_k=top_k, dedupe_window=window, chunk_events=chunk_events,
        )  # fmt: skip
        decided.extend(many.decision(i) for i in range(len(part)))
        states.update(many.states())
    for index, (got, wanted) in enumerate(zip(decided, expected, strict=True)):
        note(f"event {index}: {events[index][0].event} at {events[index][1]}")
        assert comparable(got) == comparable(wanted)
    for customer, state in expected_states.items():
        assert snapshot(states[customer]) == snapshot(state), customer


@COMPARE
@given(
    journey=journeys(),
    steps=step_lists(customers=CUSTOMERS),
    traits=customer_traits,
    top_k=top_ks,
    window=windows,
    split=st.integers(0, 25),
    chunk_events=st.sampled_from((1, 4, CHUNK_EVENTS)),
)
def test_one_journey_many_equals_a_loop_of_decide(
    journey: Json,
    steps: list[Step],
    traits: dict[str, dict[str, PropertyValue]],
    top_k: int | None,
    window: int,
    split: int,
    chunk_events: int,
) -> None:
    check_batches([journey], steps, traits, top_k, window, split, chunk_events)


@COMPARE
@given(
    first=journeys("j0"),
    second=journeys("j1"),
    steps=step_lists(customers=CUSTOMERS),
    traits=customer_traits,
    top_k=top_ks,
    split=st.integers(0, 25),
)
def test_two_journeys_many_equals_a_loop_of_decide(
    first: Json,
    second: Json,
    steps: list[Step],
    traits: dict[str, dict[str, PropertyValue]],
    top_k: int | None,
    split: int,
) -> None:
    check_batches([first, second], steps, traits, top_k, DEDUPE_WINDOW, split)


def whole(decision: Decision) -> tuple[object, ...]:
    """Everything `decide()` answers but the explanations (`decide_many`'s
    `decided_as_decide`): the strongest signals and the fields journey statistics read too,
    and each action's, exposure's and conversion's variant."""
    journeys = [
        (j.top_signals and [(s.signal, pytest.approx(s.score, rel=1e-12, abs=1e-12))
                            for s in j.top_signals],
         j.previous_stage_entered_ms, j.previous_event_ms, j.fired_signals)
        for j in decision.journeys
    ]  # fmt: skip
    return (*comparable(decision), journeys, decision.excluded, decision.not_fired)


def check_last_events(
    journey_dicts: Sequence[Json],
    steps: Sequence[Step],
    traits: Mapping[str, Mapping[str, PropertyValue]],
    top_k: int | None,
    window: int,
) -> None:
    """Each customer's last event, decided in one batch where it is their only one, from the
    state their earlier events left, against `decide()` on that state."""
    _, ruleset = load(journey_dicts)
    initial = {c: new_state(ruleset).with_traits(t) for c, t in traits.items()}
    events = timed(ruleset, steps, initial, window)
    last = {step.event.customer_id: n for n, (step, _) in enumerate(events)}
    before = dict(initial)
    loop_of_decide(ruleset, [e for n, e in enumerate(events) if n not in last.values()], before,
                   top_k, window)  # fmt: skip
    batch = [events[n] for n in sorted(last.values())]
    many = decide_many(
        ruleset, [s.event for s, _ in batch], [t for _, t in batch], before,
        top_k=top_k, dedupe_window=window,
    )  # fmt: skip
    for i, (step, at_ms) in enumerate(batch):
        customer = step.event.customer_id
        note(f"event {i}: {step.event} at {at_ms}")
        wanted, after = decide(
            ruleset, before[customer], step.event, at_ms, top_k=top_k, dedupe_window=window
        )
        got, got_after = many.decided_as_decide(i, before[customer], step.event)
        assert whole(got) == whole(wanted)
        assert snapshot(got_after) == snapshot(after), customer


@COMPARE
@given(
    journey=journeys(),
    steps=step_lists(customers=CUSTOMERS),
    traits=customer_traits,
    top_k=top_ks,
    window=windows,
)
def test_a_customers_only_event_in_a_batch_is_answered_as_decide_answers_it(
    journey: Json,
    steps: list[Step],
    traits: dict[str, dict[str, PropertyValue]],
    top_k: int | None,
    window: int,
) -> None:
    check_last_events([journey], steps, traits, top_k, window)


@COMPARE
@given(
    first=journeys("j0"),
    second=journeys("j1"),
    steps=step_lists(customers=CUSTOMERS),
    traits=customer_traits,
    top_k=top_ks,
)
def test_the_same_with_two_journeys(
    first: Json,
    second: Json,
    steps: list[Step],
    traits: dict[str, dict[str, PropertyValue]],
    top_k: int | None,
) -> None:
    check_last_events([first, second], steps, traits, top_k, DEDUPE_WINDOW)
