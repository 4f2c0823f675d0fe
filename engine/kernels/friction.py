"""Friction: per-signal scores that halve every half-life, and the level they add up to."""

from __future__ import annotations

import numpy as np

from engine.kernels.codes import INT_FRICTION_AT_MS, TOP_SIGNALS
from engine.kernels.jit import kernel
from engine.kernels.readout import _friction_decay, _friction_level, _friction_total


@kernel
def _update_friction(rules, ints, floats, clock_ms, values):
    """Decay every signal's score to `clock_ms`, add the weight of each signal this event is.

    Returns the friction level and the total, read as `engine.kernels.readout` defines them.
    """
    base = rules.friction_offset
    n_signals = rules.signal_root.shape[0]
    decay = _friction_decay(ints[INT_FRICTION_AT_MS], clock_ms, rules.half_life_ms)
    for signal in range(n_signals):
        score = floats[base + signal] * decay
        if values[rules.signal_root[signal]]:
            score += rules.signal_weight[signal]
        floats[base + signal] = score
    ints[INT_FRICTION_AT_MS] = clock_ms
    total = _friction_total(floats[base : base + n_signals], 1.0)
    return _friction_level(rules.level_threshold, total), total


@kernel
def _strongest_signals(scores, top):
    """Indices of the largest positive `scores` into `top`, highest first (ties: lower index),
    -1 where there are fewer. scores: float64 (n_signals,); top: int64 (TOP_SIGNALS,)."""
    top[:] = -1
    for signal in range(scores.shape[0]):
        if scores[signal] <= 0.0:
            continue
        place = top.shape[0]
        while place > 0 and (top[place - 1] < 0 or scores[signal] > scores[top[place - 1]]):
            place -= 1
        if place < top.shape[0]:
            top[place + 1 :] = top[place:-1].copy()
            top[place] = signal


def strongest_signals(scores: np.ndarray) -> list[int]:
    """The indices of the strongest signals in `scores` (float64), highest first."""
    top = np.empty(TOP_SIGNALS, dtype=np.int64)
    _strongest_signals(np.ascontiguousarray(scores, dtype=np.float64), top)
    return [int(i) for i in top if i >= 0]
