"""Timed loops: µs per call, the collector paused, one untimed warm-up run first."""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


@contextmanager
def gc_paused() -> Iterator[None]:
    """No collector runs inside a timed loop (as `timeit` does), so repeats compare."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def samples_us(run: Callable[[Any], int], setup: Callable[[], Any], repeats: int) -> list[float]:
    """µs per call in each of `repeats` runs; `run(setup())` does the calls and returns how many.

    One untimed run warms caches and the JIT first. `setup` is never timed.
    """
    run(setup())
    samples = []
    for _ in range(repeats):
        prepared = setup()
        with gc_paused():
            start_ns = time.perf_counter_ns()
            count = run(prepared)
            elapsed_ns = time.perf_counter_ns() - start_ns
        samples.append(elapsed_ns / 1_000 / count)
    return samples


def median_us(run: Callable[[Any], int], setup: Callable[[], Any], repeats: int) -> float:
    """The median of `samples_us`."""
    return statistics.median(samples_us(run, setup, repeats))


def call_each_us(
    function: Callable[..., Any], arguments: Sequence[tuple[Any, ...]], repeats: int
) -> float:
    """Median µs of `function(*args)` over every `args` in `arguments`."""

    def run(prepared: Sequence[tuple[Any, ...]]) -> int:
        for args in prepared:
            function(*args)
        return len(prepared)

    return median_us(run, lambda: arguments, repeats)


async def least_cpu_us(
    run: Callable[[T], Awaitable[int]],
    setup: Callable[[], T],
    repeats: int,
    *,
    until_s: float = math.inf,
) -> float:
    """The least CPU µs per call of `repeats` runs: this process's CPU (`time.process_time`,
    whatever else its event loop ran meanwhile included); `await run(setup())` makes the calls
    and returns how many.

    One untimed run warms caches, connections and the JIT first; `setup` is never timed. No run
    starts once `until_s` (a `time.perf_counter` time) has passed, but one is always timed.
    """
    await run(setup())
    least = math.inf
    for _ in range(repeats):
        prepared = setup()
        with gc_paused():
            start_s = time.process_time()
            count = await run(prepared)
            cpu_s = time.process_time() - start_s
        least = min(least, cpu_s * 1e6 / count)
        if time.perf_counter() >= until_s:
            break
    return least
