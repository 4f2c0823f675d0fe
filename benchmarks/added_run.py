"""A benchmark run added to `make bench`'s results after `benchmarks.run_all`'s session (whose
time budget the others fill): measured on its own, written as one more run of the session in
results.json, and RESULTS.md rendered again from that file. `benchmarks.timers_cost` and
`benchmarks.engine.conditions_cost` are run this way; `main` is their command line.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from benchmarks import ROOT
from benchmarks.report.other_work import MachineCpu, others_share

if TYPE_CHECKING:
    from benchmarks.report.run_figures import RunFigures
    from benchmarks.report.sections import Runs
    from benchmarks.report.table import Section

RESULTS_JSON = ROOT / "benchmarks" / "results" / "results.json"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"


@dataclass(frozen=True)
class AddedRun:
    """One such benchmark: its run's name in results.json, its module (`python -m …`), how to
    measure it, and its section of RESULTS.md."""

    name: str
    module: str
    measure: Callable[[bool], Any]  # quick -> the run's figures
    section_number: int
    section: Callable[[Runs], Section]


def into_results(
    run: AddedRun, outcome: dict[str, Any], results_json: Path, results_md: Path
) -> None:
    """`outcome` ({"figures"} or {"error"}, "seconds", and "other_work" when measured) as the
    run `run.name` of the session in `results_json`, with a line of its own in the machine
    header, and RESULTS.md rendered again from that file."""
    from benchmarks import run_all
    from benchmarks.report.machine import load_average, machine

    if results_json.exists():
        raw: dict[str, Any] = json.loads(results_json.read_text(encoding="utf-8"))
    else:
        raw = {"machine": machine(ROOT), "quick": False, "runs": {}}
    raw["runs"][run.name] = outcome
    other_work = f"; {outcome['other_work']}" if "other_work" in outcome else ""
    raw["machine"][f"{run.name} run"] = (
        f"{outcome['seconds']:.0f} s after the runs above (`python -m {run.module} "
        f"--into-results`); load average (1, 5, 15 min) at its end: "
        f"{load_average(judged=False)}{other_work}"
    )
    run_all.write(raw, results_md, results_json)


def main(run: AddedRun, doc: str | None, argv: Sequence[str] | None = None) -> int:
    """The command line of `run`: its section printed, `--json` figures, or `--into-results`."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {run.module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a short check that it works")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    parser.add_argument(
        "--into-results",
        action="store_true",
        help=f"add the run to {RESULTS_JSON.relative_to(ROOT)} and render RESULTS.md from it",
    )
    args = parser.parse_args(argv)
    started, cpu = time.perf_counter(), MachineCpu.now()
    try:
        outcome: dict[str, Any] = {"figures": run.measure(args.quick)}
    except Exception as error:  # the boundary: the failure is recorded, as run_all records one
        if not args.into_results:
            raise
        outcome = {"error": f"{type(error).__name__}: {error}"[:600],
                   "traceback": traceback.format_exc()}  # fmt: skip
    outcome["seconds"] = round(time.perf_counter() - started, 1)
    outcome["other_work"] = others_share(cpu, MachineCpu.now())
    if args.into_results:
        into_results(run, outcome, RESULTS_JSON, RESULTS_MD)
        print(f"written {RESULTS_JSON.relative_to(ROOT)} and {RESULTS_MD.relative_to(ROOT)}")
        return 0 if "figures" in outcome else 1
    if args.json:
        print(json.dumps(outcome["figures"], indent=1))
        return 0
    from benchmarks.report.markdown import section_markdown
    from benchmarks.report.sections import Runs

    figures = cast("RunFigures", {run.name: outcome["figures"]})  # one run of the session
    section = run.section(Runs(figures))
    print(section_markdown(run.section_number, section))
    return 0
