"""Validated journeys → `Ruleset`: contiguous arrays for the kernels plus name tables for people.

Strings are interned once for the whole ruleset, and every event property or trait a rule reads gets
a fixed slot in a feature vector, so one event is turned into arrays once, whatever the number of
journeys.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.dates import date_slot_name
from engine.describe import describe_condition
from engine.event import RESPONDED_ACTION_PROPERTY, RESPONSE_EVENT_TYPE, RESPONSE_PROPERTY
from engine.kernels import codes
from engine.kernels.compiled import (
    CompiledRules,
    FloatArray,
    IntArray,
    MaskArray,
    pack_rules,
)
from engine.quiet import clock_minute, offset_slot_name
from engine.rules.load import LoadedJourney
from engine.rules.model import Action, Condition, Journey, Transition, duration_ms


# weakref_slot: the caches derived from a compiled journey or ruleset (`engine.per_object`)
# forget it when it is freed.
@dataclass(frozen=True, slots=True, weakref_slot=True)
class CompiledJourney:
    """One journey: its kernel arrays and the names and texts explanations need."""

    name: str
    version: str
    source: str
    source_sha256: str  # of the journey file's text
    rules: CompiledRules
    packed_arrays: tuple[np.ndarray[Any, Any], ...]  # `PackedRules`, as kernels are called
    top_k: int
    stage_ids: tuple[str, ...]
    transition_ids: tuple[str, ...]
    transition_lines: tuple[int, ...]
    counter_names: tuple[str, ...]
    signal_ids: tuple[str, ...]
    level_names: tuple[str, ...]
    action_ids: tuple[str, ...]
    action_channels: tuple[str | None, ...]
    action_contents: tuple[Mapping[str, Any], ...]
    action_reasons: tuple[str, ...]
    segment_names: tuple[str, ...]
    goal_names: tuple[str, ...]
    since_types: tuple[str, ...]  # the event types `since:` conditions read, in slot order
    limit_keys: tuple[str, ...]  # per contact limit, `<channel>/<per>`: its name in the state
    topic_names: tuple[str, ...]  # friction topics, in the order of `signal_topic`
    adaptive_goal: int  # the goal adaptive arbitration learns from; -1: none
    offer_slots: tuple[tuple[int, int, int], ...]  # per action: last-shown slot, cap slots, cap
    history_index: int  # the recent stages (`engine.history`), in the int state
    model: Journey  # the validated journey compiled: labels and design, for reports and the map

    def initial_state(self) -> tuple[IntArray, FloatArray]:
        """The int and float state of a customer this journey has never seen."""
        ints = np.full(self.rules.n_ints, codes.NEVER_MS, dtype=np.int64)
        ints[codes.INT_STAGE] = 0
        n_actions = len(self.action_ids)
        arms = self.rules.exposure_index + n_actions
        ints[arms : arms + (n_actions if self.goal_names else 0)] = codes.ARM_NONE
        return ints, np.zeros(self.rules.n_floats, dtype=np.float64)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Ruleset:
    """Every journey in force, with the string codes and feature slots they share."""

    journeys: tuple[CompiledJourney, ...]
    strings: Mapping[str, int]
    property_slots: tuple[str, ...]
    trait_slots: tuple[str, ...]
    version: str
    top_k: int
    property_index: Mapping[str, int]  # slot of each property name
    trait_index: Mapping[str, int]
    date_traits: tuple[str, ...] = ()  # traits `until:` reads as dates (`engine.dates`)
    # (trait, default zone) pairs of the quiet hours: each an event slot of its own (`engine.quiet`)
    time_zones: tuple[tuple[str, str], ...] = ()

    def journey(self, name: str) -> CompiledJourney:
        for journey in self.journeys:
            if journey.name == name:
                return journey
        raise KeyError(name)


class _Interner:
    """Ruleset-wide string codes and feature slots."""

    def __init__(self) -> None:
        self.strings: dict[str, int] = {}
        self.properties: dict[str, int] = {}
        self.traits: dict[str, int] = {}
        self.dates: dict[str, int] = {}  # date trait -> the slot of its ms (`engine.dates`)
        self.time_zones: dict[tuple[str, str], int] = {}  # -> its offset's property slot

    def string(self, text: str) -> int:
        return self.strings.setdefault(text, len(self.strings))

    def property_slot(self, name: str) -> int:
        return self.properties.setdefault(name, len(self.properties))

    def trait_slot(self, name: str) -> int:
        return self.traits.setdefault(name, len(self.traits))

    def offset_slot(self, trait: str, default_zone: str) -> int:
        slot = self.property_slot(offset_slot_name(trait, default_zone))
        self.time_zones[trait, default_zone] = slot
        return slot

    def date_slot(self, trait: str) -> int:
        slot = self.trait_slot(date_slot_name(trait))
        self.dates[trait] = slot
        return slot


_NODE_FIELDS = ("kind", "op", "arg", "num", "code", "lit_kind", "first", "count")


class _NodeWriter:
    """Writes condition trees children-first into flat node lists."""

    def __init__(self, interner: _Interner, journey: Journey) -> None:
        self.interner = interner
        self.nodes: dict[str, list[Any]] = {field: [] for field in _NODE_FIELDS}
        self.children: list[int] = []
        self.list_kind: list[int] = []
        self.list_num: list[float] = []
        self.list_code: list[int] = []
        self.segments = {name: i for i, name in enumerate(journey.segments)}
        self.counters = {name: i for i, name in enumerate(journey.counters)}
        self.since: dict[str, int] = {}  # event type -> its place in `since_code`
        signals = journey.friction.signals if journey.friction else []
        self.topics: dict[str, int] = {}  # friction topic -> its index, in order of first use
        for signal in signals:
            if signal.topic is not None:
                self.topics.setdefault(signal.topic, len(self.topics))
        self.levels = (
            {name: i for i, name in enumerate(journey.friction.levels)}
            if (journey.friction)
            else {}
        )

    @property
    def size(self) -> int:
        return len(self.nodes["kind"])

    def _node(self, kind: int, **fields: Any) -> int:
        defaults: dict[str, Any] = {"op": codes.OP_NONE, "arg": 0, "num": 0.0, "code": 0}
        defaults |= {"lit_kind": codes.VALUE_MISSING, "first": 0, "count": 0}
        values = defaults | fields | {"kind": kind}
        for field in _NODE_FIELDS:
            self.nodes[field].append(values[field])
        return self.size - 1

    def _literal(self, value: Any) -> tuple[int, float, int]:
        if isinstance(value, bool):
            return codes.VALUE_BOOL, float(value), 0
        if isinstance(value, str):
            return codes.VALUE_STRING, 0.0, self.interner.string(value)
        return codes.VALUE_NUMBER, float(value), 0

    def _list(self, values: list[Any]) -> tuple[int, int]:
        first = len(self.list_kind)
        for value in values:
            kind, num, code = self._literal(value)
            self.list_kind.append(kind)
            self.list_num.append(num)
            self.list_code.append(code)
        return first, len(values)

    def _combine(self, kind: int, child_nodes: list[int]) -> int:
        first = len(self.children)
        self.children.extend(child_nodes)
        return self._node(kind, first=first, count=len(child_nodes))

    def _comparison(self, kind: int, arg: int, condition: Condition, *, time: bool) -> int:
        for name in codes.OPERATOR_CODES:
            value = condition.comparison(name)
            if value is None:
                continue
            op = codes.OPERATOR_CODES[name]
            if name in ("in", "not_in"):
                first, count = self._list(value)
                return self._node(kind, op=op, arg=arg, first=first, count=count)
            if time and isinstance(value, str):
                value = float(duration_ms(value))
            lit_kind, num, code = self._literal(value)
            return self._node(kind, op=op, arg=arg, num=num, code=code, lit_kind=lit_kind)
        op = codes.OP_EXISTS if condition.exists else codes.OP_MISSING
        return self._node(kind, op=op, arg=arg)

    def _named(self, kind: int, names: str | list[str]) -> int:
        first, count = self._list([names] if isinstance(names, str) else names)
        return self._node(kind, first=first, count=count)

    def _response(self, responses: str | Sequence[str]) -> int:
        """A response is an event of type RESPONSE_EVENT_TYPE whose `response` property is one
        of `responses`."""
        is_response = self._named(codes.NODE_EVENT_TYPE, RESPONSE_EVENT_TYPE)
        slot = self.interner.property_slot(RESPONSE_PROPERTY)
        first, count = self._list([responses] if isinstance(responses, str) else list(responses))
        which = self._node(codes.NODE_PROPERTY, op=codes.OP_IN, arg=slot, first=first, count=count)
        return self._combine(codes.NODE_ALL, [is_response, which])

    def always(self) -> int:
        """A node that always holds: `all` of no condition."""
        return self._combine(codes.NODE_ALL, [])

    def condition(self, condition: Condition) -> int:  # noqa: C901 - one branch per key
        """Write `condition` and return its root node."""
        parts: list[int] = []
        if condition.event is not None:
            parts.append(self._named(codes.NODE_EVENT_TYPE, condition.event))
        if condition.channel is not None:
            parts.append(self._named(codes.NODE_CHANNEL, condition.channel))
        if condition.touchpoint is not None:
            parts.append(self._named(codes.NODE_TOUCHPOINT, condition.touchpoint))
        if condition.response is not None:
            parts.append(self._response(condition.response))
        if condition.property is not None:
            slot = self.interner.property_slot(condition.property)
            parts.append(self._comparison(codes.NODE_PROPERTY, slot, condition, time=False))
        if condition.trait is not None:
            slot = self.interner.trait_slot(condition.trait)
            parts.append(self._comparison(codes.NODE_TRAIT, slot, condition, time=False))
        if condition.counter is not None:
            counter = self.counters[condition.counter]
            parts.append(self._comparison(codes.NODE_COUNTER, counter, condition, time=False))
        if condition.time is not None:
            kind = codes.NODE_TIME_IN_STAGE if condition.time == "in_stage" else codes.NODE_IDLE
            parts.append(self._comparison(kind, 0, condition, time=True))
        if condition.since is not None:
            which = self.since.setdefault(condition.since, len(self.since))
            parts.append(self._comparison(codes.NODE_SINCE, which, condition, time=True))
        if condition.until is not None:
            slot = self.interner.date_slot(condition.until)
            parts.append(self._comparison(codes.NODE_UNTIL, slot, condition, time=True))
        if condition.segment is not None:
            parts.append(self._node(codes.NODE_SEGMENT, arg=self.segments[condition.segment]))
        if condition.friction is not None:
            topic = -1 if condition.topic is None else self.topics[condition.topic]
            level = self.levels[condition.friction]
            parts.append(self._node(codes.NODE_FRICTION, arg=level, code=topic))
        if condition.all is not None:
            parts.append(self._combine(codes.NODE_ALL, [self.condition(c) for c in condition.all]))
        if condition.any is not None:
            parts.append(self._combine(codes.NODE_ANY, [self.condition(c) for c in condition.any]))
        if condition.not_ is not None:
            parts.append(self._combine(codes.NODE_NOT, [self.condition(condition.not_)]))
        return parts[0] if len(parts) == 1 else self._combine(codes.NODE_ALL, parts)


def _ints(values: list[int] | tuple[int, ...]) -> IntArray:
    return np.ascontiguousarray(values, dtype=np.int64).reshape(-1)


def _floats(values: list[float] | tuple[float, ...]) -> FloatArray:
    return np.ascontiguousarray(values, dtype=np.float64).reshape(-1)


def _stage_mask(names: str | list[str], stage_index: Mapping[str, int]) -> list[int]:
    if names == "*":
        return [1] * len(stage_index)
    chosen = {names} if isinstance(names, str) else set(names)
    return [1 if stage in chosen else 0 for stage in stage_index]


def _mask(rows: list[list[int]], width: int) -> MaskArray:
    return np.ascontiguousarray(np.array(rows, dtype=np.uint8).reshape(len(rows), width))


def _holdout_basis_points(percent: float) -> int:
    """A holdout percentage in basis points: 12.5 % -> 1250 (rounded to the nearest)."""
    return round(percent * (codes.HOLDOUT_SCALE // 100))


def _salt(journey: str, action: str) -> int:
    digest = hashlib.blake2b(f"{journey}/{action}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def counter_buckets(window: str, precision: str | None) -> tuple[int, int]:
    """(bucket width in ms, number of buckets) for a counter's window and optional precision."""
    window_ms = duration_ms(window)
    if precision is None:
        n_buckets = codes.DEFAULT_COUNTER_BUCKETS
        return max(1, math.ceil(window_ms / n_buckets)), n_buckets
    width_ms = duration_ms(precision)
    return width_ms, max(1, math.ceil(window_ms / width_ms))


def _reason(action: Action, journey: Journey) -> str:
    listed = [action.stages] if isinstance(action.stages, str) else action.stages
    stages = "any stage" if action.stages == "*" else "stage " + " or ".join(listed)
    parts = [f"{action.label or action.id}: priority {action.priority:g}", stages]
    if action.segments:
        parts.append("segment " + " or ".join(action.segments))
    if action.when is not None:
        parts.append("when " + describe_condition(action.when))
    return f"{journey.journey}: " + "; ".join(parts)


# `engine.history.STAGE_HISTORY`: entries of the recent-stages record (two ints each).
STAGE_HISTORY_SLOTS = 5


class _Layout:
    """Allocates slots in a journey's int and float state."""

    def __init__(self) -> None:
        self.n_ints = codes.INT_HEADER_SIZE
        self.n_floats = 0

    def take_ints(self, count: int) -> int:
        self.n_ints += count
        return self.n_ints - count

    def take_floats(self, count: int) -> int:
        self.n_floats += count
        return self.n_floats - count


def _compile_journey(loaded: LoadedJourney, interner: _Interner) -> CompiledJourney:
    journey = loaded.model
    writer = _NodeWriter(interner, journey)
    layout = _Layout()
    stage_index = {stage.id: i for i, stage in enumerate(journey.stages)}

    counter_root = [writer.condition(c.when) for c in journey.counters.values()]
    counter_sum_slot = [
        -1 if c.sum is None else interner.property_slot(c.sum) for c in journey.counters.values()
    ]
    shapes = [counter_buckets(c.window, c.precision) for c in journey.counters.values()]
    counter_offset = [layout.take_floats(n) for _, n in shapes]
    counter_head_index = layout.take_ints(len(shapes))
    signals = journey.friction.signals if journey.friction else []
    signal_root = [writer.condition(s.when) for s in signals]
    friction_offset = layout.take_floats(len(signals))
    segment_root = [writer.condition(s.when) for s in journey.segments.values()]
    goals = journey.goals.values()
    goal_root = [writer.condition(g.when) for g in goals]
    goal_value_slot = [-1 if g.value is None else interner.property_slot(g.value) for g in goals]
    goal_window_ms = [duration_ms(g.window) for g in goals]
    # A goal on a response converts only the action responded to.
    responded_slot = interner.property_slot(RESPONDED_ACTION_PROPERTY) if goals else -1
    goal_action_slot = [responded_slot if _mentions_response(g.when) else -1 for g in goals]
    event_phase_end = writer.size

    transition_root = [_transition_condition(writer, t) for t in journey.transitions]
    transition_phase_end = writer.size

    actions = journey.actions
    action_root = [-1 if a.when is None else writer.condition(a.when) for a in actions]
    boosts = [(writer.condition(b.when), b.add) for a in actions for b in a.boosts]
    boost_first = np.cumsum([0] + [len(a.boosts) for a in actions])[:-1].tolist()
    segment_lists = [[writer.segments[s] for s in a.segments or []] for a in actions]
    segment_first = np.cumsum([0] + [len(s) for s in segment_lists])[:-1].tolist()
    caps = [(a.cap.count, duration_ms(a.cap.per)) if a.cap else (0, 0) for a in actions]
    cap_offset = [layout.take_ints(count) for count, _ in caps]
    last_shown_index = layout.take_ints(len(actions))
    # Exposures are remembered only where a goal can use them: a journey without goals pays
    # nothing for them.
    exposure_index = layout.take_ints(3 * len(actions) if goal_root else 0)
    conversion_index = layout.take_ints(len(actions) * len(goal_root))
    history_index = layout.take_ints(2 * STAGE_HISTORY_SLOTS)
    activity_index = layout.take_ints(1)
    timer_index = layout.take_ints(1)
    since_index = layout.take_ints(len(writer.since))
    limits = journey.contact_policy.limits if journey.contact_policy else []
    quiet = journey.contact_policy.quiet_hours if journey.contact_policy else None
    limit_offset = [layout.take_ints(limit.count) for limit in limits]

    n_stages = len(stage_index)
    rules = CompiledRules(
        node_kind=np.array(writer.nodes["kind"], dtype=np.int8),
        node_op=np.array(writer.nodes["op"], dtype=np.int8),
        node_arg=_ints(writer.nodes["arg"]),
        node_num=_floats(writer.nodes["num"]),
        node_code=_ints(writer.nodes["code"]),
        node_lit_kind=np.array(writer.nodes["lit_kind"], dtype=np.int8),
        node_first=_ints(writer.nodes["first"]),
        node_count=_ints(writer.nodes["count"]),
        children=_ints(writer.children),
        list_kind=np.array(writer.list_kind, dtype=np.int8),
        list_num=_floats(writer.list_num),
        list_code=_ints(writer.list_code),
        phase_end=_ints([event_phase_end, transition_phase_end, writer.size]),
        segment_root=_ints(segment_root),
        counter_root=_ints(counter_root),
        counter_sum_slot=_ints(counter_sum_slot),
        counter_width_ms=_ints([w for w, _ in shapes]),
        counter_buckets=_ints([n for _, n in shapes]),
        counter_offset=_ints(counter_offset),
        counter_head_index=counter_head_index,
        signal_root=_ints(signal_root),
        signal_weight=_floats([s.weight for s in signals]),
        friction_offset=friction_offset,
        half_life_ms=float(duration_ms(journey.friction.half_life)) if journey.friction else 1.0,
        level_threshold=_floats(
            list(journey.friction.levels.values()) if journey.friction else [0]
        ),
        transition_root=_ints(transition_root),
        transition_to=_ints([stage_index[t.to] for t in journey.transitions]),
        transition_from=_mask(
            [_stage_mask(t.from_, stage_index) for t in journey.transitions], n_stages
        ),
        transition_timer=_ints([_timer_code(t) for t in journey.transitions]),
        transition_delay_ms=_ints(
            [duration_ms(t.after or t.idle or "0ms") for t in journey.transitions]
        ),
        activity_index=activity_index,
        timer_index=timer_index,
        since_code=_ints([interner.string(event_type) for event_type in writer.since]),
        signal_topic=_ints([-1 if s.topic is None else writer.topics[s.topic] for s in signals]),
        n_topics=len(writer.topics),
        since_index=since_index,
        action_root=_ints(action_root),
        action_stages=_mask([_stage_mask(a.stages, stage_index) for a in actions], n_stages),
        action_segment_first=_ints(segment_first),
        action_segment_count=_ints([len(s) for s in segment_lists]),
        action_segments=_ints([s for group in segment_lists for s in group]),
        action_priority=_floats([a.priority for a in actions]),
        action_boost_first=_ints(boost_first),
        action_boost_count=_ints([len(a.boosts) for a in actions]),
        boost_root=_ints([root for root, _ in boosts]),
        boost_add=_floats([add for _, add in boosts]),
        action_cooldown_ms=_ints([duration_ms(a.cooldown) if a.cooldown else 0 for a in actions]),
        action_cap_count=_ints([count for count, _ in caps]),
        action_cap_window_ms=_ints([window for _, window in caps]),
        action_cap_offset=_ints(cap_offset),
        action_holdout=_ints([_holdout_basis_points(a.holdout) for a in actions]),
        action_salt=np.array([_salt(journey.journey, a.id) for a in actions], dtype=np.uint64),
        action_last_shown_index=last_shown_index,
        action_channel_code=_ints(
            [-1 if a.channel is None else interner.string(a.channel) for a in actions]
        ),
        limit_channel_code=_ints([interner.string(limit.channel) for limit in limits]),
        limit_count=_ints([limit.count for limit in limits]),
        limit_window_ms=_ints([duration_ms(limit.per) for limit in limits]),
        limit_offset=_ints(limit_offset),
        quiet_offset_slot=-1
        if quiet is None
        else interner.offset_slot(quiet.time_zone_trait, quiet.default_time_zone),
        quiet_from_minute=-1 if quiet is None else clock_minute(quiet.from_),
        quiet_to_minute=-1 if quiet is None else clock_minute(quiet.to),
        quiet_channel_code=_ints(
            [interner.string(channel) for channel in (quiet.channels if quiet else [])]
        ),
        goal_root=_ints(goal_root),
        goal_window_ms=_ints(goal_window_ms),
        goal_value_slot=_ints(goal_value_slot),
        goal_action_slot=_ints(goal_action_slot),
        action_adaptive=np.array([_adaptive(a, journey) for a in actions], dtype=np.uint8),
        action_code=_ints([interner.string(a.id) for a in actions]),
        exposure_index=exposure_index,
        exposure_window_ms=max(goal_window_ms, default=0),
        conversion_index=conversion_index,
        n_ints=layout.n_ints,
        n_floats=layout.n_floats,
    )
    return CompiledJourney(
        name=journey.journey,
        version=str(journey.version),
        source=loaded.source,
        source_sha256=loaded.digest,
        rules=rules,
        packed_arrays=tuple(pack_rules(rules)),
        top_k=journey.top_k,
        stage_ids=tuple(stage_index),
        transition_ids=tuple(t.id or f"to_{t.to}" for t in journey.transitions),
        transition_lines=loaded.transition_lines,
        counter_names=tuple(journey.counters),
        signal_ids=tuple(s.id for s in signals),
        level_names=tuple(journey.friction.levels) if journey.friction else ("low",),
        action_ids=tuple(a.id for a in actions),
        action_channels=tuple(a.channel for a in actions),
        action_contents=tuple(a.content for a in actions),
        action_reasons=tuple(_reason(a, journey) for a in actions),
        segment_names=tuple(journey.segments),
        goal_names=tuple(journey.goals),
        since_types=tuple(writer.since),
        topic_names=tuple(writer.topics),
        limit_keys=tuple(f"{limit.channel}/{limit.per}" for limit in limits),
        adaptive_goal=adaptive_goal(journey),
        offer_slots=tuple(
            (last_shown_index + i, cap_offset[i], caps[i][0]) for i in range(len(actions))
        ),
        model=journey,
        history_index=history_index,
    )


def _transition_condition(writer: _NodeWriter, transition: Transition) -> int:
    """The root node of a transition's `when`; a timed one without `when` always holds (an
    `all` of nothing), its time being checked by the kernel (`engine.kernels.timers`)."""
    if transition.when is None:
        return writer.always()
    return writer.condition(transition.when)


def _timer_code(transition: Transition) -> int:
    if transition.after is not None:
        return codes.TIMER_AFTER
    return codes.TIMER_IDLE if transition.idle is not None else codes.TIMER_NONE


def _adaptive(action: Action, journey: Journey) -> bool:
    return (action.arbitration or journey.arbitration) == "adaptive" and bool(journey.goals)


def adaptive_goal(journey: Journey) -> int:
    """The goal adaptive arbitration learns (its index), -1 when the journey has none."""
    if not journey.goals:
        return -1
    names = list(journey.goals)
    return names.index(journey.adaptive_goal) if journey.adaptive_goal in names else 0


def _mentions_response(condition: Condition) -> bool:
    children = [*(condition.all or ()), *(condition.any or ())]
    if condition.not_ is not None:
        children.append(condition.not_)
    return condition.response is not None or any(_mentions_response(c) for c in children)


def ruleset_version(loaded: list[LoadedJourney]) -> str:
    """`retail@2026.11.1+loan@3#<sha256 of every file, 12 hex digits>`."""
    ordered = sorted(loaded, key=lambda j: j.model.journey)
    declared = "+".join(f"{j.model.journey}@{j.model.version}" for j in ordered)
    digest = hashlib.sha256("".join(j.digest for j in ordered).encode()).hexdigest()[:12]
    return f"{declared}#{digest}"


def compile_ruleset(loaded: list[LoadedJourney]) -> Ruleset:
    """Compile validated journeys (from `engine.rules.load`) into one `Ruleset`."""
    if not loaded:
        raise ValueError("compile_ruleset needs at least one journey")
    interner = _Interner()
    journeys = tuple(_compile_journey(j, interner) for j in loaded)
    return Ruleset(
        journeys=journeys,
        strings=dict(interner.strings),
        property_slots=tuple(interner.properties),
        trait_slots=tuple(interner.traits),
        version=ruleset_version(loaded),
        top_k=max(j.top_k for j in journeys),
        property_index=dict(interner.properties),
        trait_index=dict(interner.traits),
        date_traits=tuple(interner.dates),
        time_zones=tuple(interner.time_zones),
    )
