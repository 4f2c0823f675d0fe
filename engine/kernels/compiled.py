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

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

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
    n_ints: int
    n_floats: int


class PackedRules(NamedTuple):
    i64: npt.NDArray[np.int64]
    f64: npt.NDArray[np.float64]
    i8: npt.NDArray[np.int8]
    u8: npt.NDArray[np.uint8]
    u64: npt.NDArray[np.uint64]
    layout: npt.NDArray[np.int64]  # (n_fields, 3): start, stop, row width, in field order


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

    @classmethod
    def allocate(cls, n_actions: int, top_k: int) -> KernelOutput:
        return cls(
            status=np.empty(n_actions, dtype=np.int8),
            scores=np.empty(n_actions, dtype=np.float64),
            ranked=np.empty(top_k, dtype=np.int64),
            top_signals=np.empty(TOP_SIGNALS, dtype=np.int64),
        )


@kernel
def _rows(flat, layout, field, n_rows):
    return flat[layout[field, 0] : layout[field, 1]].reshape((n_rows, layout[field, 2]))


@kernel
def _packed(arrays):
    """`PackedRules` from the plain tuple a kernel entry point is handed."""
    return PackedRules(arrays[0], arrays[1], arrays[2], arrays[3], arrays[4], arrays[5])


@kernel
def _features(arrays):
    return Features(arrays[0], arrays[1], arrays[2], arrays[3])


@kernel
def _unpack_rules(p):
    """The `CompiledRules` whose fields `pack_rules` packed into `p` (views, no copies).

    Field numbers follow `CompiledRules`' field order; `tests/unit/engine/test_packing.py` checks
    that every field round-trips.
    """
    L = p.layout
    i64, f64, i8, u8 = p.i64, p.f64, p.i8, p.u8
    n_transitions = L[25, 1] - L[25, 0]
    n_actions = L[28, 1] - L[28, 0]
    return CompiledRules(
        i8[L[0, 0] : L[0, 1]],
        i8[L[1, 0] : L[1, 1]],
        i64[L[2, 0] : L[2, 1]],
        f64[L[3, 0] : L[3, 1]],
        i64[L[4, 0] : L[4, 1]],
        i8[L[5, 0] : L[5, 1]],
        i64[L[6, 0] : L[6, 1]],
        i64[L[7, 0] : L[7, 1]],
        i64[L[8, 0] : L[8, 1]],
        i8[L[9, 0] : L[9, 1]],
        f64[L[10, 0] : L[10, 1]],
        i64[L[11, 0] : L[11, 1]],
        i64[L[12, 0] : L[12, 1]],
        i64[L[13, 0] : L[13, 1]],
        i64[L[14, 0] : L[14, 1]],
        i64[L[15, 0] : L[15, 1]],
        i64[L[16, 0] : L[16, 1]],
        i64[L[17, 0] : L[17, 1]],
        i64[L[18, 0] : L[18, 1]],
        i64[L[19, 0]],
        i64[L[20, 0] : L[20, 1]],
        f64[L[21, 0] : L[21, 1]],
        i64[L[22, 0]],
        f64[L[23, 0]],
        f64[L[24, 0] : L[24, 1]],
        i64[L[25, 0] : L[25, 1]],
        i64[L[26, 0] : L[26, 1]],
        _rows(u8, L, 27, n_transitions),
        i64[L[28, 0] : L[28, 1]],
        _rows(u8, L, 29, n_actions),
        i64[L[30, 0] : L[30, 1]],
        i64[L[31, 0] : L[31, 1]],
        i64[L[32, 0] : L[32, 1]],
        f64[L[33, 0] : L[33, 1]],
        i64[L[34, 0] : L[34, 1]],
        i64[L[35, 0] : L[35, 1]],
        i64[L[36, 0] : L[36, 1]],
        f64[L[37, 0] : L[37, 1]],
        i64[L[38, 0] : L[38, 1]],
        i64[L[39, 0] : L[39, 1]],
        i64[L[40, 0] : L[40, 1]],
        i64[L[41, 0] : L[41, 1]],
        i64[L[42, 0] : L[42, 1]],
        p.u64[L[43, 0] : L[43, 1]],
        i64[L[44, 0]],
        i64[L[45, 0]],
        i64[L[46, 0]],
    )
