"""Benchmarks run after `benchmarks.run_all`'s session (`benchmarks.added_run`) go into its
results.json as one more run, leave the others as they were, and RESULTS.md shows them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import added_run, timers_cost
from benchmarks.added_run import RESULTS_JSON, AddedRun
from benchmarks.engine import conditions_cost


@pytest.mark.parametrize(
    ("run", "title"),
    [
        (timers_cost.RUN, "## 12. Timers: memory, rate and the cost to the hot path (issue 15)"),
        (
            conditions_cost.RUN,
            "## 13. Time conditions and the contact policy: what they cost (issue 17)",
        ),
    ],
    ids=lambda value: value.name if isinstance(value, AddedRun) else "",
)
def test_the_run_goes_into_results_json_beside_the_others(
    run: AddedRun, title: str, tmp_path: Path
) -> None:
    results_json, results_md = tmp_path / "results.json", tmp_path / "RESULTS.md"
    shutil.copy(RESULTS_JSON, results_json)
    before = json.loads(results_json.read_text(encoding="utf-8"))
    other_work = "other processes 1.0%, steal 0.0% of the 2 cores' time: a quiet machine"
    failed = {"error": "RuntimeError: it broke", "seconds": 1.0, "other_work": other_work}
    added_run.into_results(run, failed, results_json, results_md)
    after = json.loads(results_json.read_text(encoding="utf-8"))
    assert after["runs"].pop(run.name) == failed
    before["runs"].pop(run.name, None)
    assert after["runs"] == before["runs"]
    header = after["machine"][f"{run.name} run"]
    assert f"python -m {run.module} --into-results" in header
    assert header.endswith(f"; {other_work}")  # what other work took while it ran
    text = results_md.read_text(encoding="utf-8")
    assert title in text
    assert f"**Error**: `{run.name}`: RuntimeError: it broke" in text
