"""Timed loops: µs per call, the collector paused, one untimed warm-up run first."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any


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
