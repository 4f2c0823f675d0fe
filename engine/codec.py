"""CustomerState ↔ msgpack bytes, by name, so that state outlives the ruleset that wrote it.

Layout (schema version 1), keys kept short because every customer pays for them::

    {"v": 1, "tr": {trait: value}, "ev": <uint64 event-id hashes>,
     "j": {journey: {"st": stage, "in": entered_ms, "at": last_event_ms, "fa": friction_at_ms,
                     "c": {counter: [width_ms, n_buckets, head_epoch, <float64 buckets>]},
                     "f": {signal: score},
                     "a": {action: [last_shown_ms, <int64 cap history>]}}}}

Decoding under another ruleset keeps what still means the same thing: removed stages, counters,
signals and actions are dropped; new ones start empty; a counter whose bucket width changed starts
empty; a customer whose stage no longer exists re-enters at the first stage. Only bytes that are not
a state at all raise `StateDecodeError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack
import numpy as np

from engine.compile import CompiledJourney, Ruleset
from engine.errors import StateDecodeError
from engine.event import PropertyValue
from engine.kernels import codes
from engine.state import DEDUPE_WINDOW, CustomerState, JourneyState

SCHEMA_VERSION = 1


def _encode_journey(journey: CompiledJourney, state: JourneyState) -> dict[str, Any]:
    rules, ints, floats = journey.rules, state.ints, state.floats
    counters = {}
    for index, name in enumerate(journey.counter_names):
        first, n_buckets = int(rules.counter_offset[index]), int(rules.counter_buckets[index])
        buckets = floats[first : first + n_buckets]
        if buckets.any():
            head = int(ints[rules.counter_head_index + index])
            width = int(rules.counter_width_ms[index])
            counters[name] = [width, n_buckets, head, buckets.astype("<f8").tobytes()]
    signals = {
        name: float(floats[rules.friction_offset + index])
        for index, name in enumerate(journey.signal_ids)
        if floats[rules.friction_offset + index] != 0.0
    }
    actions = {}
    for index, name in enumerate(journey.action_ids):
        last_shown = int(ints[rules.action_last_shown_index + index])
        if last_shown != codes.NEVER_MS:
            first, count = int(rules.action_cap_offset[index]), int(rules.action_cap_count[index])
            history = ints[first : first + count].astype("<i8").tobytes()
            actions[name] = [last_shown, history]
    return {
        "st": journey.stage_ids[int(ints[codes.INT_STAGE])],
        "in": int(ints[codes.INT_STAGE_ENTERED_MS]),
        "at": int(ints[codes.INT_LAST_EVENT_MS]),
        "fa": int(ints[codes.INT_FRICTION_AT_MS]),
        "c": counters,
        "f": signals,
        "a": actions,
    }


def encode_state(ruleset: Ruleset, state: CustomerState) -> bytes:
    """Serialise `state` (laid out for `ruleset`) to msgpack bytes."""
    journeys = {
        journey.name: _encode_journey(journey, state.journey(journey))
        for journey in ruleset.journeys
    }
    document = {
        "v": SCHEMA_VERSION,
        "tr": dict(state.traits),
        "ev": np.array(state.recent_event_ids, dtype="<u8").tobytes(),
        "j": journeys,
    }
    return msgpack.packb(document, use_bin_type=True)  # type: ignore[no-any-return]


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _restore_counters(journey: CompiledJourney, stored: Any, state: JourneyState) -> None:
    rules = journey.rules
    for index, name in enumerate(journey.counter_names):
        entry = stored.get(name) if isinstance(stored, dict) else None
        if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[3], bytes)):
            continue
        width, n_buckets, head, raw = entry
        if width != rules.counter_width_ms[index] or n_buckets != rules.counter_buckets[index]:
            continue  # another precision: the old buckets mean something else
        if len(raw) != 8 * n_buckets or not isinstance(head, int):
            continue
        first = int(rules.counter_offset[index])
        state.floats[first : first + n_buckets] = np.frombuffer(raw, dtype="<f8")
        state.ints[rules.counter_head_index + index] = head


def _restore_actions(journey: CompiledJourney, stored: Any, state: JourneyState) -> None:
    rules = journey.rules
    for index, name in enumerate(journey.action_ids):
        entry = stored.get(name) if isinstance(stored, dict) else None
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], bytes)):
            continue
        state.ints[rules.action_last_shown_index + index] = _int(entry[0], codes.NEVER_MS)
        history = np.frombuffer(entry[1][: len(entry[1]) // 8 * 8], dtype="<i8")
        count = int(rules.action_cap_count[index])
        # A cap lowered (or removed) since the state was written keeps the latest shows.
        kept = (
            history if history.shape[0] <= count else np.sort(history)[history.shape[0] - count :]
        )
        first = int(rules.action_cap_offset[index])
        state.ints[first : first + kept.shape[0]] = kept


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
    _restore_counters(journey, stored.get("c"), state)
    signals = stored.get("f")
    for index, name in enumerate(journey.signal_ids):
        score = signals.get(name) if isinstance(signals, dict) else None
        if isinstance(score, float | int) and not isinstance(score, bool) and score >= 0:
            state.floats[journey.rules.friction_offset + index] = float(score)
    _restore_actions(journey, stored.get("a"), state)
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
    return tuple(int(h) for h in hashes[-DEDUPE_WINDOW:])


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
