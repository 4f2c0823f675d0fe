"""The event loop thread's load: its CPU time over the wall time, by windows."""

from __future__ import annotations

import time

from server.core.loop_load import LoopLoad, Saturated


class Clocks:
    """A wall clock and a CPU clock moved by hand."""

    def __init__(self) -> None:
        self.wall_s = 100.0
        self.cpu_s = 5.0

    def run(self, wall_s: float, busy: float) -> None:
        self.wall_s += wall_s
        self.cpu_s += wall_s * busy


def test_the_share_is_the_cpu_time_over_the_last_whole_window() -> None:
    clocks = Clocks()
    load = LoopLoad(0.05, wall=lambda: clocks.wall_s, cpu=lambda: clocks.cpu_s)
    assert load.busy_share() == 0.0  # no window yet
    clocks.run(0.03, busy=0.9)
    assert load.busy_share() == 0.0  # the window is not over
    clocks.run(0.03, busy=0.9)
    assert abs(load.busy_share() - 0.9) < 1e-9
    clocks.run(0.02, busy=0.1)
    assert abs(load.busy_share() - 0.9) < 1e-9  # still the last whole window's
    clocks.run(0.08, busy=0.1)
    assert abs(load.busy_share() - 0.1) < 1e-9


def test_an_idle_spell_between_questions_counts_as_idle() -> None:
    clocks = Clocks()
    load = LoopLoad(0.05, wall=lambda: clocks.wall_s, cpu=lambda: clocks.cpu_s)
    load.busy_share()
    clocks.run(0.06, busy=1.0)
    assert abs(load.busy_share() - 1.0) < 1e-9
    clocks.run(10.0, busy=0.0)
    clocks.run(0.01, busy=1.0)
    assert load.busy_share() < 0.01


def test_a_sleeping_thread_is_not_busy() -> None:
    load = LoopLoad(0.02)
    load.busy_share()
    time.sleep(0.05)
    assert load.busy_share() < 0.5


def test_saturated_from_the_high_mark_until_below_the_low_one() -> None:
    clocks = Clocks()
    load = LoopLoad(0.05, wall=lambda: clocks.wall_s, cpu=lambda: clocks.cpu_s)
    saturated = Saturated(load, on_at=0.9, off_below=0.5)
    seen = [saturated()]
    for share in (0.8, 0.95, 0.7, 0.55, 0.45, 0.85):
        clocks.run(0.06, busy=share)
        seen.append(saturated())
    assert seen == [False, False, True, True, True, False, False]
