"""Keeping the event loop's thread running between a lone caller's calls, so it never wakes cold.

A thread that sleeps lets its core run other work (gRPC's threads, Redis, a load driver; on a VM
the host's other guests), and wakes to caches that work has filled: what it runs next costs
more. How much more depends on what ran meanwhile: decide() alone after a 0.7 ms sleep cost
1.6x its back-to-back time in one `make bench` here and 3x in a busier moment, against 1.2-1.5x
after the same pause spent spinning (benchmarks/RESULTS.md, section 5). A server's event loop
sleeps whenever it waits: for Redis's reply in the middle of a call, for the next call. One call
at a time, every call starts cold.

The spinner keeps the loop turning, one `asyncio.sleep(0)` a turn (every other callback and
every reply still runs at once), for `linger_s` after a call came or went, while that call is
alone in the server (`crowded` false); then it sleeps until the next call. Only then: with calls
in company the loop has work to turn on, and on 2 cores shared with gRPC's threads, Redis and
the load driver, a spinning loop took their CPU (at concurrency 64 as many runs lost as gained).
An idle server spends nothing; a lightly loaded one spends up to `linger_s` of a core after each
call (`journeyman_event_loop_spin_seconds_total` counts it). Measured on the benchmark's VM, one
call at a time, in turns with the same server not spinning (`linger_s` 3 ms, 4 runs each): p50
21-32 % lower, p99 3-34 % lower, 6-19 % more CPU per call.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from server.core.metrics import SPUN


class Spinner:
    """Spins the event loop for `linger_s` after each `touch()`, unless `crowded()` (`run` is
    its task)."""

    def __init__(
        self,
        linger_s: float,
        crowded: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._linger_s = linger_s
        self._crowded = crowded
        self._clock = clock
        self._touched_at = -math.inf
        self._woken = asyncio.Event()
        self._spinning = False
        self.turns = 0  # loop turns spun, in all

    def touch(self) -> None:
        """A call came or went: keep the loop turning for `linger_s` more."""
        self._touched_at = self._clock()
        if not self._spinning and not self._crowded():
            self._woken.set()

    @property
    def spinning(self) -> bool:
        return self._spinning

    async def run(self) -> None:
        """Spin while touched recently; sleep until touched again. Runs until cancelled."""
        while True:
            await self._woken.wait()
            self._woken.clear()
            self._spinning, started = True, self._clock()
            try:
                while self._clock() - self._touched_at < self._linger_s and not self._crowded():
                    self.turns += 1
                    await asyncio.sleep(0)
            finally:
                self._spinning = False
                SPUN.inc(self._clock() - started)
