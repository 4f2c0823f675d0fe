"""The figures of the results table: each measurement against its ceilings and its target."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

WARM_START_TARGET_S = 1.0
DECIDE_TARGET_US = 20.0
SPEEDUP_TARGET = 10.0


@dataclass(frozen=True, slots=True)
class Figure:
    """One line of the results table."""

    name: str
    value: float
    unit: str
    target: str = ""
    verdict: str = ""  # "met", "missed", or empty when there is no target
    note: str = ""

    def shown(self) -> str:
        return (
            f"{self.value:,.3g} {self.unit}"
            if self.value < 100
            else f"{self.value:,.0f} {self.unit}"
        )


def _verdict(met: bool) -> str:
    return "met" if met else "missed"


def startup_figures(cold: dict[str, float], warm: dict[str, float]) -> list[Figure]:
    first = warm["first_decide_s"]
    against = f"{first / WARM_START_TARGET_S:.2f}× target"
    speedup = f"cold/warm {cold['first_decide_s'] / first:.0f}×"
    parts = f"import {warm['import_s']:.2f} s, load rules {warm['load_s']:.3f} s"
    return [
        Figure(
            "first decide(), cold (compiles every kernel)",
            cold["first_decide_s"],
            "s",
            note=f"whole process {cold['process_s']:.1f} s",
        ),
        Figure(
            "first decide(), warm (kernels from the disk cache)",
            first,
            "s",
            f"≤ {WARM_START_TARGET_S:g} s",
            _verdict(first <= WARM_START_TARGET_S),
            f"{against}; {speedup}",
        ),
        Figure("warm process, launch to exit", warm["process_s"], "s", note=parts),
    ]


def ceiling_figures(
    ceilings: dict[str, float], dispatch_floor_us: dict[str, float]
) -> list[Figure]:
    """The empty Python call, the bare numba call, and the dispatch floor of each kernel."""
    bare, python = ceilings["numba"], ceilings["python"]
    figures = [
        Figure(
            "ceiling: empty Python call, decide's arguments",
            python,
            "µs",
            note=f"{python / bare:.1f}× bare numba call",
        ),
        Figure("ceiling: bare numba call (one scalar)", bare, "µs", note="the unit of the ratios"),
    ]
    for kernel_name, floor_us in dispatch_floor_us.items():
        name = f"ceiling: trivial numba call, {kernel_name}'s arguments"
        figures.append(Figure(name, floor_us, "µs", note=f"{floor_us / bare:.0f}× bare numba call"))
    return figures


def decide_figure(
    name: str, samples: list[float], ceilings: dict[str, float], *, target: bool
) -> Figure:
    """decide()'s median µs per event, against the ceilings, with the spread of the repeats."""
    us = statistics.median(samples)
    bare, python = us / ceilings["numba"], us / ceilings["python"]
    spread = f"repeats {min(samples):.1f}–{max(samples):.1f} µs"
    versus = f"{bare:.0f}× bare numba call, {python:.0f}× empty Python call; {spread}"
    if not target:
        return Figure(name, us, "µs/event", note=versus)
    against = f"{us / DECIDE_TARGET_US:.2f}× target"
    met = _verdict(us <= DECIDE_TARGET_US)
    return Figure(name, us, "µs/event", f"≤ {DECIDE_TARGET_US:g} µs", met, f"{against}; {versus}")


def cold_figure(
    samples: list[float],
    warm_us: float,
    before: str = "other code, a 16 MB sweep and a 0.7 ms pause before each event, as in a "
    "server one call at a time",
) -> Figure:
    """decide() cold (`benchmarks.engine.cold`), against its warm median on the same events;
    `before`: what ran before each event."""
    us = statistics.median(samples)
    spread = f"repeats {min(samples):.1f}–{max(samples):.1f} µs"
    return Figure(
        f"decide(), retail rules, cold: {before}", us, "µs/event",
        note=f"{us / warm_us:.1f}× decide() warm ({warm_us:.1f} µs); {spread}",
    )  # fmt: skip


def speedup_figures(
    decide_us: float, reference_us: float, agreement: tuple[int, int] | None
) -> list[Figure]:
    speedup = reference_us / decide_us
    agreed = f"; same answer on {agreement[0]:,}/{agreement[1]:,} events" if agreement else ""
    return [
        Figure(
            "reference evaluator, 200 rules", reference_us, "µs/event", note="tests/reference.py"
        ),
        Figure(
            "decide() speed-up over the reference, 200 rules",
            speedup,
            "×",
            f"≥ {SPEEDUP_TARGET:g}×",
            _verdict(speedup >= SPEEDUP_TARGET),
            f"{speedup / SPEEDUP_TARGET:.2f}× target{agreed}",
        ),
    ]
