"""Windowed counters: a ring of time buckets per counter.

Bucket `e` holds the events whose time falls in [e * width, (e + 1) * width). A counter with B
buckets reads the B buckets ending at the current one, so an event counts for at least
window - width and at most window after it happened: the documented precision.
"""

from __future__ import annotations

from engine.kernels.codes import VALUE_NUMBER
from engine.kernels.jit import kernel


@kernel
def _roll_counter(rules, counter, ints, floats, clock_ms):
    """Advance counter `counter` to the bucket of `clock_ms`; empty the buckets that left."""
    width = rules.counter_width_ms[counter]
    n_buckets = rules.counter_buckets[counter]
    base = rules.counter_offset[counter]
    head_index = rules.counter_head_index + counter
    head = ints[head_index]
    current = clock_ms // width
    if current - head >= n_buckets:
        for b in range(n_buckets):
            floats[base + b] = 0.0
    else:
        for epoch in range(head + 1, current + 1):
            floats[base + epoch % n_buckets] = 0.0
    if current > head:
        ints[head_index] = current
    return current % n_buckets


@kernel
def _update_counters(rules, ints, floats, clock_ms, values, event, counter_values):
    """Roll every counter to `clock_ms`, add this event where it matches, and read the totals.

    `values` holds the counters' filter conditions (evaluated before). `counter_values`, float64
    of shape (n_counters,), receives each counter's total.
    """
    for counter in range(rules.counter_root.shape[0]):
        bucket = _roll_counter(rules, counter, ints, floats, clock_ms)
        base = rules.counter_offset[counter]
        if values[rules.counter_root[counter]]:
            slot = rules.counter_sum_slot[counter]
            if slot < 0:
                floats[base + bucket] += 1.0
            elif event.kind[slot] == VALUE_NUMBER:
                floats[base + bucket] += event.num[slot]
        total = 0.0
        for b in range(rules.counter_buckets[counter]):
            total += floats[base + b]
        counter_values[counter] = total
