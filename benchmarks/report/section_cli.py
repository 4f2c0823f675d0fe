"""The command line of a benchmark that is one RESULTS.md section (`benchmarks.goals_cost`,
`benchmarks.decision_parts`): measure, then print the section as RESULTS.md shows it, or JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from benchmarks.report.markdown import section_markdown
from benchmarks.report.run_figures import RunFigures
from benchmarks.report.runs import Runs
from benchmarks.report.table import Section


def section_main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    doc: str | None,
    run: str,
    measure: Callable[[bool], Mapping[str, Any]],
    section: Callable[[Runs], Section],
) -> int:
    """`python -m <prog> [--quick] [--json]`: `measure(quick)` as `run`'s figures."""
    parser = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short check that it works")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    args = parser.parse_args(argv)
    figures = measure(args.quick)
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        print(section_markdown(1, section(Runs(cast(RunFigures, {run: figures})))))
    return 0
