"""How busy the event loop's thread has been lately: its CPU time over the wall time.

A server process runs all of its Python on that one thread (gRPC's handlers, every decision).
When the thread is near a whole core, calls wait inside gRPC before their handlers start, and
reach the decider a few at a time however many are in flight: at concurrency 64, decision
rounds took 2-3 calls. Waiting a few milliseconds then lets a round gather ten or more, each of
which costs less CPU in a larger round (`server.decisions.decider`). Below that load the wait
would only add to every call's latency, so it is kept for a thread that is busy.
"""

from __future__ import annotations

import time
from collections.abc import Callable

WINDOW_S = 0.05  # the load is measured over windows of at least this long


class LoopLoad:
    """The share of the wall time the calling thread spent on the CPU over its last window of
    at least `window_s` (0 until one has passed). Ask from the event loop's own thread:
    `time.thread_time` counts the thread that calls it."""

    def __init__(
        self,
        window_s: float = WINDOW_S,
        *,
        wall: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.thread_time,
    ) -> None:
        self._window_s = window_s
        self._wall = wall
        self._cpu = cpu
        self._since: tuple[float, float] | None = None  # (wall, cpu) at the window's start
        self._share = 0.0

    def busy_share(self) -> float:
        """The last whole window's busy share, between 0 and 1."""
        now = self._wall()
        if self._since is None:
            self._since = (now, self._cpu())
        elif now - self._since[0] >= self._window_s:
            cpu = self._cpu()
            started, started_cpu = self._since
            self._share = min(1.0, max(0.0, (cpu - started_cpu) / (now - started)))
            self._since = (now, cpu)
        return self._share


class Saturated:
    """Whether the thread counts as saturated: from when its share reaches `on_at` until it falls
    below `off_below` (lower, so that what is done while busy, such as larger batches that
    lighten the thread, does not switch it off at once)."""

    def __init__(self, load: LoopLoad, *, on_at: float, off_below: float) -> None:
        self._load = load
        self._on_at = on_at
        self._off_below = off_below
        self._on = False

    def __call__(self) -> bool:
        share = self._load.busy_share()
        if share >= self._on_at:
            self._on = True
        elif share < self._off_below:
            self._on = False
        return self._on
