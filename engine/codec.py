"""CustomerState ↔ bytes: the journeys' arrays as they are, read by name under another ruleset.

Layout (schema version 2), a msgpack map::

    {"v": 2, "tr": {trait: value}, "ev": <uint64 event-id hashes>,
     "js": [layout digest, <int64 ints>, <float64 floats>, ...]}   (three entries a journey)

Each journey the customer has left its initial state in is stored as its two arrays, little
endian, beside the digest of its `StateLayout`: where that journey keeps each named part (stage,
counters, signals, offers, exposures, recent stages, timers, `since:` times, contact limits) in
them. Writing and reading a state under the ruleset in force copies arrays (a few µs, where
schema 1 spent 13 µs writing and 23 µs reading every part by name), and the arrays, mostly
NEVER_MS and zeros, compress to a third of schema 1's document.

A state written under another layout (an earlier ruleset, or a newer one on another server) is
read by name: its layout, looked up by digest among those this process knows (`layout_of`
learns every journey it lays out; `learn_layout` one read back from wherever layouts are kept,
the store's layout registry in the service), names each part, and what still means the same
thing under the ruleset in force is kept:
removed stages, counters, signals and actions are dropped; new ones start empty; a counter whose
bucket width changed starts empty; a customer whose stage no longer exists re-enters at the
first stage. A state whose layout is known nowhere raises `StateDecodeError` naming it.

Schema 1 (before 2026-12-07) stored every part by name, and is still read::

    {"v": 1, "tr": {trait: value}, "ev": <uint64 event-id hashes>,
     "j": {journey: {"st": stage, "in": entered_ms, "at": last_event_ms, "fa": friction_at_ms,
                     "c": {counter: [width_ms, n_buckets, head_epoch, <float64 buckets>]},
                     "f": {signal: score},
                     "a": {action: [last_shown_ms, <int64 cap history>]},
                     "x": {action: [exposed_ms, arm, {goal: converted_for_ms}, stage]},
                     "h": [[stage, entered_ms], ...],      (recent stages, newest first)
                     "ac": last_event_ms, "tm": timer_checked_ms,     (timers)
                     "sn": {event_type: last_sent_ms},                 (`since:` conditions)
                     "cl": {"<channel>/<per>": <int64 offer times>}}}}  (contact limits)

`x`, `h`, `ac`, `tm`, `sn` and `cl` are optional there. A state read under another layout goes
through that same by-name document, so both schemas migrate alike. Only bytes that are not a
state at all raise `StateDecodeError`; a state of a later schema (a newer journeyman's) raises
`StateFromNewerServer`, so that no caller reads it as a new customer and writes over it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from engine import history
from engine.compile import STAGE_HISTORY_SLOTS, CompiledJourney, Ruleset
from engine.errors import StateDecodeError, StateFromNewerServer
from engine.event import PropertyValue
from engine.kernels import codes
from engine.per_object import per_object
from engine.state import DEDUPE_WINDOW, CustomerState, JourneyState

SCHEMA_VERSION = 2
LAYOUT_DIGEST_BYTES = 8
# The version of a layout's description: a change to what it holds is a new version.
_DESCRIPTION_VERSION = 1
# More slots than any journey compiles to (200 generated rules take a few hundred; a counter
# at most 64): a description claiming more is damaged, and a state laid out by it would be
# gigabytes.
_MOST_SLOTS = 1 << 20
_FLOAT_LE = np.dtype("<f8")
_INT_LE = np.dtype("<i8")


@dataclass(frozen=True, slots=True)
class StateLayout:
    """Where one journey keeps each named part of a customer's state in its two arrays: what
    a state written under it needs to be read by name under any other ruleset. Plain ints and
    names, so that it can be kept (`description`) and read back (`learn_layout`) by processes
    that never compiled the journey."""

    journey: str
    n_ints: int
    n_floats: int
    stage_ids: tuple[str, ...]
    counters: tuple[tuple[str, int, int, int, int], ...]  # name, first, n_buckets, head, width
    signals: tuple[tuple[str, int], ...]  # name, float index
    actions: tuple[tuple[str, int, int, int], ...]  # name, last-shown index, first, count
    # action, exposed-at index, arm index, stage index, first conversion index
    exposures: tuple[tuple[str, int, int, int, int], ...]
    goals: tuple[str, ...]
    history: tuple[int, int]  # first index, entries (two ints each)
    activity_index: int
    timer_index: int
    since: tuple[tuple[str, int], ...]  # event type, index
    limits: tuple[tuple[str, int, int], ...]  # `<channel>/<per>`, first, count
    action_index: Mapping[str, int] = field(compare=False)  # name -> position in `actions`
    counter_index: Mapping[str, int] = field(compare=False)  # name -> position in `counters`
    description: bytes = field(compare=False)  # msgpack of the fields above
    digest: bytes = field(compare=False)  # LAYOUT_DIGEST_BYTES of blake2b(description)

    @classmethod
    def of(cls, journey: CompiledJourney) -> StateLayout:
        rules = journey.rules
        n_actions, n_goals = len(journey.action_ids), len(journey.goal_names)
        return _made(
            journey.name, int(rules.n_ints), int(rules.n_floats), journey.stage_ids,
            counters=[
                (name, int(rules.counter_offset[i]), int(rules.counter_buckets[i]),
                 int(rules.counter_head_index + i), int(rules.counter_width_ms[i]))
                for i, name in enumerate(journey.counter_names)
            ],
            signals=[
                (name, int(rules.friction_offset + i)) for i, name in enumerate(journey.signal_ids)
            ],
            actions=[
                (name, int(rules.action_last_shown_index + i), int(rules.action_cap_offset[i]),
                 int(rules.action_cap_count[i]))
                for i, name in enumerate(journey.action_ids)
            ],
            exposures=[
                (name, int(rules.exposure_index + i), int(rules.exposure_index + n_actions + i),
                 int(rules.exposure_index + 2 * n_actions + i),
                 int(rules.conversion_index + i * n_goals))
                for i, name in enumerate(journey.action_ids if n_goals else ())
            ],
            goals=journey.goal_names,
            history=(journey.history_index, STAGE_HISTORY_SLOTS),
            activity_index=int(rules.activity_index),
            timer_index=int(rules.timer_index),
            since=[
                (event_type, int(rules.since_index + j))
                for j, event_type in enumerate(journey.since_types)
            ],
            limits=[
                (key, int(rules.limit_offset[i]), int(rules.limit_count[i]))
                for i, key in enumerate(journey.limit_keys)
            ],
        )  # fmt: skip


def _made(
    journey: str, n_ints: int, n_floats: int, stage_ids: Iterable[str], **parts: Any
) -> StateLayout:
    """The layout of these parts, its description and digest made once here."""
    fields = (
        journey, n_ints, n_floats, tuple(stage_ids),
        tuple(map(tuple, parts["counters"])), tuple(map(tuple, parts["signals"])),
        tuple(map(tuple, parts["actions"])), tuple(map(tuple, parts["exposures"])),
        tuple(parts["goals"]), tuple(parts["history"]), parts["activity_index"],
        parts["timer_index"], tuple(map(tuple, parts["since"])), tuple(map(tuple, parts["limits"])),
    )  # fmt: skip
    description = msgpack.packb([_DESCRIPTION_VERSION, *fields], use_bin_type=True)
    digest = hashlib.blake2b(description, digest_size=LAYOUT_DIGEST_BYTES).digest()
    counters, actions = fields[4], fields[6]
    return StateLayout(
        *fields,
        action_index={a[0]: i for i, a in enumerate(actions)},
        counter_index={c[0]: i for i, c in enumerate(counters)},
        description=description, digest=digest,
    )  # fmt: skip


# Every layout this process knows, by digest: those it laid out and those it learned. A few
# hundred bytes each, one per distinct journey layout met, never dropped: a state written under
# any of them may still come.
_KNOWN: dict[bytes, StateLayout] = {}


def _laid_out(journey: CompiledJourney) -> StateLayout:
    layout = StateLayout.of(journey)
    return _KNOWN.setdefault(layout.digest, layout)


# Per compiled journey, while it lives.
_LAYOUTS: Callable[[CompiledJourney], StateLayout] = per_object(_laid_out)


def layout_of(journey: CompiledJourney) -> StateLayout:
    """`journey`'s state layout, known to this process from now on."""
    return _LAYOUTS(journey)


def layouts_of(ruleset: Ruleset) -> dict[bytes, bytes]:
    """Each journey's layout in `ruleset`: digest -> description, for keeping where processes
    that read its states (`learn_layout`) will look."""
    return {layout.digest: layout.description for layout in map(layout_of, ruleset.journeys)}


def learn_layout(description: bytes) -> bytes:
    """Know the layout `description` (from `layouts_of`) describes; its digest. Raises
    `StateDecodeError` if it is not a layout's description."""
    digest = hashlib.blake2b(description, digest_size=LAYOUT_DIGEST_BYTES).digest()
    if digest not in _KNOWN:
        _KNOWN[digest] = _read_description(description)
    return digest


def _read_description(description: bytes) -> StateLayout:
    try:
        version, journey, n_ints, n_floats, stage_ids, *parts = msgpack.unpackb(description)
        if version != _DESCRIPTION_VERSION:
            raise ValueError(f"description version {version}")
        counters, signals, actions, exposures, goals, history, activity, timer, since, limits = (
            parts
        )
        layout = _made(
            journey, n_ints, n_floats, stage_ids, counters=counters, signals=signals,
            actions=actions, exposures=exposures, goals=goals, history=history,
            activity_index=activity, timer_index=timer, since=since, limits=limits,
        )  # fmt: skip
        _check(layout)
        return layout
    except (ValueError, TypeError, IndexError, msgpack.exceptions.UnpackException) as error:
        raise StateDecodeError(f"not a state layout's description: {error}") from error


def _check(layout: StateLayout) -> None:
    """Raise ValueError unless every name is text and every slot lies inside the arrays: a
    layout read back is trusted to index a state's arrays."""
    n_ints, n_floats, goals = layout.n_ints, layout.n_floats, len(layout.goals)
    if not (type(n_ints) is int and type(n_floats) is int and n_ints >= codes.INT_HEADER_SIZE):
        raise ValueError("the arrays' sizes are not counts")
    if n_ints > _MOST_SLOTS or n_floats > _MOST_SLOTS:
        raise ValueError(f"arrays of {n_ints} and {n_floats} slots: more than any journey's")
    if not layout.stage_ids or any(type(c[4]) is not int or c[4] <= 0 for c in layout.counters):
        raise ValueError("no stages, or a counter bucket without a width")
    names: list[object] = [layout.journey, *layout.stage_ids, *layout.goals]
    names += [part[0] for part in (*layout.counters, *layout.signals, *layout.actions)]
    names += [part[0] for part in (*layout.exposures, *layout.since, *layout.limits)]
    if not all(isinstance(name, str) for name in names):
        raise ValueError("a name is not text")
    # (array size, first slot, slots): every slot the parts name
    slots = [(n_floats, first, n) for _, first, n, _, _ in layout.counters]
    slots += [(n_ints, head, 1) for _, _, _, head, _ in layout.counters]
    slots += [(n_floats, at, 1) for _, at in layout.signals]
    slots += [(n_ints, at, 1) for _, at, _, _ in layout.actions]
    slots += [(n_ints, first, count) for _, _, first, count in layout.actions]
    slots += [(n_ints, at, 1) for exposure in layout.exposures for at in exposure[1:4]]
    slots += [(n_ints, exposure[4], goals) for exposure in layout.exposures]
    slots += [(n_ints, layout.history[0], 2 * layout.history[1])]
    slots += [(n_ints, layout.activity_index, 1), (n_ints, layout.timer_index, 1)]
    slots += [(n_ints, at, 1) for _, at in layout.since]
    slots += [(n_ints, first, count) for _, first, count in layout.limits]
    for size, first, count in slots:
        if not (type(first) is int and type(count) is int and 0 <= first and 0 <= count):
            raise ValueError(f"slot {first!r} (x{count!r}) is not a position")
        if first + count > size:
            raise ValueError(f"slots {first}..{first + count} lie outside an array of {size}")


def unknown_layouts(data: bytes | None) -> list[bytes]:
    """The digests of the layouts a stored state was written under that this process does not
    know yet (none for bytes that are not a schema 2 state: decoding them says what is wrong,
    or that a newer journeyman wrote them)."""
    if data is None:
        return []
    try:
        document = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.exceptions.UnpackException):
        return []
    if not isinstance(document, dict) or document.get("v") != SCHEMA_VERSION:
        return []
    arrays = document.get("js")
    if not isinstance(arrays, list):
        return []
    return [d for d in arrays[::3] if isinstance(d, bytes) and d not in _KNOWN]


def _initial(journey: CompiledJourney) -> tuple[bytes, bytes]:
    ints, floats = journey.initial_state()
    return ints.astype(_INT_LE).tobytes(), floats.astype(_FLOAT_LE).tobytes()


# The arrays of a customer a journey has not seen, as stored: such a journey is left out.
_initial_bytes: Callable[[CompiledJourney], tuple[bytes, bytes]] = per_object(_initial)


def encode_state(ruleset: Ruleset, state: CustomerState) -> bytes:
    """Serialise `state` (laid out for `ruleset`) to bytes (schema 2)."""
    arrays: list[bytes] = []
    for journey in ruleset.journeys:
        found = state.journeys.get(journey.name)
        if found is None:
            continue
        layout = layout_of(journey)
        ints = found.ints.astype(_INT_LE, copy=False).tobytes()
        floats = found.floats.astype(_FLOAT_LE, copy=False).tobytes()
        if len(ints) != 8 * layout.n_ints or len(floats) != 8 * layout.n_floats:
            raise ValueError(
                f"the state of journey {journey.name!r} has another layout than the ruleset; "
                "decode stored state with engine.codec.decode_state(data, ruleset)"
            )
        if (ints, floats) != _initial_bytes(journey):
            arrays += (layout.digest, ints, floats)
    document = {
        "v": SCHEMA_VERSION,
        "tr": dict(state.traits),
        "ev": struct.pack(f"<{len(state.recent_event_ids)}Q", *state.recent_event_ids),
        "js": arrays,
    }
    return msgpack.packb(document, use_bin_type=True)  # type: ignore[no-any-return]


def _document(layout: StateLayout, ints: list[int], floats: list[float]) -> dict[str, Any]:
    """A journey's arrays written under `layout`, by name (schema 1's journey document)."""
    counters = {
        name: [width, n_buckets, ints[head], struct.pack(f"<{n_buckets}d", *buckets)]
        for name, first, n_buckets, head, width in layout.counters
        if any(buckets := floats[first : first + n_buckets])
    }
    actions = {
        name: [ints[last_shown_at], struct.pack(f"<{count}q", *ints[first : first + count])]
        for name, last_shown_at, first, count in layout.actions
        if ints[last_shown_at] != codes.NEVER_MS
    }
    stage = ints[codes.INT_STAGE]
    document: dict[str, Any] = {
        "st": layout.stage_ids[stage] if 0 <= stage < len(layout.stage_ids) else None,
        "in": ints[codes.INT_STAGE_ENTERED_MS],
        "at": ints[codes.INT_LAST_EVENT_MS],
        "fa": ints[codes.INT_FRICTION_AT_MS],
        "c": counters,
        "f": {name: floats[at] for name, at in layout.signals if floats[at] != 0.0},
        "a": actions,
        "x": _exposures(layout, ints),
        "ac": ints[layout.activity_index],
        "tm": ints[layout.timer_index],
        "h": [list(entry) for entry in history.entries_at(ints, *layout.history, layout.stage_ids)],
        "sn": {event_type: ints[at] for event_type, at in layout.since},
        "cl": {
            key: struct.pack(f"<{len(kept)}q", *kept)
            for key, first, count in layout.limits
            if (kept := [ms for ms in ints[first : first + count] if ms != codes.NEVER_MS])
        },
    }
    return document


def _exposures(layout: StateLayout, ints: list[int]) -> dict[str, Any]:
    exposures = {}
    for name, exposed_at, arm_at, stage_at, first in layout.exposures:
        exposed_ms = ints[exposed_at]
        stage = ints[stage_at]
        if exposed_ms != codes.NEVER_MS and 0 <= stage < len(layout.stage_ids):
            converted = {
                goal: ints[first + g]
                for g, goal in enumerate(layout.goals)
                if ints[first + g] != codes.NEVER_MS
            }
            exposures[name] = [exposed_ms, ints[arm_at], converted, layout.stage_ids[stage]]
    return exposures


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _restore_counters(layout: StateLayout, stored: Any, state: JourneyState) -> None:
    if not isinstance(stored, dict):
        return
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


def _restore_actions(layout: StateLayout, stored: Any, state: JourneyState) -> None:
    if not isinstance(stored, dict):
        return
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


def _restore_contacts(layout: StateLayout, stored: Any, state: JourneyState) -> None:
    """Each contact limit's offer times, by `<channel>/<per>`: a limit whose count changed
    keeps its latest offers; a new one starts empty."""
    if not isinstance(stored, dict):
        return
    for key, first, count in layout.limits:
        raw = stored.get(key)
        if not isinstance(raw, bytes):
            continue
        history = np.sort(np.frombuffer(raw[: len(raw) // 8 * 8], dtype="<i8"))[-count:]
        state.ints[first : first + history.shape[0]] = history


def _restore_exposures(layout: StateLayout, stored: Any, state: JourneyState) -> None:
    if not isinstance(stored, dict):
        return
    for name, exposed_at, arm_at, stage_at, first in layout.exposures:
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
        stage_index = layout.stage_ids.index(stage) if stage in layout.stage_ids else 0
        state.ints[stage_at] = stage_index
        for g, goal in enumerate(layout.goals):
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
    """A journey's state from its by-name document (`_document`), under `journey`."""
    state = JourneyState.initial(journey)
    if not isinstance(stored, dict):
        return state
    layout = layout_of(journey)
    stage = stored.get("st")
    if stage in layout.stage_ids:
        state.ints[codes.INT_STAGE] = layout.stage_ids.index(stage)
        state.ints[codes.INT_STAGE_ENTERED_MS] = _int(stored.get("in"), codes.NEVER_MS)
    state.ints[codes.INT_LAST_EVENT_MS] = _int(stored.get("at"), codes.NEVER_MS)
    state.ints[codes.INT_FRICTION_AT_MS] = _int(stored.get("fa"), codes.NEVER_MS)
    last_event = state.ints[codes.INT_LAST_EVENT_MS]
    state.ints[layout.activity_index] = _int(stored.get("ac"), last_event)
    state.ints[layout.timer_index] = _int(stored.get("tm"), codes.NEVER_MS)
    _restore_counters(layout, stored.get("c"), state)
    signals = stored.get("f")
    if isinstance(signals, dict):
        for name, at in layout.signals:
            score = signals.get(name)
            if isinstance(score, float | int) and not isinstance(score, bool) and score >= 0:
                state.floats[at] = float(score)
    _restore_actions(layout, stored.get("a"), state)
    _restore_exposures(layout, stored.get("x"), state)
    _restore_history(journey, stored.get("h"), state)
    _restore_contacts(layout, stored.get("cl"), state)
    sent = stored.get("sn")
    if isinstance(sent, dict):
        for event_type, at in layout.since:
            state.ints[at] = _int(sent.get(event_type), codes.NEVER_MS)
    return state


def _arrays(layout: StateLayout, ints: Any, floats: Any) -> tuple[np.ndarray, np.ndarray]:
    """A journey's stored arrays, checked against the layout they were written under."""
    if not (isinstance(ints, bytes) and isinstance(floats, bytes)) or (
        len(ints) != 8 * layout.n_ints or len(floats) != 8 * layout.n_floats
    ):
        raise StateDecodeError(
            f"stored customer state's arrays for journey {layout.journey!r} do not have the"
            f" sizes of the layout they name ({layout.n_ints} ints, {layout.n_floats} floats)"
        )
    return (
        np.frombuffer(ints, dtype=_INT_LE).astype(np.int64),
        np.frombuffer(floats, dtype=_FLOAT_LE).astype(np.float64),
    )


def _indexes_fit(layout: StateLayout, ints: list[int]) -> bool:
    """Whether the slots that the kernels use as indexes hold indexes (the kernels do not check
    bounds): the stage, and each exposure's arm and stage."""
    n_stages = len(layout.stage_ids)
    if not 0 <= ints[codes.INT_STAGE] < n_stages:
        return False
    return all(
        ints[arm_at] in _ARMS
        and (0 <= ints[stage_at] < n_stages or ints[stage_at] == codes.NEVER_MS)
        for _, _, arm_at, stage_at, _ in layout.exposures
    )


_ARMS = frozenset((codes.ARM_NONE, codes.ARM_TREATED, codes.ARM_CONTROL))


def _decode_journeys(arrays: Any, ruleset: Ruleset) -> dict[str, JourneyState]:
    if not isinstance(arrays, list) or len(arrays) % 3:
        raise StateDecodeError("stored customer state's journeys `js` are not digest/array triples")
    in_force = {layout_of(journey).digest: journey for journey in ruleset.journeys}
    by_name = {journey.name: journey for journey in ruleset.journeys}
    journeys = {}
    for at in range(0, len(arrays), 3):
        digest, ints, floats = arrays[at : at + 3]
        if not isinstance(digest, bytes):
            raise StateDecodeError(f"stored customer state names layout {digest!r}, not a digest")
        journey = in_force.get(digest)
        if journey is not None:
            journeys[journey.name] = _in_force(journey, ints, floats)
            continue
        written_under = _KNOWN.get(digest)
        if written_under is None:
            raise StateDecodeError(
                f"stored customer state was written under state layout {digest.hex()}, which"
                " this process has not learned (engine.codec.learn_layout): read the layout"
                " from where the writer kept it (the service's store does) before the state"
            )
        journey = by_name.get(written_under.journey)
        if journey is not None:  # else a journey the ruleset no longer has
            journeys[journey.name] = _by_name(journey, written_under, ints, floats)
    for journey in ruleset.journeys:
        if journey.name not in journeys:
            journeys[journey.name] = JourneyState.initial(journey)
    return journeys


def _in_force(journey: CompiledJourney, ints: Any, floats: Any) -> JourneyState:
    """A journey's state written under its layout in force: the arrays as they are."""
    layout = layout_of(journey)
    int_array, float_array = _arrays(layout, ints, floats)
    int_list = int_array.tolist()
    if _indexes_fit(layout, int_list):
        return JourneyState(int_array, float_array)
    # Damaged: what still reads by name.
    return _decode_journey(journey, _document(layout, int_list, float_array.tolist()))


def _by_name(
    journey: CompiledJourney, written_under: StateLayout, ints: Any, floats: Any
) -> JourneyState:
    """A journey's state written under another layout, read by name under `journey`."""
    int_array, float_array = _arrays(written_under, ints, floats)
    document = _document(written_under, int_array.tolist(), float_array.tolist())
    return _decode_journey(journey, document)


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
    """Read stored state for `ruleset`. Raises `StateDecodeError` if `data` is not a state, or
    was written under a layout this process does not know (`unknown_layouts`);
    `StateFromNewerServer` if a newer journeyman wrote it, under a later schema."""
    try:
        document = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.exceptions.UnpackException) as error:
        raise StateDecodeError(f"stored customer state is not msgpack: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("v"), int):
        raise StateDecodeError("stored customer state has no schema version `v`")
    version = document["v"]
    if version > SCHEMA_VERSION:
        raise StateFromNewerServer(version, SCHEMA_VERSION)
    if version == SCHEMA_VERSION:
        journeys = _decode_journeys(document.get("js"), ruleset)
    else:
        stored = document.get("j")
        stored = stored if isinstance(stored, dict) else {}
        journeys = {j.name: _decode_journey(j, stored.get(j.name)) for j in ruleset.journeys}
    return CustomerState(
        journeys=journeys,
        traits=_traits(document.get("tr")),
        recent_event_ids=_event_ids(document.get("ev")),
    )
