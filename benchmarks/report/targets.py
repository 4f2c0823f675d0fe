"""The targets of issue 5 (and issue 6's overload, issue 12's cost of goals), and the arithmetic
that judges a figure.

Pure. Every judged figure is measured in the same run as its ceiling; a target is "met", "not
met: <the measured reason>", or "not measured: <why>", never left blank. The figures are laid out
in `report.sections` and written by the one renderer, `report.markdown`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.report.run_figures import RedisWork

MET = "met"
NOT_MET = "not met"
NOT_MEASURED = "not measured"
NONE = "—"


@dataclass(frozen=True)
class Target:
    """A bound a figure (or its ratio to a ceiling) must keep: `op` is >=, <=, < or ==."""

    op: str
    bound: float
    shown: str

    def holds(self, value: float) -> bool:
        checks: dict[str, Callable[[float, float], bool]] = {
            ">=": lambda v, b: v >= b,
            "<=": lambda v, b: v <= b,
            "<": lambda v, b: v < b,
            "==": lambda v, b: v == b,
        }
        return checks[self.op](value, self.bound)


# Issue 5's targets, and issue 6's overload read as numbers (our reading: "goodput does not
# collapse" as at least 80 % of R; "latency of accepted calls stays bounded" as a p99 within twice
# the time the admission cap's worth of calls takes at R).
# Issue 16: the latency a website feels, one call at a time.
LONE_CALL_P50 = Target("<=", 1.5, "≤ 1.5× echo p50")
LONE_CALL_CPU = Target("<=", 2.0, "≤ 2× echo's")
UNARY_THROUGHPUT = Target(">=", 0.6, "≥ 0.6× echo")
UNARY_P99 = Target("<=", 2.0, "≤ 2× echo p99")
STREAM_THROUGHPUT = Target(">=", 0.5, "≥ 0.5× stream echo")
BATCH_EVENTS_PER_S = Target(">=", 20_000, "≥ 20,000 events/s")
ROUND_TRIPS_PER_EVENT = Target("<=", 2.0, "≤ 2 (one load, one commit)")
ROUND_TRIPS_BATCHED = Target("<", 2.0, "< 2 (batched)")
DECIDE_US = Target("<=", 20.0, "≤ 20 µs")
ZEN_RATIO = Target(">=", 50.0, "≥ 50× decide()")
BATCHED_DECIDE = Target(">=", 200_000, "≥ 200,000 events/s, one core")
REPLAY_RATE = Target(">=", 0.5, "≥ 0.5× stream echo")
ZERO = Target("==", 0, "0")
BYTES_PER_CUSTOMER = Target("<=", 2048, "≤ 2 KiB")
SERVER_RSS_MIB = Target("<=", 300, "≤ 300 MiB")
OVERLOAD_GOODPUT = Target(">=", 0.8, "≥ 0.8× R")
OVERLOAD_P99 = Target("<=", 2.0, "≤ 2× cap/R")
# Issue 12: attribution adds no Redis round trip to the hot path.
NO_EXTRA_ROUND_TRIP = Target("<=", 1.0, "≤ 1× without goals")
# Issue 12: adaptive arbitration's cumulative regret at N = 100,000 decisions.
REGRET_RATIO = Target("<=", 1 / 3, "≤ 1/3× static priorities")


# --- numbers -------------------------------------------------------------------------------------


def known(value: Any) -> bool:
    """A number that was measured (not None, not NaN, not infinite)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def ratio(measured: Any, ceiling: Any) -> float | None:
    """measured ÷ ceiling, or None when either is missing or the ceiling is 0."""
    if not known(measured) or not known(ceiling) or ceiling == 0:
        return None
    return float(measured) / float(ceiling)


def verdict(target: Target | None, value: Any, reason: str = "") -> str:
    """met / not met: reason / not measured: reason; "—" when there is no target."""
    if target is None:
        return NONE
    if not known(value):
        return f"{NOT_MEASURED}: {reason}" if reason else NOT_MEASURED
    if target.holds(value):
        return MET
    return f"{NOT_MET}: {reason}" if reason else NOT_MET


def per_event(before: Mapping[str, float], after: Mapping[str, float]) -> RedisWork:
    """Redis work per event between two /metrics scrapes: `events`, `pipelines` (round trips)
    and `commands` counters in each; None per event when no event was decided in between. With
    the `rounds`, `round_events` and `call_seconds` counters too, the events decided per round
    and the µs a call spent in the server's handler (None without them)."""
    events = after["events"] - before["events"]
    pipelines = after["pipelines"] - before["pipelines"]
    commands = after["commands"] - before["commands"]
    rounds = after.get("rounds", 0.0) - before.get("rounds", 0.0)
    in_rounds = after.get("round_events", 0.0) - before.get("round_events", 0.0)
    call_s = after.get("call_seconds", 0.0) - before.get("call_seconds", 0.0)
    return {
        "events": events,
        "pipelines": pipelines,
        "commands": commands,
        "pipelines_per_event": pipelines / events if events > 0 else None,
        "commands_per_event": commands / events if events > 0 else None,
        "commands_per_pipeline": commands / pipelines if pipelines > 0 else None,
        "events_per_round": in_rounds / rounds if rounds > 0 else None,
        "server_us_per_call": call_s / events * 1e6 if events > 0 else None,
    }
