"""Kernel micro-benchmarks: `python -m benchmarks.engine.kernels` (or `make bench`), under two
minutes.

Every figure is read against a ceiling measured in the same run (an empty Python call with
`decide`'s arguments, a trivial numba call) and printed next to its target. The table goes to
stdout and to `benchmarks/results/kernels.md`; `benchmarks/README.md` explains each figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks import ROOT
from benchmarks.engine.ceilings import FLAGS_NOTE, measure_ceilings
from benchmarks.engine.cold import cold_per_event_us, pause_alone, pause_spun
from benchmarks.engine.figures import (
    Figure,
    ceiling_figures,
    cold_figure,
    decide_figure,
    speedup_figures,
    startup_figures,
)
from benchmarks.engine.generated_rules import RulesShape, generate_journey
from benchmarks.engine.reference import reference_agreement, reference_per_event_us
from benchmarks.engine.startup import measure_startup
from benchmarks.engine.steps import decide_breakdown, print_profile
from benchmarks.engine.tables import (
    breakdown_rows,
    figure_rows,
    markdown_table,
    text_table,
    write_results,
)
from benchmarks.engine.workload import Workload, load_workload
from benchmarks.report.machine import at_the_end, machine
from benchmarks.report.other_work import MachineCpu
from engine.decide import decide

RETAIL = ROOT / "rules" / "retail.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "kernels.md"

_STARTED = time.perf_counter()

Table = tuple[str, list[list[str]]]  # a title, then rows of cells, the first row the header


@dataclass(frozen=True, slots=True)
class Plan:
    """How much work each measurement does; `--quick` shrinks it for a smoke run."""

    shoppers: int = 400
    events_per_shopper: int = 20
    reference_shoppers: int = 150
    repeats: int = 11  # short replays, many of them: a median that one busy second cannot move
    reference_repeats: int = 3
    warm_starts: int = 3
    cold_repeats: int = 3


QUICK = Plan(
    shoppers=100,
    reference_shoppers=20,
    repeats=2,
    reference_repeats=1,
    warm_starts=1,
    cold_repeats=1,
)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.engine.kernels", description=__doc__
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run to check it works")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of decide")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"default {RESULTS}")
    return parser.parse_args(argv)


def _say(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:5.1f} s] {message}", file=sys.stderr, flush=True)


def load_workloads(plan: Plan) -> tuple[Workload, Workload]:
    """The retail journey and the 200 generated rules, each with its simulated shoppers."""
    retail_text = RETAIL.read_text(encoding="utf-8")
    retail = load_workload(str(RETAIL), retail_text, plan.shoppers, plan.events_per_shopper)
    generated_text = generate_journey(RulesShape())
    generated = load_workload(
        "generated.yaml", generated_text, plan.reference_shoppers, plan.events_per_shopper
    )
    return retail, generated


def reference_figures(workload: Workload, decide_us: float, plan: Plan) -> list[Figure]:
    """The reference evaluator on `workload` and decide()'s speed-up over it, if it exists."""
    reference_us = reference_per_event_us(workload, plan.reference_repeats)
    if reference_us is None:
        return []
    return speedup_figures(decide_us, reference_us, reference_agreement(workload))


def measure(plan: Plan) -> tuple[list[Table], list[str]]:
    """Every measurement, as titled tables, and notes on anything that could not be measured."""
    _say("start-up: a cold and a warm interpreter")
    cold, warm = measure_startup(ROOT, RETAIL, plan.warm_starts)
    retail, generated = load_workloads(plan)
    _say(f"ceilings and decide() on {len(retail.events):,} retail events")
    ceilings = measure_ceilings(retail, plan.repeats)
    retail_us = retail.per_event_us(decide, plan.repeats)
    _say("decide() cold, retail rules")
    cold_us = cold_per_event_us(retail, decide, plan.cold_repeats)
    slept_us = cold_per_event_us(retail, decide, plan.cold_repeats, before=pause_alone)
    spun_us = cold_per_event_us(retail, decide, plan.cold_repeats, before=pause_spun)
    _say(f"decide() on {len(generated.events):,} events, 200 rules")
    generated_us = generated.per_event_us(decide, plan.repeats)
    _say("breakdowns of decide()")
    breakdowns = {
        "retail rules": (decide_breakdown(retail, plan.repeats), retail_us),
        "200 generated rules": (decide_breakdown(generated, plan.repeats), generated_us),
    }
    _say("the reference evaluator")
    figures = [
        *startup_figures(cold, warm),
        *ceiling_figures(ceilings, breakdowns["retail rules"][0].dispatch_floor_us),
        decide_figure("decide(), retail rules", retail_us, ceilings, target=True),
        cold_figure(cold_us, statistics.median(retail_us)),
        cold_figure(
            slept_us,
            statistics.median(retail_us),
            "the 0.7 ms pause alone before each event (the thread sleeps)",
        ),
        cold_figure(
            spun_us,
            statistics.median(retail_us),
            "the 0.7 ms pause spent spinning before each event (the thread never idles)",
        ),
        decide_figure("decide(), 200 generated rules", generated_us, ceilings, target=False),
        *reference_figures(generated, statistics.median(generated_us), plan),
    ]
    tables: list[Table] = [("Figures", figure_rows(figures))]
    notes = [FLAGS_NOTE] if FLAGS_NOTE else []
    for name, (breakdown, samples) in breakdowns.items():
        rows = breakdown_rows(breakdown.rows(), statistics.median(samples))
        tables.append((f"Where decide() spends its time: {name}", rows))
        notes += [f"{name}: {note}" for note in breakdown.notes]
    return tables, notes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    plan = QUICK if args.quick else Plan()
    info, started = machine(ROOT), MachineCpu.now()
    tables, notes = measure(plan)
    info.update(at_the_end(started))
    for title, rows in tables:
        print(f"\n{title}\n\n{text_table(rows)}")
    if notes:
        print("\nNotes\n\n" + "\n".join(f"- {note}" for note in notes))
    markdown = [(title, markdown_table(rows)) for title, rows in tables]
    write_results(args.output, info, markdown, notes)
    print(f"\nwritten to {args.output}")
    if args.profile:
        _say("cProfile of one retail replay")
        print_profile(load_workload(str(RETAIL), RETAIL.read_text(encoding="utf-8"), 200, 20))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
