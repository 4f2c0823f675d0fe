"""Windowed counters: a ring of time buckets per counter.

Bucket `e` holds the events whose time falls in [e * width, (e + 1) * width). A counter with B
buckets reads the B buckets ending at the current one, so an event counts for at least
window - width and at most window after it happened: the documented precision.
"""

from __future__ import annotations

from engine.kernels.codes import VALUE_NUMBER
from engine.kernels.jit import kernel
from engine.kernels.readout import _counter_total, _roll


@kernel
def _update_counters(rules, ints, floats, clock_ms, values, event, counter_values):
    """Roll every counter to `clock_ms`, add this event where it matches, and read the totals.

    `values` holds the counters' filter conditions (evaluated before). `counter_values`, float64
    of shape (n_counters,), receives each counter's total.
    """
    for counter in range(rules.counter_root.shape[0]):
        base = rules.counter_offset[counter]
        buckets = floats[base : base + rules.counter_buckets[counter]]
        head_index = rules.counter_head_index + counter
        current = clock_ms // rules.counter_width_ms[counter]
        _roll(buckets, ints[head_index], current)
        if current > ints[head_index]:
            ints[head_index] = current
        if values[rules.counter_root[counter]]:
            slot = rules.counter_sum_slot[counter]
            if slot < 0:
                buckets[current % buckets.shape[0]] += 1.0
            elif event.kind[slot] == VALUE_NUMBER:
                buckets[current % buckets.shape[0]] += event.num[slot]
        counter_values[counter] = _counter_total(buckets, ints[head_index], current)
