"""Timers: the decisions time makes without an event (`after:` and `idle:` transitions).

A timer is decided by the same `decide()` as an event, on `timer_event(ruleset, state, due_ms)`
at `due_ms`, the customer's next due time (`next_due_ms`). What a timer may fire, and what it leaves
alone, is `engine.kernels.timers`. The service keeps each customer's next due time beside their
state, so that it knows whom to decide when (`server.decisions.timers`); a scenario's `advance:`
decides the timers that fall due in between, in order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.compile import CompiledJourney, Ruleset
from engine.event import Event
from engine.kernels import codes
from engine.per_object import per_object
from engine.state import CustomerState

# The type of a timer's synthetic event; apps cannot send it (`engine.kernels.codes.TIMER_EVENT`
# is what the kernels see, whatever the rules mention).
TIMER_EVENT_TYPE = "journeyman.timer"
TIMER_EVENT_ID_PREFIX = "timer:"


def timer_event(ruleset: Ruleset, state: CustomerState, customer_id: str, due_ms: int) -> Event:
    """The synthetic event of the customer's timer due at `due_ms`, `timer:<due ms>:<visit>`.

    The id names the due time and the stage visit it falls due in (a digest of each journey's
    stage and when it was entered), so the same timer decided twice is a repeated event, while
    a timer that moves the customer into a stage whose own timer is due at the same instant
    (an `idle:` timer whose quiet time has already passed) is a new one."""
    visit = ";".join(
        f"{journey.name}={int(current.ints[codes.INT_STAGE])}@"
        f"{int(current.ints[codes.INT_STAGE_ENTERED_MS])}"
        for journey in ruleset.journeys
        if (current := state.journeys.get(journey.name)) is not None
    )
    digest = hashlib.blake2b(visit.encode(), digest_size=4).hexdigest()
    return Event(f"{TIMER_EVENT_ID_PREFIX}{due_ms}:{digest}", customer_id, TIMER_EVENT_TYPE)


def timer_due_ms(event: Event) -> int:
    """The due time a timer event names."""
    return int(event.event_id.removeprefix(TIMER_EVENT_ID_PREFIX).partition(":")[0])


def is_timer(event: Event) -> bool:
    return event.type == TIMER_EVENT_TYPE


def type_code(strings: Mapping[str, int], event_type: str) -> int:
    """The kernels' code of an event type: its interned string, TIMER_EVENT for a timer."""
    if event_type == TIMER_EVENT_TYPE:
        return codes.TIMER_EVENT
    return strings.get(event_type, codes.UNKNOWN_STRING)


@dataclass(frozen=True, slots=True)
class _Timed:
    """Per stage, its timed transitions: (kind, delay ms)."""

    by_stage: tuple[tuple[tuple[int, int], ...], ...]


def _timed_transitions(journey: CompiledJourney) -> _Timed:
    rules = journey.rules
    kinds, delays = rules.transition_timer.tolist(), rules.transition_delay_ms.tolist()
    targets = rules.transition_to.tolist()
    by_stage = tuple(
        tuple(
            (kinds[t], delays[t])
            for t in range(len(kinds))
            if kinds[t] != codes.TIMER_NONE
            and rules.transition_from[t, stage]
            and targets[t] != stage
        )
        for stage in range(len(journey.stage_ids))
    )
    return _Timed(by_stage)


_timed: Callable[[CompiledJourney], _Timed] = per_object(_timed_transitions)


def has_timers(ruleset: Ruleset) -> bool:
    """True when some journey of `ruleset` has a timed transition."""
    return any(
        any(kind != codes.TIMER_NONE for kind in journey.rules.transition_timer.tolist())
        for journey in ruleset.journeys
    )


def journey_due_ms(journey: CompiledJourney, state: CustomerState) -> int | None:
    """When the next timed transition from the customer's stage in `journey` falls due (not
    checked yet), or None when none will. A customer the journey has not seen has none."""
    current = state.journeys.get(journey.name)
    if current is None:
        return None
    ints = current.ints
    timed = _timed(journey).by_stage[int(ints[codes.INT_STAGE])]
    if not timed:
        return None
    entered = int(ints[codes.INT_STAGE_ENTERED_MS])
    if entered == codes.NEVER_MS:
        return None
    activity = int(ints[journey.rules.activity_index])
    checked = int(ints[journey.rules.timer_index])
    found: int | None = None
    for kind, delay_ms in timed:
        if kind == codes.TIMER_AFTER or activity == codes.NEVER_MS:
            due = entered + delay_ms
        else:
            due = max(entered, activity + delay_ms)
        if due > checked and (found is None or due < found):
            found = due
    return found


def next_due_ms(ruleset: Ruleset, state: CustomerState) -> int | None:
    """The customer's next due time over every journey (ms since the epoch), None if none."""
    found: int | None = None
    for journey in ruleset.journeys:
        due = journey_due_ms(journey, state)
        if due is not None and (found is None or due < found):
            found = due
    return found
