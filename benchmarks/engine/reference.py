"""The plain-Python reference evaluator (`tests/reference.py`) on a workload: its speed, and
whether it answers as `decide` does."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from benchmarks import ROOT
from benchmarks.engine.timing import median_us
from benchmarks.engine.workload import Workload
from engine.decide import decide

REFERENCE_FILE = ROOT / "tests" / "reference.py"
_MODULE_NAME = "journeyman_reference_evaluator"


def _reference_engine() -> Any:
    """`ReferenceEngine` of tests/reference.py, or None where that file is not there.

    The file is loaded on its own, by path: the `tests` package is never imported (its fixtures
    and helpers are the tests' business), while the evaluator stays the tests' own twin of
    `decide`, written from the spec (it imports only the engine's event type and rules model)."""
    if _MODULE_NAME in sys.modules:
        return sys.modules[_MODULE_NAME].ReferenceEngine
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, REFERENCE_FILE)
    if spec is None or spec.loader is None or not REFERENCE_FILE.is_file():
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module  # its dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module.ReferenceEngine


def reference_per_event_us(workload: Workload, repeats: int) -> float | None:
    """µs per event of the reference evaluator on `workload`, or None without it."""
    reference_engine = _reference_engine()
    if reference_engine is None:
        return None
    models = [journey.model for journey in workload.loaded]
    traits = workload.traits

    def run(engine: Any) -> int:
        for timed in workload.events:
            engine.decide(timed.event, traits[timed.event.customer_id], timed.now_ms)
        return len(workload.events)

    return median_us(run, lambda: reference_engine(models), repeats)


def reference_agreement(workload: Workload) -> tuple[int, int] | None:
    """(decisions with the same stage and actions as the reference, decisions): a sanity check
    that both sides did the same work."""
    reference_engine = _reference_engine()
    if reference_engine is None:
        return None
    reference = reference_engine([journey.model for journey in workload.loaded])
    states = workload.fresh_states()
    same = 0
    for timed in workload.events:
        event = timed.event
        expected = reference.decide(event, workload.traits[event.customer_id], timed.now_ms)
        decision, states[event.customer_id] = decide(
            workload.ruleset, states[event.customer_id], event, timed.now_ms
        )
        offered = tuple(candidate.action for candidate in expected.offered)
        same += offered == decision.action_ids and expected.journeys[0].stage == decision.stage
    return same, len(workload.events)
