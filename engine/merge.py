"""Identity stitching: an anonymous visitor's journey merged into the known customer's.

The documented rule, per journey: the stage further along the journey file's order is kept (with
the time it was entered); counters are summed bucket by bucket; friction scores are summed once
both are decayed to the later of their times; the action history is united (latest show time,
latest cap history entries); of two exposures to an action the first is kept, with its group
and conversions, as attribution counts the first exposure. The customer's traits win over the
visitor's; recent event ids are united so that a retried event is still recognised.
"""

from __future__ import annotations

import numpy as np

from engine import history
from engine.compile import CompiledJourney, Ruleset
from engine.kernels import codes, readout
from engine.state import DEDUPE_WINDOW, CustomerState, JourneyState


def _merge_counters(
    journey: CompiledJourney, a: JourneyState, b: JourneyState, into: JourneyState
) -> None:
    """Sums bucket by bucket, over the window that ends at the merged customer's clock (their
    later last event) or at the newer head: one side's head may be older than the other's last
    event (a stored counter that was all zero keeps no head), and reading the merged window as
    of that older head would count events the merged customer's clock has already left."""
    rules = journey.rules
    clock_ms = int(into.ints[codes.INT_LAST_EVENT_MS])
    for counter in range(len(journey.counter_names)):
        head = max(
            readout.counter_head(rules, a.ints, counter),
            readout.counter_head(rules, b.ints, counter),
        )
        if head == codes.NEVER_MS:
            continue
        if clock_ms != codes.NEVER_MS:
            head = max(head, clock_ms // int(rules.counter_width_ms[counter]))
        total = readout.counter_window(rules, a.ints, a.floats, counter, head)
        total += readout.counter_window(rules, b.ints, b.floats, counter, head)
        readout.store_counter_window(rules, into.ints, into.floats, counter, total, head)


def _merge_friction(
    journey: CompiledJourney, a: JourneyState, b: JourneyState, into: JourneyState
) -> None:
    rules = journey.rules
    at = max(int(a.ints[codes.INT_FRICTION_AT_MS]), int(b.ints[codes.INT_FRICTION_AT_MS]))
    merged = readout.decayed_scores(rules, a.ints, a.floats, at)
    merged += readout.decayed_scores(rules, b.ints, b.floats, at)
    into.floats[rules.friction_offset : rules.friction_offset + merged.shape[0]] = merged
    into.ints[codes.INT_FRICTION_AT_MS] = at


def _merge_actions(
    journey: CompiledJourney, a: JourneyState, b: JourneyState, into: JourneyState
) -> None:
    rules = journey.rules
    for action in range(len(journey.action_ids)):
        slot = rules.action_last_shown_index + action
        into.ints[slot] = max(a.ints[slot], b.ints[slot])
        first, count = int(rules.action_cap_offset[action]), int(rules.action_cap_count[action])
        _merge_history(a, b, into, first, count)
    for limit in range(len(journey.limit_keys)):  # the contact limits: the latest offers
        _merge_history(a, b, into, int(rules.limit_offset[limit]), int(rules.limit_count[limit]))


def _merge_history(
    a: JourneyState, b: JourneyState, into: JourneyState, first: int, count: int
) -> None:
    """The latest `count` offer times of both, in slots `first`... (a cap or a contact limit)."""
    if count:
        history = np.concatenate([a.ints[first : first + count], b.ints[first : first + count]])
        into.ints[first : first + count] = np.sort(history)[-count:]


def _merge_exposures(
    journey: CompiledJourney, a: JourneyState, b: JourneyState, into: JourneyState
) -> None:
    rules = journey.rules
    n_actions, n_goals = len(journey.action_ids), len(journey.goal_names)
    for action in range(n_actions if n_goals else 0):
        exposed = rules.exposure_index + action
        a_ms, b_ms = int(a.ints[exposed]), int(b.ints[exposed])
        if b_ms == codes.NEVER_MS or (a_ms != codes.NEVER_MS and a_ms <= b_ms):
            continue  # `into` holds a's already
        first = rules.conversion_index + action * n_goals
        into.ints[exposed] = b_ms
        into.ints[exposed + n_actions] = b.ints[exposed + n_actions]
        into.ints[exposed + 2 * n_actions] = b.ints[exposed + 2 * n_actions]
        into.ints[first : first + n_goals] = b.ints[first : first + n_goals]


def merge_journey(
    journey: CompiledJourney, known: JourneyState, visitor: JourneyState
) -> JourneyState:
    """One journey's state of a customer who was `visitor` before being identified as `known`."""
    merged = JourneyState(known.ints.copy(), known.floats.copy())
    if visitor.ints[codes.INT_STAGE] > known.ints[codes.INT_STAGE] or (
        known.ints[codes.INT_LAST_EVENT_MS] == codes.NEVER_MS
    ):
        merged.ints[codes.INT_STAGE] = visitor.ints[codes.INT_STAGE]
        merged.ints[codes.INT_STAGE_ENTERED_MS] = visitor.ints[codes.INT_STAGE_ENTERED_MS]
        history.copy_history(journey, visitor, merged)  # the recent stages of the stage kept
        # The timers checked in that stage visit go with it (`engine.kernels.timers`).
        timer = journey.rules.timer_index
        merged.ints[timer] = visitor.ints[timer]
    merged.ints[codes.INT_LAST_EVENT_MS] = max(
        known.ints[codes.INT_LAST_EVENT_MS], visitor.ints[codes.INT_LAST_EVENT_MS]
    )
    activity = journey.rules.activity_index  # the later last event of the two
    merged.ints[activity] = max(known.ints[activity], visitor.ints[activity])
    since = slice(journey.rules.since_index, journey.rules.since_index + len(journey.since_types))
    merged.ints[since] = np.maximum(known.ints[since], visitor.ints[since])  # the later one
    _merge_counters(journey, known, visitor, merged)
    _merge_friction(journey, known, visitor, merged)
    _merge_actions(journey, known, visitor, merged)
    _merge_exposures(journey, known, visitor, merged)
    return merged


def merge_states(ruleset: Ruleset, known: CustomerState, visitor: CustomerState) -> CustomerState:
    """The known customer's state with the anonymous `visitor`'s journey merged in."""
    journeys = {
        j.name: merge_journey(j, known.journey(j), visitor.journey(j)) for j in ruleset.journeys
    }
    seen = [h for h in (*visitor.recent_event_ids, *known.recent_event_ids)]
    recent = tuple(dict.fromkeys(seen))[-DEDUPE_WINDOW:]
    return CustomerState(journeys, {**visitor.traits, **known.traits}, recent)
