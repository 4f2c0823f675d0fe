"""`ManyDecisions.decided_as_decide` on the real rules in `rules/`: simulated shoppers' events
decided in batches where each customer has one event, each answer against `decide()` on the same
state, whole (the variants of retail's actions included), and the states after against its.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.traffic import TimedEvent, shopper_stream
from engine.compile import Ruleset
from engine.decide import decide
from engine.event import Event
from engine.many import decide_many
from engine.state import CustomerState, new_state
from engine.timers import next_due_ms, timer_event
from server.rules.rulesource import load_ruleset
from tests.property.test_decide_many import whole
from tests.property.test_decide_matches_reference import snapshot

RULES = Path(__file__).parents[3] / "rules"
QUIET_MS = 61 * 24 * 3_600_000


def _rounds(events: list[TimedEvent]) -> list[list[TimedEvent]]:
    """The events in time order, cut where a customer would come twice in one round."""
    rounds: list[list[TimedEvent]] = [[]]
    seen: set[str] = set()
    for timed in events:
        if timed.event.customer_id in seen:
            rounds.append([])
            seen.clear()
        rounds[-1].append(timed)
        seen.add(timed.event.customer_id)
    return rounds


@pytest.mark.parametrize(
    "files", [["retail.yaml"], ["retail.yaml", "trial.yaml", "loan_application.yaml"]]
)
def test_each_shoppers_event_decided_in_a_batch_is_answered_as_decide_answers_it(
    files: list[str],
) -> None:
    ruleset: Ruleset = load_ruleset([str(RULES / name) for name in files])
    events, traits = shopper_stream(120, 10, seed=7)
    states: dict[str, CustomerState] = {
        customer: new_state(ruleset).with_traits(t) for customer, t in traits.items()
    }
    offered_variants = 0
    for batch in _rounds(events):
        offered_variants += _check_batch(ruleset, batch, states)
    # Then the timers due, and each shopper back after 61 quiet days: retail's buyers reach
    # churn_risk then, where its win-back experiment offers variants.
    offered_variants += _check_batch(ruleset, _due_timers(ruleset, states), states)
    offered_variants += _check_batch(ruleset, _back_after(events, QUIET_MS), states)
    assert len(events) > 1_000
    assert offered_variants > 0  # retail's variants were offered: they were compared too


def _check_batch(
    ruleset: Ruleset, batch: list[TimedEvent], states: dict[str, CustomerState]
) -> int:
    """Decide `batch` (one event per customer) both ways and compare; `states` move on. Returns
    how many actions offered had a variant."""
    many = decide_many(ruleset, [t.event for t in batch], [t.now_ms for t in batch], states)
    offered_variants = 0
    for i, timed in enumerate(batch):
        customer = timed.event.customer_id
        wanted, after = decide(ruleset, states[customer], timed.event, timed.now_ms)
        got, got_after = many.decided_as_decide(i, states[customer], timed.event)
        assert whole(got) == whole(wanted), timed.event
        assert snapshot(got_after) == snapshot(after), timed.event
        offered_variants += sum(1 for action in got.actions if action.variant)
        states[customer] = after
    return offered_variants


def _back_after(events: list[TimedEvent], quiet_ms: int) -> list[TimedEvent]:
    """A page view of each shopper `quiet_ms` after their last event."""
    last: dict[str, int] = {}
    for timed in events:
        last[timed.event.customer_id] = timed.now_ms
    return [
        TimedEvent(
            Event(f"{customer}-back", customer, "page_view", "web", "home", {}), at_ms + quiet_ms
        )
        for customer, at_ms in last.items()
    ]


def _due_timers(ruleset: Ruleset, states: dict[str, CustomerState]) -> list[TimedEvent]:
    """Each customer's next timer, as the event the timer loop decides at its due time."""
    due = []
    for customer, state in states.items():
        at_ms = next_due_ms(ruleset, state)
        if at_ms is not None:
            event: Event = timer_event(ruleset, state, customer, at_ms)
            due.append(TimedEvent(event, at_ms))
    return due
