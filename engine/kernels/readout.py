"""How a journey's stored state reads at a moment: friction decay and level, the counter ring.

This module owns those semantics. The kernels call the `_`-prefixed helpers while they decide;
`engine.decide`, `engine.view` and `engine.merge` read or combine stored states through the
annotated wrappers at the bottom, which call the same helpers.

Friction: each signal's score halves every `half_life_ms`; a score recorded at `since_ms` reads
`score * 0.5 ** ((at_ms - since_ms) / half_life_ms)` at `at_ms`, unchanged when `at_ms` is not
later, and zero when nothing was ever recorded (`since_ms == NEVER_MS`). The total is the sum of
the decayed scores in signal order; the level is the highest threshold the total reaches (level 0
when none does).

Counters: a counter of B buckets of `width_ms` keeps epoch `e` (time // width_ms) in slot `e % B`,
and its head epoch (the newest it has seen, NEVER_MS before any) in the int state, so the ring
holds epochs (head - B, head]. At epoch `current` the counter's value is the sum of the slots whose
epochs are in (max(head, current) - B, head], added in slot order.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine.kernels.codes import INT_FRICTION_AT_MS, NEVER_MS
from engine.kernels.compiled import CompiledRules
from engine.kernels.jit import kernel

# -- friction -------------------------------------------------------------------------------------


@kernel
def _friction_decay(since_ms, at_ms, half_life_ms):
    """The factor a friction score recorded at `since_ms` is multiplied by at `at_ms`."""
    if since_ms == NEVER_MS:
        return 0.0
    elapsed_ms = at_ms - since_ms
    return 0.5 ** (elapsed_ms / half_life_ms) if elapsed_ms > 0 else 1.0


@kernel
def _friction_total(scores, factor):
    """The sum of `scores` (float64, (n_signals,)) each multiplied by `factor`, in signal order."""
    total = 0.0
    for signal in range(scores.shape[0]):
        total += scores[signal] * factor
    return total


@kernel
def _friction_level(thresholds, total):
    """The index of the highest of `thresholds` (float64, (n_levels,)) that `total` reaches, 0 if
    none does."""
    level = 0
    for candidate in range(thresholds.shape[0]):
        if total >= thresholds[candidate]:
            level = candidate
    return level


@kernel
def _friction_readout(scores, since_ms, at_ms, half_life_ms, thresholds):
    """(level, total) of `scores`, recorded at `since_ms`, decayed to `at_ms`; reads only."""
    total = _friction_total(scores, _friction_decay(since_ms, at_ms, half_life_ms))
    return _friction_level(thresholds, total), total


# -- counters -------------------------------------------------------------------------------------


@kernel
def _roll(buckets, head_epoch, current_epoch):
    """Empty the buckets of epochs after `head_epoch` up to `current_epoch` (a ring of buckets);
    takes arrays, not `CompiledRules`, because it runs once per counter."""
    n_buckets = buckets.shape[0]
    # Compared so that nothing wraps around: a head stored near the int64 minimum or maximum
    # (damaged) would wrap `current - head` or `head + 1`, and the loop run ~2**63 epochs.
    if head_epoch <= current_epoch - n_buckets:
        buckets[:] = 0.0
    elif head_epoch < current_epoch:
        for epoch in range(head_epoch + 1, current_epoch + 1):
            buckets[epoch % n_buckets] = 0.0


@kernel
def _counter_total(buckets, head_epoch, current_epoch):
    """A counter's value at `current_epoch`: its ring `buckets` (float64, (n_buckets,)) with
    newest epoch `head_epoch`, summed in slot order over the epochs still in the window."""
    n_buckets = buckets.shape[0]
    total = 0.0
    if head_epoch == NEVER_MS or head_epoch <= current_epoch - n_buckets:  # see `_roll`
        return total
    lag = max(current_epoch - head_epoch, 0)
    head_slot = head_epoch % n_buckets
    for slot in range(n_buckets):
        age = head_slot - slot  # how many epochs before the head this slot holds
        if age < 0:
            age += n_buckets
        if age + lag < n_buckets:
            total += buckets[slot]
    return total


@kernel
def _add_window(buckets, head_epoch, last_epoch, window):
    """Add to `window` (float64, (n_buckets,), epochs oldest first ending at `last_epoch`) the
    buckets of the ring `buckets` with newest epoch `head_epoch`, where their epochs overlap."""
    if head_epoch == NEVER_MS:
        return
    n_buckets = buckets.shape[0]
    for offset in range(n_buckets):
        epoch = last_epoch - n_buckets + 1 + offset
        if head_epoch - n_buckets < epoch <= head_epoch:
            window[offset] += buckets[epoch % n_buckets]


@kernel
def _store_window(window, last_epoch, buckets):
    """Write `window` (epochs oldest first, ending at `last_epoch`) into the ring `buckets`."""
    n_buckets = buckets.shape[0]
    for offset in range(n_buckets):
        buckets[(last_epoch - n_buckets + 1 + offset) % n_buckets] = window[offset]


# -- wrappers for plain Python --------------------------------------------------------------------

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _signal_scores(rules: CompiledRules, floats: FloatArray) -> FloatArray:
    return floats[rules.friction_offset : rules.friction_offset + rules.signal_root.shape[0]]


def friction_at(
    rules: CompiledRules, ints: IntArray, floats: FloatArray, at_ms: int
) -> tuple[int, float]:
    """The friction level (an index into the journey's levels) and score of a stored journey
    state at `at_ms` (ms since the epoch), as a decision at that moment would read them."""
    level, total = _friction_readout(
        _signal_scores(rules, floats), int(ints[INT_FRICTION_AT_MS]), int(at_ms),
        float(rules.half_life_ms), rules.level_threshold,
    )  # fmt: skip
    return int(level), float(total)


def topic_levels(rules: CompiledRules, ints: IntArray, floats: FloatArray, at_ms: int) -> list[int]:
    """Per friction topic (in `signal_topic` order), the level its signals alone reach at
    `at_ms`, as a decision at that moment reads it."""
    scores = _signal_scores(rules, floats)
    factor = _friction_decay(int(ints[INT_FRICTION_AT_MS]), int(at_ms), float(rules.half_life_ms))
    levels = []
    for topic in range(int(rules.n_topics)):
        mine = scores[rules.signal_topic == topic]
        levels.append(int(_friction_level(rules.level_threshold, _friction_total(mine, factor))))
    return levels


def friction_when_recorded(
    rules: CompiledRules, ints: IntArray, floats: FloatArray
) -> tuple[int, float]:
    """The friction level and score of a stored journey state as of its last event."""
    return friction_at(rules, ints, floats, int(ints[INT_FRICTION_AT_MS]))


def decay_factor(rules: CompiledRules, ints: IntArray, at_ms: int) -> float:
    """The factor the friction scores of a stored journey state are multiplied by at `at_ms`."""
    return float(
        _friction_decay(int(ints[INT_FRICTION_AT_MS]), int(at_ms), float(rules.half_life_ms))
    )


def decayed_scores(
    rules: CompiledRules, ints: IntArray, floats: FloatArray, at_ms: int
) -> FloatArray:
    """Each friction signal's score (float64, (n_signals,)) decayed to `at_ms`; a new array."""
    factor = _friction_decay(int(ints[INT_FRICTION_AT_MS]), int(at_ms), float(rules.half_life_ms))
    return _signal_scores(rules, floats) * factor  # type: ignore[no-any-return]


def _ring(rules: CompiledRules, floats: FloatArray, counter: int) -> FloatArray:
    first = int(rules.counter_offset[counter])
    return floats[first : first + int(rules.counter_buckets[counter])]


def counter_head(rules: CompiledRules, ints: IntArray, counter: int) -> int:
    """The newest epoch counter `counter` has seen, NEVER_MS before its first event."""
    return int(ints[rules.counter_head_index + counter])


def counter_value(
    rules: CompiledRules, ints: IntArray, floats: FloatArray, counter: int, now_ms: int
) -> float:
    """Counter `counter`'s value at `now_ms` (ms since the epoch), the stored state unchanged."""
    current = int(now_ms) // int(rules.counter_width_ms[counter])
    return float(
        _counter_total(_ring(rules, floats, counter), counter_head(rules, ints, counter), current)
    )


def counter_window(
    rules: CompiledRules, ints: IntArray, floats: FloatArray, counter: int, last_epoch: int
) -> FloatArray:
    """Counter `counter`'s buckets for the epochs (last_epoch - n, last_epoch], oldest first;
    zero where the stored ring does not hold that epoch."""
    ring = _ring(rules, floats, counter)
    window = np.zeros(ring.shape[0], dtype=np.float64)
    _add_window(ring, counter_head(rules, ints, counter), int(last_epoch), window)
    return window


def store_counter_window(
    rules: CompiledRules,
    ints: IntArray,
    floats: FloatArray,
    counter: int,
    window: FloatArray,
    last_epoch: int,
) -> None:
    """Make counter `counter` in `ints`/`floats` hold `window` (oldest first, ending at
    `last_epoch`), with `last_epoch` as its head."""
    ring = _ring(rules, floats, counter)
    if window.shape != ring.shape or window.dtype != np.float64:
        raise ValueError(f"a window of {ring.shape[0]} float64 buckets is needed, got {window!r}")
    _store_window(window, int(last_epoch), ring)
    ints[rules.counter_head_index + counter] = last_epoch
