"""CustomerState ↔ msgpack bytes, by name, so that state outlives the ruleset that wrote it.

Layout (schema version 1), keys kept short because every customer pays for them::

    {"v": 1, "tr": {trait: value}, "ev": <uint64 event-id hashes>,
     "j": {journey: {"st": stage, "in": entered_ms, "at": last_event_ms, "fa": friction_at_ms,
                     "c": {counter: [width_ms, n_buckets, head_epoch, <float64 buckets>]},
                     "f": {signal: score},
                     "a": {action: [last_shown_ms, <int64 cap history>]},
                     "x": {action: [exposed_ms, arm, {goal: converted_for_ms}, stage]},
                     "h": [[stage, entered_ms], ...],      (recent stages, newest first)
                     "ac": last_event_ms, "tm": timer_checked_ms,     (timers, see below)
                     "sn": {event_type: last_sent_ms},                 (`since:` conditions)
                     "cl": {"<channel>/<per>": <int64 offer times>}}}}  (contact limits)

`x` (exposures, in journeys with goals) and `h` are optional: a state written before they
existed reads as a customer exposed to nothing, with no recent stages. So are `ac` (the
customer's last event, written only when a timer decided after it: `at` is the journey's clock)
and `tm` (the last timer checked in this stage visit, `engine.kernels.timers`), and `sn`: when
the customer last sent each event type a `since:` condition reads (by type, so a ruleset that
starts reading one more type finds the others kept, and the new one never sent).

Decoding under another ruleset keeps what still means the same thing: removed stages, counters,
signals and actions are dropped; new ones start empty; a counter whose bucket width changed starts
empty; a customer whose stage no longer exists re-enters at the first stage. Only bytes that are not
a state at all raise `StateDecodeError`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from engine import history
from engine.compile import CompiledJourney, Ruleset
from engine.errors import StateDecodeError
from engine.event import PropertyValue
from engine.kernels import codes
from engine.state import DEDUPE_WINDOW, CustomerState, JourneyState

SCHEMA_VERSION = 1
_FLOAT_LE = np.dtype("<f8")
_INT_LE = np.dtype("<i8")


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each named entry of a journey lives in its arrays, as plain ints: the codec runs
    twice per event, and numpy scalar reads and per-entry slicing were most of its time."""

    counters: tuple[tuple[str, int, int, int, int], ...]  # name, first, n_buckets, head, width
    signals: tuple[tuple[str, int], ...]  # name, float index
    actions: tuple[tuple[str, int, int, int], ...]  # name, last-shown index, first, count
    action_index: Mapping[str, int]  # name -> position in `actions`
    counter_index: Mapping[str, int]  # name -> position in `counters`
    # action, exposed-at index, arm index, stage index, first conversion index
    exposures: tuple[tuple[str, int, int, int, int], ...]
    goals: tuple[str, ...]

    @classmethod
    def of(cls, journey: CompiledJourney) -> _Layout:
        rules = journey.rules
        counters = tuple(
            (name, int(rules.counter_offset[i]), int(rules.counter_buckets[i]),
             int(rules.counter_head_index + i), int(rules.counter_width_ms[i]))
            for i, name in enumerate(journey.counter_names)
        )  # fmt: skip
        signals = tuple(
            (name, int(rules.friction_offset + i)) for i, name in enumerate(journey.signal_ids)
        )
        actions = tuple(
            (name, int(rules.action_last_shown_index + i), int(rules.action_cap_offset[i]),
             int(rules.action_cap_count[i]))
            for i, name in enumerate(journey.action_ids)
        )  # fmt: skip
        n_actions, n_goals = len(journey.action_ids), len(journey.goal_names)
        exposures = tuple(
            (name, rules.exposure_index + i, rules.exposure_index + n_actions + i,
             rules.exposure_index + 2 * n_actions + i, rules.conversion_index + i * n_goals)
            for i, name in enumerate(journey.action_ids if n_goals else ())
        )  # fmt: skip
        return cls(
            counters, signals, actions,
            action_index={a[0]: i for i, a in enumerate(actions)},
            counter_index={c[0]: i for i, c in enumerate(counters)},
            exposures=exposures, goals=journey.goal_names,
        )  # fmt: skip


# Per compiled journey (kept alive with its layout, so an id is never reused while cached).
_LAYOUTS: dict[int, tuple[CompiledJourney, _Layout]] = {}


def _layout(journey: CompiledJourney) -> _Layout:
    cached = _LAYOUTS.get(id(journey))
    if cached is None or cached[0] is not journey:
        cached = _LAYOUTS[id(journey)] = (journey, _Layout.of(journey))
    return cached[1]


def _encode_journey(journey: CompiledJourney, state: JourneyState) -> dict[str, Any]:
    layout = _layout(journey)
    ints, floats = state.ints, state.floats
    int_list, float_list = ints.tolist(), floats.tolist()
    floats_le = floats.astype(_FLOAT_LE, copy=False)
    counters = {}
    for name, first, n_buckets, head, width in layout.counters:
        if any(float_list[first : first + n_buckets]):
            raw = floats_le[first : first + n_buckets].tobytes()
            counters[name] = [width, n_buckets, int_list[head], raw]
    signals = {name: float_list[at] for name, at in layout.signals if float_list[at] != 0.0}
    actions = {}
    ints_le = ints.astype(_INT_LE, copy=False)
    for name, last_shown_at, first, count in layout.actions:
        last_shown = int_list[last_shown_at]
        if last_shown != codes.NEVER_MS:
            actions[name] = [last_shown, ints_le[first : first + count].tobytes()]
    document = {
        "st": journey.stage_ids[int_list[codes.INT_STAGE]],
        "in": int_list[codes.INT_STAGE_ENTERED_MS],
        "at": int_list[codes.INT_LAST_EVENT_MS],
        "fa": int_list[codes.INT_FRICTION_AT_MS],
        "c": counters,
        "f": signals,
        "a": actions,
    }
    exposures = _encode_exposures(journey, layout, int_list)
    if exposures:
        document["x"] = exposures
    # Timers (`engine.kernels.timers`): the last event, when a timer moved the clock past it,
    # and the timer checked in this stage visit; absent in the common case.
    activity = int_list[journey.rules.activity_index]
    if activity != document["at"]:
        document["ac"] = activity
    checked = int_list[journey.rules.timer_index]
    if checked != codes.NEVER_MS:
        document["tm"] = checked
    recent = history.entries_in(journey, int_list)
    if recent:
        document["h"] = [list(entry) for entry in recent]
    since_index = journey.rules.since_index
    sent = {
        event_type: int_list[since_index + j]
        for j, event_type in enumerate(journey.since_types)
        if int_list[since_index + j] != codes.NEVER_MS
    }
    if sent:
        document["sn"] = sent
    contacted = {
        key: struct.pack(f"<{len(history)}q", *history)
        for key, history in _contact_histories(journey, int_list)
        if history
    }
    if contacted:
        document["cl"] = contacted
    return document


def _contact_histories(
    journey: CompiledJourney, int_list: list[int]
) -> list[tuple[str, list[int]]]:
    """Per contact limit, its name and the offer times it remembers."""
    rules = journey.rules
    found = []
    for limit, key in enumerate(journey.limit_keys):
        first, count = int(rules.limit_offset[limit]), int(rules.limit_count[limit])
        found.append((key, [ms for ms in int_list[first : first + count] if ms != codes.NEVER_MS]))
    return found


def _encode_exposures(
    journey: CompiledJourney, layout: _Layout, int_list: list[int]
) -> dict[str, Any]:
    exposures = {}
    for name, exposed_at, arm_at, stage_at, first in layout.exposures:
        exposed_ms = int_list[exposed_at]
        if exposed_ms != codes.NEVER_MS:
            converted = {
                goal: int_list[first + g]
                for g, goal in enumerate(layout.goals)
                if int_list[first + g] != codes.NEVER_MS
            }
            stage = journey.stage_ids[int_list[stage_at]]
            exposures[name] = [exposed_ms, int_list[arm_at], converted, stage]
    return exposures


def encode_state(ruleset: Ruleset, state: CustomerState) -> bytes:
    """Serialise `state` (laid out for `ruleset`) to msgpack bytes."""
    journeys = {
        journey.name: _encode_journey(journey, state.journey(journey))
        for journey in ruleset.journeys
    }
    document = {
        "v": SCHEMA_VERSION,
        "tr": dict(state.traits),
        "ev": struct.pack(f"<{len(state.recent_event_ids)}Q", *state.recent_event_ids),
        "j": journeys,
    }
    return msgpack.packb(document, use_bin_type=True)  # type: ignore[no-any-return]


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _restore_counters(journey: CompiledJourney, stored: Any, state: JourneyState) -> None:
    if not isinstance(stored, dict):
        return
    layout = _layout(journey)
    for name, entry in stored.items():
        position = layout.counter_index.get(name)
        if position is None:
            continue  # a counter the ruleset no longer has
        if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[3], bytes)):
            continue
        _, first, n_buckets, head_at, width_ms = layout.counters[position]
        width, stored_buckets, head, raw = entry
        if width != width_ms or stored_buckets != n_buckets:
            continue  # another precision: the old buckets mean something else
        if len(raw) != 8 * n_buckets or not isinstance(head, int):
            continue
        state.floats[first : first + n_buckets] = np.frombuffer(raw, dtype="<f8")
        state.ints[head_at] = head


def _restore_actions(journey: CompiledJourney, stored: Any, state: JourneyState) -> None:
    if not isinstance(stored, dict):
        return
    layout = _layout(journey)
    for name, entry in stored.items():
        position = layout.action_index.get(name)
        if position is None:
            continue  # an action the ruleset no longer has
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], bytes)):
            continue
        _, last_shown_at, first, count = layout.actions[position]
        state.ints[last_shown_at] = _int(entry[0], codes.NEVER_MS)
        history = np.frombuffer(entry[1][: len(entry[1]) // 8 * 8], dtype="<i8")
        # A cap lowered (or removed) since the state was written keeps the latest shows.
        kept = (
            history if history.shape[0] <= count else np.sort(history)[history.shape[0] - count :]
        )
        state.ints[first : first + kept.shape[0]] = kept


def _restore_contacts(journey: CompiledJourney, stored: Any, state: JourneyState) -> None:
    """Each contact limit's offer times, by `<channel>/<per>`: a limit whose count changed
    keeps its latest offers; a new one starts empty."""
    if not isinstance(stored, dict):
        return
    rules = journey.rules
    for limit, key in enumerate(journey.limit_keys):
        raw = stored.get(key)
        if not isinstance(raw, bytes):
            continue
        first, count = int(rules.limit_offset[limit]), int(rules.limit_count[limit])
        history = np.sort(np.frombuffer(raw[: len(raw) // 8 * 8], dtype="<i8"))[-count:]
        state.ints[first : first + history.shape[0]] = history


def _restore_exposures(journey: CompiledJourney, stored: Any, state: JourneyState) -> None:
    if not isinstance(stored, dict):
        return
    for name, exposed_at, arm_at, stage_at, first in _layout(journey).exposures:
        entry = stored.get(name)
        if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[2], dict)):
            continue
        exposed_ms, arm, converted, stage = entry
        if _int(exposed_ms, codes.NEVER_MS) == codes.NEVER_MS or arm not in (
            codes.ARM_TREATED, codes.ARM_CONTROL
        ):  # fmt: skip
            continue
        state.ints[exposed_at] = exposed_ms
        state.ints[arm_at] = arm
        # A stage the ruleset no longer has: the exposure still counts, in the first stage.
        stage_index = journey.stage_ids.index(stage) if stage in journey.stage_ids else 0
        state.ints[stage_at] = stage_index
        for g, goal in enumerate(journey.goal_names):
            state.ints[first + g] = _int(converted.get(goal), codes.NEVER_MS)


def _restore_history(journey: CompiledJourney, stored: Any, state: JourneyState) -> None:
    if not isinstance(stored, list):
        return
    entries = []
    for entry in stored:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            break
        entries.append((entry[0], _int(entry[1], codes.NEVER_MS)))
    history.restore(journey, state, entries)


def _decode_journey(journey: CompiledJourney, stored: Any) -> JourneyState:
    state = JourneyState.initial(journey)
    if not isinstance(stored, dict):
        return state
    stage = stored.get("st")
    if stage in journey.stage_ids:
        state.ints[codes.INT_STAGE] = journey.stage_ids.index(stage)
        state.ints[codes.INT_STAGE_ENTERED_MS] = _int(stored.get("in"), codes.NEVER_MS)
    state.ints[codes.INT_LAST_EVENT_MS] = _int(stored.get("at"), codes.NEVER_MS)
    state.ints[codes.INT_FRICTION_AT_MS] = _int(stored.get("fa"), codes.NEVER_MS)
    last_event = state.ints[codes.INT_LAST_EVENT_MS]
    state.ints[journey.rules.activity_index] = _int(stored.get("ac"), last_event)
    state.ints[journey.rules.timer_index] = _int(stored.get("tm"), codes.NEVER_MS)
    _restore_counters(journey, stored.get("c"), state)
    signals = stored.get("f")
    if isinstance(signals, dict):
        for name, at in _layout(journey).signals:
            score = signals.get(name)
            if isinstance(score, float | int) and not isinstance(score, bool) and score >= 0:
                state.floats[at] = float(score)
    _restore_actions(journey, stored.get("a"), state)
    _restore_exposures(journey, stored.get("x"), state)
    _restore_history(journey, stored.get("h"), state)
    _restore_contacts(journey, stored.get("cl"), state)
    sent = stored.get("sn")
    if isinstance(sent, dict):
        for j, event_type in enumerate(journey.since_types):
            state.ints[journey.rules.since_index + j] = _int(sent.get(event_type), codes.NEVER_MS)
    return state


def _traits(stored: Any) -> Mapping[str, PropertyValue]:
    if not isinstance(stored, dict):
        return {}
    return {
        k: v
        for k, v in stored.items()
        if isinstance(k, str) and isinstance(v, str | int | float | bool)
    }


def _event_ids(stored: Any) -> tuple[int, ...]:
    if not isinstance(stored, bytes):
        return ()
    hashes = np.frombuffer(stored[: len(stored) // 8 * 8], dtype="<u8")
    return tuple(hashes[-DEDUPE_WINDOW:].tolist())


def decode_state(data: bytes, ruleset: Ruleset) -> CustomerState:
    """Read stored state for `ruleset`. Raises `StateDecodeError` if `data` is not a state."""
    try:
        document = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.exceptions.UnpackException) as error:
        raise StateDecodeError(f"stored customer state is not msgpack: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("v"), int):
        raise StateDecodeError("stored customer state has no schema version `v`")
    if document["v"] > SCHEMA_VERSION:
        raise StateDecodeError(
            f"stored customer state has schema version {document['v']}; this build reads "
            f"up to {SCHEMA_VERSION}: upgrade every server before writing the new version"
        )
    stored_journeys = document.get("j")
    stored_journeys = stored_journeys if isinstance(stored_journeys, dict) else {}
    return CustomerState(
        journeys={
            j.name: _decode_journey(j, stored_journeys.get(j.name)) for j in ruleset.journeys
        },
        traits=_traits(document.get("tr")),
        recent_event_ids=_event_ids(document.get("ev")),
    )
