"""What one decision, or one customer appearing, leaving or merged, adds to the journey
statistics the map and `GetJourneyStats` read: entries, moves per designed transition and
from-stage, time in stage, friction per stage, and each customer's stage and hour of last event
(for stalls). Pure: increments by (key, field), summed by `JourneyStats` and written in its flush.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from engine.decision import JourneyOutcome
from server.store.keys import (
    Keyspace,
    activity_field,
    departure_field,
    entry_field,
    friction_level_field,
    move_field,
    signal_field,
    stage_time_bucket,
    stage_time_field,
)

Increments = Counter[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a customer stands in one journey, outside a decision: stage and last event (ms
    since the epoch; 0 for none yet)."""

    stage: str
    last_event_ms: int


def decision_increments(
    keys: Keyspace,
    outcomes: Sequence[JourneyOutcome],
    day: str,
    at_ms: int,
    touchpoint: str,
    *,
    is_new: bool,
    into: Increments,
) -> None:
    """Add to `into` what a stored decision made at `at_ms` (UTC `day`) counts: `is_new` is
    the customer's first event, when it entered each journey's first stage."""
    for outcome in outcomes:
        day_key = keys.journey_day(outcome.journey, day)
        left = outcome.previous_stage
        if is_new:
            into[day_key, entry_field(left)] += 1
        if outcome.changed:
            entered_ms = outcome.previous_stage_entered_ms or at_ms
            bucket = stage_time_bucket(max(0, at_ms - entered_ms))
            into[day_key, move_field(outcome.transition or "", left)] += 1
            into[day_key, entry_field(outcome.stage)] += 1
            into[day_key, stage_time_field(left, bucket)] += 1
        into[day_key, friction_level_field(left, outcome.friction_level)] += 1
        for signal in outcome.fired_signals:
            into[day_key, signal_field(left, signal, touchpoint)] += 1
        before = activity_field(left, outcome.previous_event_ms)
        after = activity_field(outcome.stage, at_ms)
        if before != after:
            activity = keys.activity(outcome.journey)
            if outcome.previous_event_ms:
                into[activity, before] -= 1
            into[activity, after] += 1


def move_increments(
    keys: Keyspace,
    journey: str,
    before: Standing | None,
    after: Standing | None,
    day: str,
    *,
    into: Increments,
) -> None:
    """Add to `into` a customer's move outside a decision on UTC `day`: appeared (`before`
    None), left (`after` None: forgotten, merged into another) or merged."""
    day_key, activity = keys.journey_day(journey, day), keys.activity(journey)
    if before is not None and (after is None or after.stage != before.stage):
        into[day_key, departure_field(before.stage)] += 1
    if after is not None and (before is None or after.stage != before.stage):
        into[day_key, entry_field(after.stage)] += 1
    for standing, delta in ((before, -1), (after, 1)):
        if standing is not None and standing.last_event_ms:
            into[activity, activity_field(standing.stage, standing.last_event_ms)] += delta
