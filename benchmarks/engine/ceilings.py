"""Ceilings measured in the same run, the units every figure is read in: what a call costs before
it does any work, in Python and through numba."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numba

from benchmarks.engine.timing import call_each_us
from benchmarks.engine.workload import Workload

if TYPE_CHECKING:
    from engine.compile import Ruleset
    from engine.event import Event
    from engine.state import CustomerState


def _project_kernel() -> tuple[Callable[[Any], Any], str]:
    """The engine's kernel decorator, so the ceilings dispatch as its kernels do; numba's
    defaults with `cache=True` (and a note saying so) if the engine has moved it."""
    try:
        from engine.kernels.jit import kernel
    except ImportError:
        note = "engine.kernels.jit.kernel is gone: the ceilings use numba.njit(cache=True)"
        return numba.njit(cache=True), note
    return kernel, ""


_kernel, FLAGS_NOTE = _project_kernel()


def _empty(
    ruleset: Ruleset, state: CustomerState, event: Event, now_ms: int
) -> tuple[None, CustomerState]:
    """What `decide` costs when it does nothing: a Python call with the same arguments."""
    return None, state


@_kernel
def _bare(now_ms: int) -> int:
    """A trivial kernel: what one numba dispatch of a scalar costs."""
    return now_ms


@_kernel
def trivial_kernel(*arguments: object) -> int:
    """A trivial kernel taking anything: the dispatch floor of a real kernel's arguments."""
    return 0


def measure_ceilings(workload: Workload, repeats: int) -> dict[str, float]:
    """µs of an empty Python call (in decide's replay loop) and of a bare numba call."""
    return {
        "python": statistics.median(workload.per_event_us(_empty, repeats)),
        "numba": call_each_us(_bare, [(t.now_ms,) for t in workload.events], repeats),
    }
