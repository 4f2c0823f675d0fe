"""decide() as a server runs it: cold, each event after other work and an idle gap.

Replayed back to back, decide() keeps its code and data in the CPU's caches; in a server one call
at a time it runs after gRPC, the event loop and the network stack have run and the thread has
waited for the next call, and costs several times more (RESULTS.md section 14, "in a server").
Here each event is preceded, untimed, by what stands in for that: other Python code (a JSON
round trip, a regex, zlib, turns of an event loop), a sweep over more data than the caches hold,
and a pause; only decide() itself is timed, on the thread's CPU clock.

Two more preparations tell the pause's share from the rest's: the pause alone (the thread
sleeps, as a server's does waiting for its next call, nothing else of this process run) and the
same pause spent spinning (the thread kept running, touching almost nothing). What the sleep
alone costs depends on what else the machine runs meanwhile (here from about what the spin costs
to three times it); the spin's is about the least a server's pause between calls can cost.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
import zlib
from collections.abc import Callable

import numpy as np

from benchmarks.engine.timing import gc_paused
from benchmarks.engine.workload import Decider, Workload

SWEEP_BYTES = 16 * 1024 * 1024  # more than this machine's caches give one core
PAUSE_S = 0.0007  # about the gap between one caller's calls at one call at a time
LOOP_TURNS = 20
_DOCUMENT = {f"key{i}": [i, str(i) * 3, {"share": i / 3}] for i in range(2_000)}


class Between:
    """The untimed work run before each event (see the module)."""

    def __init__(self) -> None:
        self._data = np.zeros(SWEEP_BYTES // 8)
        self._loop = asyncio.new_event_loop()

    def __call__(self) -> None:
        np.add(self._data, 1.0, out=self._data)
        text = json.dumps(_DOCUMENT)
        json.loads(text)
        re.findall(r"key(\d+)", text[:20_000])
        zlib.compress(text[:50_000].encode())
        self._loop.run_until_complete(_turns())
        time.sleep(PAUSE_S)

    def close(self) -> None:
        self._loop.close()


async def _turns() -> None:
    for _ in range(LOOP_TURNS):
        await asyncio.sleep(0)


def pause_alone() -> None:
    """The thread idle for PAUSE_S, nothing else run."""
    time.sleep(PAUSE_S)


def pause_spun() -> None:
    """PAUSE_S spent spinning on the clock: the thread never idles, and touches almost nothing."""
    until = time.perf_counter() + PAUSE_S
    while time.perf_counter() < until:
        pass


def cold_per_event_us(
    workload: Workload,
    step: Decider,
    repeats: int,
    events: int = 600,
    before: Callable[[], None] | None = None,
) -> list[float]:
    """µs of the thread's CPU per event of `step` in each of `repeats` cold replays of the first
    `events` of `workload` from fresh states (after one warm, untimed replay of them all; the
    work between events takes milliseconds, so a replay is kept short). `before` runs, untimed,
    before each event: by default `Between` (other code, a sweep and a pause)."""
    between = Between() if before is None else None
    prepare = before or between
    assert prepare is not None
    try:
        workload.replay(step, workload.fresh_states())
        samples = []
        for _ in range(repeats):
            states, timed_ns = workload.fresh_states(), []
            with gc_paused():
                for timed in workload.events[:events]:
                    prepare()
                    event = timed.event
                    started = time.thread_time_ns()
                    _, states[event.customer_id] = step(
                        workload.ruleset, states[event.customer_id], event, timed.now_ms
                    )
                    timed_ns.append(time.thread_time_ns() - started)
            samples.append(statistics.fmean(timed_ns) / 1_000)
        return samples
    finally:
        if between is not None:
            between.close()
