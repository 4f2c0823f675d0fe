"""`CompiledRules`, the arrays the kernels read, and their packing into five arrays.

Kernel entry points take plain tuples of arrays rather than NamedTuples: numba's dispatcher
fingerprints a plain tuple in C but types a NamedTuple in Python, measured at 0.4 µs against
0.9 µs for six arrays. They rebuild the NamedTuples inside (`_packed`, `_features`).

Measured on the retail journey: handing numba the 48-field NamedTuple cost ~15 µs per call in type
dispatch and unboxing, more than the decision itself. The packed form carries every field as a
slice of one array per dtype; `_unpack_rules`, compiled, rebuilds the NamedTuple of views inside
nopython code at no measurable cost, so the kernels keep reading `rules.node_kind` and friends.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from numba.core import config as numba_config
from numba.extending import intrinsic

from engine.kernels.codes import TOP_SIGNALS
from engine.kernels.jit import kernel

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ByteArray = npt.NDArray[np.int8]
MaskArray = npt.NDArray[np.uint8]


class CompiledRules(NamedTuple):
    """One journey as the kernels see it. Node `i`'s children all have indices below `i`."""

    node_kind: ByteArray
    node_op: ByteArray
    node_arg: IntArray
    node_num: FloatArray
    node_code: IntArray
    node_lit_kind: ByteArray
    node_first: IntArray  # first child (in `children`) or first list item (in `list_*`)
    node_count: IntArray
    children: IntArray
    list_kind: ByteArray
    list_num: FloatArray
    list_code: IntArray
    phase_end: IntArray  # [event and trait nodes, transition nodes, action nodes]
    segment_root: IntArray
    counter_root: IntArray
    counter_sum_slot: IntArray  # -1: count events
    counter_width_ms: IntArray
    counter_buckets: IntArray
    counter_offset: IntArray  # first bucket in the float state
    counter_head_index: int  # first counter head epoch in the int state
    signal_root: IntArray
    signal_weight: FloatArray
    friction_offset: int  # first signal score in the float state
    half_life_ms: float
    level_threshold: FloatArray
    transition_root: IntArray
    transition_to: IntArray
    transition_from: MaskArray  # (n_transitions, n_stages)
    transition_timer: IntArray  # TIMER_*: what moves it
    transition_delay_ms: IntArray  # its `after` or `idle` duration; 0 for event transitions
    activity_index: int  # the customer's last event (timers do not touch it), in the int state
    timer_index: int  # the last timer decision in this stage visit (NEVER_MS: none yet)
    since_code: IntArray  # the event types `since:` conditions read, as interned strings
    since_index: int  # per `since_code`: when the customer last sent that event type
    signal_topic: IntArray  # per friction signal: its topic's index, -1 for none
    n_topics: int
    action_root: IntArray  # -1: no condition
    action_stages: MaskArray  # (n_actions, n_stages)
    action_segment_first: IntArray
    action_segment_count: IntArray
    action_segments: IntArray
    action_priority: FloatArray
    action_boost_first: IntArray
    action_boost_count: IntArray
    boost_root: IntArray
    boost_add: FloatArray
    action_cooldown_ms: IntArray
    action_cap_count: IntArray
    action_cap_window_ms: IntArray
    action_cap_offset: IntArray  # first cap-history slot in the int state
    action_holdout: IntArray  # basis points
    action_salt: npt.NDArray[np.uint64]
    action_last_shown_index: int
    action_channel_code: IntArray  # its `channel` as an interned string; -1: the event's
    limit_channel_code: IntArray  # per contact limit: the channel it counts
    limit_count: IntArray
    limit_window_ms: IntArray
    limit_offset: IntArray  # first slot of its offer times in the int state
    quiet_offset_slot: int  # the event slot of the customer's UTC offset (ms); -1: no quiet hours
    quiet_from_minute: int  # minute of the day they start, local
    quiet_to_minute: int
    quiet_channel_code: IntArray  # the channels kept quiet, as interned strings
    goal_root: IntArray
    goal_window_ms: IntArray
    goal_value_slot: IntArray  # event property holding the goal's value; -1: none
    goal_action_slot: IntArray  # a response goal: the property naming the action; -1: any
    action_code: IntArray  # each action's id as an interned string
    action_adaptive: MaskArray  # 1: the score is multiplied by a sampled propensity
    exposure_index: int  # per action: first exposure time; then its ARM_*; then the stage
    exposure_window_ms: int  # the longest goal window: an exposure older starts afresh
    conversion_index: int  # per action and goal: the exposure time it converted for
    n_ints: int
    n_floats: int


class PackedRules(NamedTuple):
    i64: npt.NDArray[np.int64]
    f64: npt.NDArray[np.float64]
    i8: npt.NDArray[np.int8]
    u8: npt.NDArray[np.uint8]
    u64: npt.NDArray[np.uint64]
    layout: npt.NDArray[np.int64]  # (n_fields, 3): start, stop, row width, in field order


def _layout_rows(fields: tuple[str, ...]) -> Any:
    """An IntEnum naming the row of `PackedRules.layout` that places each field (typed `Any`:
    mypy cannot list members made at run time)."""
    return IntEnum("RulesField", [(name, row) for row, name in enumerate(fields)], module=__name__)


# The named layout: `RulesField.node_kind` is the row of `PackedRules.layout` that places
# `CompiledRules.node_kind`. Derived from the field order, so adding a field renumbers nothing.
RulesField = _layout_rows(CompiledRules._fields)


_GROUPS: dict[np.dtype[Any], str] = {
    np.dtype(np.int64): "i64",
    np.dtype(np.float64): "f64",
    np.dtype(np.int8): "i8",
    np.dtype(np.uint8): "u8",
    np.dtype(np.uint64): "u64",
}


def _as_array(value: Any) -> np.ndarray[Any, Any]:
    if isinstance(value, float):
        return np.array([value], dtype=np.float64)
    if isinstance(value, int):
        return np.array([value], dtype=np.int64)
    return np.asarray(value)


def pack_rules(rules: CompiledRules) -> PackedRules:
    """Concatenate every field of `rules` into one array per dtype, in field order."""
    parts: dict[str, list[np.ndarray[Any, Any]]] = {name: [] for name in _GROUPS.values()}
    sizes = dict.fromkeys(_GROUPS.values(), 0)
    layout = np.zeros((len(rules), 3), dtype=np.int64)
    for index, value in enumerate(rules):
        array = _as_array(value)
        group = _GROUPS[array.dtype]
        width = array.shape[1] if array.ndim == 2 else 1
        layout[index] = (sizes[group], sizes[group] + array.size, width)
        parts[group].append(array.reshape(-1))
        sizes[group] += array.size
    packed = {
        group: np.ascontiguousarray(np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype))
        for (dtype, group), arrays in zip(_GROUPS.items(), parts.values(), strict=True)
    }
    return PackedRules(layout=layout, **packed)


class Features(NamedTuple):
    """Values the kernels read: `codes` (event type, channel, touchpoint) and one slot per
    property or trait a rule reads: `kind` (VALUE_*), `num` (numbers, bools as 0/1), `code`
    (interned strings, UNKNOWN_STRING for strings no rule mentions)."""

    codes: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int8]
    num: npt.NDArray[np.float64]
    code: npt.NDArray[np.int64]


class KernelOutput(NamedTuple):
    status: npt.NDArray[np.int8]  # ACTION_* per action
    scores: npt.NDArray[np.float64]
    ranked: npt.NDArray[np.int64]  # the first n_ranked entries: top actions, best first
    top_signals: npt.NDArray[np.int64]  # strongest friction signals, highest first; -1 after
    converted: npt.NDArray[np.int8]  # (n_actions, n_goals): ARM_* of a conversion, ARM_NONE
    goal_values: npt.NDArray[np.float64]  # per goal: the value this event brought

    @classmethod
    def allocate(cls, n_actions: int, top_k: int, n_goals: int = 0) -> KernelOutput:
        return cls(
            status=np.empty(n_actions, dtype=np.int8),
            scores=np.empty(n_actions, dtype=np.float64),
            ranked=np.empty(top_k, dtype=np.int64),
            top_signals=np.empty(TOP_SIGNALS, dtype=np.int64),
            converted=np.zeros((n_actions, n_goals), dtype=np.int8),
            goal_values=np.zeros(n_goals, dtype=np.float64),
        )


@kernel
def _packed(arrays):
    """`PackedRules` from the plain tuple a kernel entry point is handed."""
    return PackedRules(arrays[0], arrays[1], arrays[2], arrays[3], arrays[4], arrays[5])


@kernel
def _features(arrays):
    return Features(arrays[0], arrays[1], arrays[2], arrays[3])


def _borrow(typingctx: Any, array: Any) -> Any:
    """`array` without its reference count: views made from it are not counted either.

    Measured on the retail journey: views of the packed rules carry the meminfo of the array
    they slice, so every call that passes `CompiledRules` to a helper kernel incremented and
    decremented ~56 shared counters, half of the kernel's time (retail: 4.7 µs of work per
    event before, 2.4 µs after). The packed arrays live as long as their `CompiledJourney`,
    which every caller holds for the whole call; a `CompiledRules` handed back to Python (the
    packing test does) does not keep them alive.
    """

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        source = context.make_array(signature.args[0])(context, builder, args[0])
        borrowed = context.make_array(signature.return_type)(context, builder)
        context.populate_array(
            borrowed, data=source.data, shape=source.shape, strides=source.strides,
            itemsize=source.itemsize, meminfo=None,
        )  # fmt: skip
        return borrowed._getvalue()

    return array(array), codegen


def _same(array: Any) -> Any:
    return array


# With the JIT off (`make test-nojit`, coverage) there is no reference count to skip, and an
# intrinsic cannot be called from Python: the arrays are used as they are.
_borrowed: Any = _same if getattr(numba_config, "DISABLE_JIT", 0) else intrinsic(_borrow)


@kernel
def _vector(flat, layout, field):
    return flat[layout[field, 0] : layout[field, 1]]


@kernel
def _matrix(flat, layout, field):
    start, stop, width = layout[field, 0], layout[field, 1], layout[field, 2]
    return flat[start:stop].reshape(((stop - start) // max(width, 1), width))


@kernel
def _scalar(flat, layout, field):
    return flat[layout[field, 0]]


@kernel
def _unpack_rules(p):
    """The `CompiledRules` whose fields `pack_rules` packed into `p` (views, no copies).

    Each field is read from its dtype's array at the layout row `RulesField` names, so a new
    field is one more line here; `tests/unit/engine/test_packing.py` checks that every field
    round-trips.
    """
    L, F = p.layout, RulesField
    p = PackedRules(
        _borrowed(p.i64),
        _borrowed(p.f64),
        _borrowed(p.i8),
        _borrowed(p.u8),
        _borrowed(p.u64),
        L,
    )
    return CompiledRules(
        node_kind=_vector(p.i8, L, F.node_kind),
        node_op=_vector(p.i8, L, F.node_op),
        node_arg=_vector(p.i64, L, F.node_arg),
        node_num=_vector(p.f64, L, F.node_num),
        node_code=_vector(p.i64, L, F.node_code),
        node_lit_kind=_vector(p.i8, L, F.node_lit_kind),
        node_first=_vector(p.i64, L, F.node_first),
        node_count=_vector(p.i64, L, F.node_count),
        children=_vector(p.i64, L, F.children),
        list_kind=_vector(p.i8, L, F.list_kind),
        list_num=_vector(p.f64, L, F.list_num),
        list_code=_vector(p.i64, L, F.list_code),
        phase_end=_vector(p.i64, L, F.phase_end),
        segment_root=_vector(p.i64, L, F.segment_root),
        counter_root=_vector(p.i64, L, F.counter_root),
        counter_sum_slot=_vector(p.i64, L, F.counter_sum_slot),
        counter_width_ms=_vector(p.i64, L, F.counter_width_ms),
        counter_buckets=_vector(p.i64, L, F.counter_buckets),
        counter_offset=_vector(p.i64, L, F.counter_offset),
        counter_head_index=_scalar(p.i64, L, F.counter_head_index),
        signal_root=_vector(p.i64, L, F.signal_root),
        signal_weight=_vector(p.f64, L, F.signal_weight),
        friction_offset=_scalar(p.i64, L, F.friction_offset),
        half_life_ms=_scalar(p.f64, L, F.half_life_ms),
        level_threshold=_vector(p.f64, L, F.level_threshold),
        transition_root=_vector(p.i64, L, F.transition_root),
        transition_to=_vector(p.i64, L, F.transition_to),
        transition_from=_matrix(p.u8, L, F.transition_from),
        transition_timer=_vector(p.i64, L, F.transition_timer),
        transition_delay_ms=_vector(p.i64, L, F.transition_delay_ms),
        activity_index=_scalar(p.i64, L, F.activity_index),
        timer_index=_scalar(p.i64, L, F.timer_index),
        since_code=_vector(p.i64, L, F.since_code),
        since_index=_scalar(p.i64, L, F.since_index),
        signal_topic=_vector(p.i64, L, F.signal_topic),
        n_topics=_scalar(p.i64, L, F.n_topics),
        action_root=_vector(p.i64, L, F.action_root),
        action_stages=_matrix(p.u8, L, F.action_stages),
        action_segment_first=_vector(p.i64, L, F.action_segment_first),
        action_segment_count=_vector(p.i64, L, F.action_segment_count),
        action_segments=_vector(p.i64, L, F.action_segments),
        action_priority=_vector(p.f64, L, F.action_priority),
        action_boost_first=_vector(p.i64, L, F.action_boost_first),
        action_boost_count=_vector(p.i64, L, F.action_boost_count),
        boost_root=_vector(p.i64, L, F.boost_root),
        boost_add=_vector(p.f64, L, F.boost_add),
        action_cooldown_ms=_vector(p.i64, L, F.action_cooldown_ms),
        action_cap_count=_vector(p.i64, L, F.action_cap_count),
        action_cap_window_ms=_vector(p.i64, L, F.action_cap_window_ms),
        action_cap_offset=_vector(p.i64, L, F.action_cap_offset),
        action_holdout=_vector(p.i64, L, F.action_holdout),
        action_salt=_vector(p.u64, L, F.action_salt),
        action_last_shown_index=_scalar(p.i64, L, F.action_last_shown_index),
        action_channel_code=_vector(p.i64, L, F.action_channel_code),
        limit_channel_code=_vector(p.i64, L, F.limit_channel_code),
        limit_count=_vector(p.i64, L, F.limit_count),
        limit_window_ms=_vector(p.i64, L, F.limit_window_ms),
        limit_offset=_vector(p.i64, L, F.limit_offset),
        quiet_offset_slot=_scalar(p.i64, L, F.quiet_offset_slot),
        quiet_from_minute=_scalar(p.i64, L, F.quiet_from_minute),
        quiet_to_minute=_scalar(p.i64, L, F.quiet_to_minute),
        quiet_channel_code=_vector(p.i64, L, F.quiet_channel_code),
        goal_root=_vector(p.i64, L, F.goal_root),
        goal_window_ms=_vector(p.i64, L, F.goal_window_ms),
        goal_value_slot=_vector(p.i64, L, F.goal_value_slot),
        goal_action_slot=_vector(p.i64, L, F.goal_action_slot),
        action_code=_vector(p.i64, L, F.action_code),
        action_adaptive=_vector(p.u8, L, F.action_adaptive),
        exposure_index=_scalar(p.i64, L, F.exposure_index),
        exposure_window_ms=_scalar(p.i64, L, F.exposure_window_ms),
        conversion_index=_scalar(p.i64, L, F.conversion_index),
        n_ints=_scalar(p.i64, L, F.n_ints),
        n_floats=_scalar(p.i64, L, F.n_floats),
    )
