"""Timed transitions: what a timer decision may fire, and what it leaves alone.

A timer is a decision without an event (its event type code is TIMER_EVENT), made when a timed
transition of the customer's stage falls due (`engine.timers.next_due_ms` says when):

- `after: d` is due `d` after the customer entered the stage;
- `idle: d` is due `d` after the customer's last event, and never before the stage was entered.

Each is checked once per due time: a timer decision records its time in the journey's timer slot
(reset when the customer changes stage), and a timed transition whose due time is not after that
slot has had its turn. A timer counts nothing, fires no friction signal, reaches no goal, and is
not the customer's activity: idle time still runs from their last event.
"""

from __future__ import annotations

from engine.kernels.codes import (
    INT_STAGE_ENTERED_MS,
    NEVER_MS,
    TIMER_AFTER,
    TIMER_EVENT,
    TIMER_NONE,
)
from engine.kernels.jit import kernel


@kernel
def _is_timer(event):
    """True when the event being decided is a timer."""
    return event.codes[0] == TIMER_EVENT


@kernel
def _last_activity_ms(rules, ints):
    """The customer's last event in this journey (NEVER_MS before the first)."""
    return ints[rules.activity_index]


@kernel
def _due_ms(rules, ints, transition):
    """When timed `transition` falls due for the customer's current stage visit.

    Parameters
    ----------
    rules : CompiledRules
    ints : np.ndarray, int64, shape (n_ints,)
    transition : int, a transition whose `transition_timer` is not TIMER_NONE
    """
    entered = ints[INT_STAGE_ENTERED_MS]
    delay = rules.transition_delay_ms[transition]
    if rules.transition_timer[transition] == TIMER_AFTER:
        return entered + delay
    activity = ints[rules.activity_index]
    if activity == NEVER_MS:
        return entered + delay
    return max(entered, activity + delay)


@kernel
def _mute_event_rules(rules, values):
    """A timer is no event: no counter counts it, no signal fires, no goal is reached.

    `values` (bool, one per condition node) holds the event-phase nodes, already evaluated;
    their roots are set false (a `not: {event: ...}` would otherwise hold for a timer).
    """
    for counter in range(rules.counter_root.shape[0]):
        values[rules.counter_root[counter]] = False
    for signal in range(rules.signal_root.shape[0]):
        values[rules.signal_root[signal]] = False
    for goal in range(rules.goal_root.shape[0]):
        values[rules.goal_root[goal]] = False


@kernel
def _gate_transitions(rules, ints, stage, clock_ms, is_timer, values):
    """Leave true only the transitions this decision may fire, in `values` (their roots).

    On an event, timed transitions never fire. On a timer, only the timed transitions from
    `stage` whose due time has come (at or before `clock_ms`) and was not checked before
    (after the timer slot) may fire; event transitions never do.
    """
    checked_ms = ints[rules.timer_index]
    for transition in range(rules.transition_root.shape[0]):
        root = rules.transition_root[transition]
        if rules.transition_timer[transition] == TIMER_NONE:
            if is_timer:
                values[root] = False
            continue
        if not is_timer or not rules.transition_from[transition, stage]:
            values[root] = False
            continue
        due = _due_ms(rules, ints, transition)
        if due > clock_ms or due <= checked_ms:
            values[root] = False


@kernel
def _after_decision(rules, ints, clock_ms, is_timer, moved):
    """Book-keeping once the stage is settled: an event is the customer's activity; a timer
    marks its time as checked; a new stage visit starts with nothing checked."""
    if not is_timer:
        ints[rules.activity_index] = clock_ms
    if moved:
        ints[rules.timer_index] = NEVER_MS
    elif is_timer:
        ints[rules.timer_index] = clock_ms
