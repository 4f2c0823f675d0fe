"""The plain-Python reference evaluator (`tests/reference.py`) on a workload: its speed, and
whether it answers as `decide` does."""

from __future__ import annotations

from typing import Any

from benchmarks.engine.timing import median_us
from benchmarks.engine.workload import Workload
from engine.decide import decide


def _reference_engine() -> Any:
    """`tests.reference.ReferenceEngine`, or None where the tests are not importable."""
    try:
        from tests.reference import ReferenceEngine
    except ImportError:
        return None
    return ReferenceEngine


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
