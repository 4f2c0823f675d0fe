"""Goodput under overload: does the service keep serving its capacity when offered more?

First the sustainable rate R: a closed loop of Decide at concurrency 64 (`benchmarks.load.drive`).
Then open loops at 1×, 2×, 4× and 8× R, each on its own schedule whatever the answers. The
service admits at most `max_concurrent_calls` (default 512) calls at once
(`server/api/admission.py`) and answers the rest RESOURCE_EXHAUSTED at once; the question is
whether the OK answers per second stay near R and the latency of the accepted calls stays
bounded (about the admitted calls over R).
Calls can also be shed before the gate: gRPC core holds the calls the server's event loop has not
picked up yet and cancels them (CANCELLED) past its pending-request limit, so both are counted.

Latency is counted from each call's scheduled start, so a client that falls behind its schedule
shows up as latency too: `schedule_lag_s` says by how much the run outlasted its schedule (the
driver shares the machine's cores with the server), and `client_overloaded` counts calls the
driver skipped at its own in-flight cap (`drive.MAX_IN_FLIGHT_OPEN`).

    python -m benchmarks.load.overload [--quick] [--json] [--max-concurrent-calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.load.drive import Plan as LoadPlan
from benchmarks.load.drive import Result, run
from benchmarks.load.service import journeyman
from benchmarks.report.run_figures import OverloadFigures, OverloadRun
from server.core.config import Settings

MULTIPLES = (1.0, 2.0, 4.0, 8.0)
CONCURRENCY = 64
SHED_CODE = "RESOURCE_EXHAUSTED"
# gRPC core's own shedding: calls the asyncio server has not yet picked up wait in core, and past
# `grpc.server.max_pending_requests` (1000; all of them past the hard limit, 3000) core cancels
# them. The CallGate never sees those calls.
CORE_SHED_CODE = "CANCELLED"
CLIENT_CODE = "CLIENT_OVERLOADED"  # drive's own: not sent, the driver's in-flight cap was reached
SETTLE_S = 1.0  # between runs, so one run's backlog does not start the next
LOOP_PROBE_S = 0.01
DRIVER_LAG_LIMIT_MS = 50.0  # the driver's loop later than this: it did not keep its schedule
WINDOW_HELD = 0.9  # share of the planned window drive must have measured for rates to hold


@dataclass(frozen=True)
class Plan:
    """How long to find R, and how long each open-loop run lasts."""

    closed_s: float = 8.0
    open_s: float = 5.0
    warmup_s: float = 1.0
    multiples: tuple[float, ...] = MULTIPLES


QUICK = Plan(closed_s=3.0, open_s=2.0, warmup_s=0.5)


def goodput(result: Result) -> float:
    """OK answers per second of the measured window."""
    failed = sum(result["errors"].values())
    return (result["calls"] - failed) / result["duration_s"] if result["duration_s"] else 0.0


class LoopLag:
    """How late the driver's event loop runs: a probe that sleeps `LOOP_PROBE_S` again and again
    and keeps its worst oversleep. When the driver falls behind its schedule it starts the late
    calls back to back without yielding, so this grows, and so does every latency it reports."""

    def __init__(self) -> None:
        self.worst_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(LOOP_PROBE_S)
            late_ms = (time.perf_counter() - asked - LOOP_PROBE_S) * 1000
            self.worst_ms = max(self.worst_ms, late_ms)

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._probe())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def summarise_run(
    result: Result, multiple: float, *, planned_s: float, loop_lag_ms: float
) -> OverloadRun:
    """One open-loop run's figures. Latencies are drive's, which are of OK answers only.

    A driver that fell far behind its schedule also misplaces its measured window (it marks the
    window's start only once it has caught up): then goodput and CPU per call are left out
    (None) and `driver_kept_schedule` is false; the counts still hold."""
    window_held = result["duration_s"] >= WINDOW_HELD * planned_s
    known = (SHED_CODE, CORE_SHED_CODE, CLIENT_CODE)
    other = {k: v for k, v in result["errors"].items() if k not in known}
    server_cpu = result["server_cpu_us_per_call"]
    return {
        "multiple": multiple,
        "offered_per_s": round(result["rate_target"] or 0.0, 1),
        "goodput_per_s": round(goodput(result), 1) if window_held else None,
        "ok": result["calls"] - sum(result["errors"].values()),
        "resource_exhausted": result["errors"].get(SHED_CODE, 0),
        "cancelled": result["errors"].get(CORE_SHED_CODE, 0),
        "client_overloaded": result["errors"].get(CLIENT_CODE, 0),
        "other_errors": other,
        "ok_p50_us": round(result["latency_us"]["p50"]),
        "ok_p99_us": round(result["latency_us"]["p99"]),
        "driver_loop_lag_ms_max": round(loop_lag_ms, 1),
        "driver_kept_schedule": window_held and loop_lag_ms <= DRIVER_LAG_LIMIT_MS,
        "client_cpu_us_per_call": (
            round(result["client_cpu_us_per_call"], 1) if window_held else None
        ),
        "server_cpu_us_per_call": (
            round(server_cpu, 1) if window_held and server_cpu is not None else None
        ),
    }


async def _overload(address: str, pid: int, plan: Plan, cap: int) -> OverloadFigures:
    closed = await run(
        address, LoadPlan("unary", CONCURRENCY, None, 1, plan.warmup_s, plan.closed_s),
        server_pid=pid,
    )  # fmt: skip
    sustainable = goodput(closed)
    runs: list[OverloadRun] = []
    for multiple in plan.multiples:
        await asyncio.sleep(SETTLE_S)
        load = LoadPlan("unary", CONCURRENCY, sustainable * multiple, 1, plan.warmup_s, plan.open_s)
        lag = LoopLag()  # over the measured window: warm-up calls and connecting count for nothing
        result = await run(address, load, server_pid=pid, watching=lag)
        runs.append(
            summarise_run(result, multiple, planned_s=plan.open_s, loop_lag_ms=lag.worst_ms)
        )
    return {
        "max_concurrent_calls": cap,
        "sustainable_per_s": round(sustainable, 1),
        "closed_p50_us": round(closed["latency_us"]["p50"]),
        "closed_p99_us": round(closed["latency_us"]["p99"]),
        "closed_errors": closed["errors"],
        "runs": runs,
    }


def measure(
    quick: bool = False, plan: Plan | None = None, max_concurrent_calls: int | None = None
) -> OverloadFigures:
    """R from a closed loop, then the open-loop runs, against one fresh service."""
    plan = plan or (QUICK if quick else Plan())
    cap = max_concurrent_calls or Settings().max_concurrent_calls
    with journeyman(max_concurrent_calls=str(cap)) as running:
        return asyncio.run(_overload(running.address, running.pid, plan, cap))


def format_table(figures: OverloadFigures) -> str:
    """R, then one row per open-loop run."""
    lines = [
        f"sustainable R  {figures['sustainable_per_s']:,.0f} calls/s (closed loop, concurrency"
        f" {CONCURRENCY}; p50 {figures['closed_p50_us']:,} µs, p99 {figures['closed_p99_us']:,}"
        f" µs); admission cap {figures['max_concurrent_calls']} calls",
        "",
        f"{'offered':>12} {'goodput/s':>10} {'exhausted':>9} {'cancelled':>9} {'other':>6}"
        f" {'OK p50 µs':>10} {'OK p99 µs':>10} {'loop lag ms':>11}",
    ]
    for r in figures["runs"]:
        other = sum(r["other_errors"].values()) + r["client_overloaded"]
        good = "—" if r["goodput_per_s"] is None else f"{r['goodput_per_s']:,.0f}"
        mark = "" if r["driver_kept_schedule"] else "  * driver behind schedule"
        lag_ms = r["driver_loop_lag_ms_max"]
        lines.append(
            f"{r['multiple']:>3g}× {r['offered_per_s']:>7,.0f} {good:>10}"
            f" {r['resource_exhausted']:>9,} {r['cancelled']:>9,} {other:>6,}"
            f" {r['ok_p50_us']:>10,} {r['ok_p99_us']:>10,} {lag_ms:>11,.0f}{mark}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks.load.overload`: one run, printed as a table or JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load.overload", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--max-concurrent-calls", type=int, help="the server's admission cap")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    figures = measure(quick=args.quick, max_concurrent_calls=args.max_concurrent_calls)
    print(json.dumps(figures) if args.json else format_table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
