"""`engine.kernels.readout`: friction decay and level, and the counter ring, at their edges."""

from __future__ import annotations

import numpy as np
import pytest

from engine.kernels import codes
from engine.kernels.readout import (
    _counter_total,
    _friction_decay,
    _friction_level,
    counter_value,
    counter_window,
    store_counter_window,
)
from engine.state import JourneyState
from tests.rulesets import retail

HOUR_MS = 3_600_000


def test_friction_halves_every_half_life_and_never_grows() -> None:
    assert _friction_decay(1_000, 1_000 + 2 * HOUR_MS, float(HOUR_MS)) == 0.25
    assert _friction_decay(1_000, 1_000, float(HOUR_MS)) == 1.0
    assert _friction_decay(1_000, 0, float(HOUR_MS)) == 1.0  # a moment before: as recorded
    assert _friction_decay(codes.NEVER_MS, 1_000, float(HOUR_MS)) == 0.0


def test_the_level_is_the_highest_threshold_reached() -> None:
    thresholds = np.array([0.0, 3.0, 6.0])
    levels = [_friction_level(thresholds, total) for total in (0.0, 2.99, 3.0, 5.9, 6.0, 100.0)]
    assert levels == [0, 0, 1, 1, 2, 2]


def test_a_counter_reads_the_epochs_still_in_its_window() -> None:
    # Four buckets whose head epoch is 10: slot e % 4 holds epoch e, for e in 7..10.
    ring = np.zeros(4)
    for epoch, amount in ((7, 1.0), (8, 10.0), (9, 100.0), (10, 1000.0)):
        ring[epoch % 4] = amount
    reads = {current: _counter_total(ring, 10, current) for current in (9, 10, 11, 12, 13, 14)}
    assert reads == {9: 1111.0, 10: 1111.0, 11: 1110.0, 12: 1100.0, 13: 1000.0, 14: 0.0}
    assert _counter_total(ring, codes.NEVER_MS, 10) == 0.0


def test_a_window_stored_back_reads_the_same() -> None:
    journey = retail().journeys[0]
    rules, state = journey.rules, JourneyState.initial(journey)
    n = int(rules.counter_buckets[0])
    width_ms = int(rules.counter_width_ms[0])
    window = np.arange(1.0, n + 1.0)  # oldest first, ending at epoch 100
    store_counter_window(rules, state.ints, state.floats, 0, window, 100)
    assert counter_window(rules, state.ints, state.floats, 0, 100).tolist() == window.tolist()
    assert (
        counter_window(rules, state.ints, state.floats, 0, 101)[:-1].tolist() == window[1:].tolist()
    )
    assert counter_value(rules, state.ints, state.floats, 0, 100 * width_ms) == window.sum()
    assert counter_value(rules, state.ints, state.floats, 0, 101 * width_ms) == window[1:].sum()
    with pytest.raises(ValueError, match="float64 buckets"):
        store_counter_window(rules, state.ints, state.floats, 0, window[:-1], 100)
