"""Where `decide`'s time goes: every engine function, method and kernel it reaches, timed.

The instruments find what to wrap in the loaded engine modules rather than in a list of names, so
they follow `decide`'s internals as they are renamed or split. A name that is no longer there when
the wrappers go in is skipped with a note (`StepTimer.notes`), never an error.
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FunctionType
from typing import Any, NamedTuple

from numba.core.dispatcher import Dispatcher

from benchmarks.engine.ceilings import trivial_kernel
from benchmarks.engine.timing import call_each_us, gc_paused
from benchmarks.engine.workload import Workload
from engine.decide import decide


@dataclass(slots=True)
class Step:
    """One function `decide` reached: its calls, and its own time (its callees' time taken out)."""

    calls: int = 0
    callee_calls: int = 0
    own_ns: float = 0.0
    is_kernel: bool = False
    samples: list[tuple[Any, ...]] = field(default_factory=list)  # a kernel's arguments


class Target(NamedTuple):
    """One engine attribute to wrap: `owner.name` is `original`, timed as step `label`."""

    owner: Any  # a module or a class
    name: str
    original: Any
    label: str
    is_kernel: bool

    def is_bound(self) -> bool:
        """`owner.name` is still `original` (it may have been removed or replaced since)."""
        return vars(self.owner).get(self.name, _GONE) is self.original

    def where(self) -> str:
        owner = getattr(self.owner, "__qualname__", None) or self.owner.__name__
        return f"{owner}.{self.name}"


_GONE = object()


class StepTimer:
    """Wraps every function, method and numba kernel of the engine (rules loading aside) in a
    timer, so one replay says where `decide`'s time goes whatever its internals are called today.

    The wrappers cost time themselves: `calibrate` measures it and `own_us` takes it out again.
    """

    def __init__(self, keep_samples: int = 2_000) -> None:
        self.steps: dict[str, Step] = {}
        self.keep_samples = keep_samples
        self.notes: list[str] = []  # what could not be timed, and why
        self._stack: list[list[int]] = [[0, 0]]  # per open call: its callees' ns and calls
        self._targets: list[Target] | None = None  # found at the first `installed`
        self.inside_ns = 0.0
        self.outside_ns = 0.0

    def wrap(self, name: str, function: Callable[..., Any], is_kernel: bool) -> Callable[..., Any]:
        step = self.steps.setdefault(name, Step(is_kernel=is_kernel))
        stack, clock, keep = self._stack, time.perf_counter_ns, self.keep_samples

        def timed(*args: Any, **kwargs: Any) -> Any:
            stack.append([0, 0])
            start_ns = clock()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed_ns = clock() - start_ns
                callees_ns, callee_calls = stack.pop()
                step.own_ns += elapsed_ns - callees_ns
                step.callee_calls += callee_calls
                step.calls += 1
                stack[-1][0] += elapsed_ns
                stack[-1][1] += 1
                if is_kernel and len(step.samples) < keep:
                    step.samples.append(args)

        return timed

    def calibrate(self, calls: int = 20_000, rounds: int = 5) -> None:
        """Measure the wrappers' cost: the part inside a call's own timing (a wrapped no-op's
        surplus) and the part its caller pays (the surplus of a wrapped function calling it).
        The least of a few rounds: noise only ever adds time."""
        inner = self.wrap(_INNER, _noop, is_kernel=False)
        outer = self.wrap(_OUTER, _call, is_kernel=False)
        plain_ns = min(call_each_us(_noop, [()] * calls, 1) for _ in range(rounds)) * 1e3
        inside, outside = [], []
        for _ in range(rounds):
            self.reset()
            call_each_us(outer, [(inner,)] * calls, 1)
            inside.append(self.steps[_INNER].own_ns / self.steps[_INNER].calls - plain_ns)
            outside.append(self.steps[_OUTER].own_ns / self.steps[_OUTER].calls - plain_ns)
        del self.steps[_INNER], self.steps[_OUTER]
        self.inside_ns, self.outside_ns = min(inside), min(outside)

    def reset(self) -> None:
        """Forget every call timed so far (kernel argument samples are kept)."""
        for step in self.steps.values():
            step.calls = step.callee_calls = 0
            step.own_ns = 0.0

    def own_us(self, step: Step, events: int) -> float:
        """`step`'s own µs per event, the wrappers' cost taken out."""
        overhead_ns = step.calls * self.inside_ns + step.callee_calls * self.outside_ns
        return (step.own_ns - overhead_ns) / 1e3 / events

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Every wrapper in place for the duration of the block; the originals back after it.

        What to wrap is found once, at the first call (after a warm-up has imported everything
        `decide` reaches); a target that is gone by a later call is skipped with a note.
        """
        if self._targets is None:
            self._targets = list(_targets())
        undo: list[Target] = []
        try:
            for target in self._targets:
                if not target.is_bound():
                    self._note(f"{target.where()} no longer exists: {target.label} not timed")
                    continue
                wrapper = self.wrap(target.label, _bound(target.original), target.is_kernel)
                setattr(target.owner, target.name, _rewrap(target.original, wrapper))
                undo.append(target)
            yield
        finally:
            for target in reversed(undo):
                setattr(target.owner, target.name, target.original)

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)


_INNER, _OUTER = "calibration: inner", "calibration: outer"


def _noop() -> None:
    return None


def _call(function: Callable[[], None]) -> None:
    return function()


def _targets() -> Iterator[Target]:
    """Every kernel, engine function and method in the engine's loaded modules, the rules loader
    aside (pydantic models, not on the hot path)."""
    for name, module in list(sys.modules.items()):
        if name.startswith("engine.") and not name.startswith("engine.rules"):
            yield from _callables(module)


def _callables(module: Any) -> Iterator[Target]:
    """Every kernel, engine function and method `module` holds, `decide` itself excepted (it is
    the root of the timing)."""
    for name, value in list(vars(module).items()):
        if isinstance(value, Dispatcher):
            yield Target(module, name, value, value.py_func.__qualname__, True)
        elif isinstance(value, FunctionType) and value.__module__.startswith("engine."):
            if value is not decide:
                yield Target(module, name, value, value.__qualname__, False)
        elif isinstance(value, type) and value.__module__ == module.__name__:
            for attribute, member in list(vars(value).items()):
                if not attribute.startswith("__") and isinstance(
                    member, FunctionType | classmethod | staticmethod
                ):
                    yield Target(value, attribute, member, f"{value.__name__}.{attribute}", False)


def _bound(original: Any) -> Callable[..., Any]:
    """The plain function behind a module attribute or a class member."""
    return original.__func__ if isinstance(original, classmethod | staticmethod) else original


def _rewrap(original: Any, wrapper: Callable[..., Any]) -> Any:
    if isinstance(original, classmethod):
        return classmethod(wrapper)
    if isinstance(original, staticmethod):
        return staticmethod(wrapper)
    return wrapper


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Where `decide`'s time goes: (step, calls per event, own µs per event), costliest first,
    the dispatch floor of each kernel `decide` calls (µs per call of a trivial kernel given the
    same arguments), and notes on what could not be timed."""

    steps: list[tuple[str, float, float]]
    dispatch_floor_us: dict[str, float]
    notes: tuple[str, ...] = ()

    def rows(self) -> list[tuple[str, float, float]]:
        """The steps, each kernel followed by the part of it that is dispatch."""
        rows = []
        for name, calls, own_us in self.steps:
            rows.append((name, calls, own_us))
            if name in self.dispatch_floor_us:
                floor_us = self.dispatch_floor_us[name] * calls
                rows.append((f"  of which: dispatch of {name}'s arguments", calls, floor_us))
        return rows


def decide_breakdown(workload: Workload, repeats: int) -> Breakdown:
    """Time every function `decide` reaches in instrumented replays of `workload`: the median
    of `repeats` replays for each step."""
    timer = StepTimer()
    timer.calibrate()
    root = timer.wrap("decide() own code", decide, is_kernel=False)
    workload.replay(decide, workload.fresh_states())  # compiles and warms everything first
    runs: list[dict[str, tuple[float, float]]] = []
    for _ in range(repeats):
        states = workload.fresh_states()
        timer.reset()
        with timer.installed(), gc_paused():
            events = workload.replay(root, states)
        runs.append(
            {
                name: (s.calls / events, timer.own_us(s, events))
                for name, s in timer.steps.items()
                if s.calls
            }
        )
    floors = {
        name: call_each_us(trivial_kernel, step.samples, repeats)
        for name, step in timer.steps.items()
        if step.is_kernel and step.samples
    }
    return Breakdown(_median_steps(runs), floors, tuple(timer.notes))


def _median_steps(runs: list[dict[str, tuple[float, float]]]) -> list[tuple[str, float, float]]:
    """(step, calls, own µs) per event, the median over `runs`, costliest first. A step missing
    from a run was not called in it: it counts as nothing there."""
    names = dict.fromkeys(name for run in runs for name in run)
    steps = [
        (
            name,
            statistics.median(run.get(name, (0.0, 0.0))[0] for run in runs),
            statistics.median(run.get(name, (0.0, 0.0))[1] for run in runs),
        )
        for name in names
    ]
    steps.sort(key=lambda step: -step[2])
    return steps


def print_profile(workload: Workload, lines: int = 20) -> None:
    """cProfile of one replay of `workload`, the `lines` costliest functions by own time."""
    states = workload.fresh_states()
    profiler = cProfile.Profile()
    profiler.runcall(workload.replay, decide, states)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(lines)
