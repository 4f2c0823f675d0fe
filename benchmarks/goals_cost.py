"""What goals and exposures cost (issue 12): the retail journey beside the very same journey with
its `goals:` removed, both measured in one run.

- **decide()**: both rulesets replay the same simulated shoppers' events in-process, their
  replays interleaved (with goals, without, with, without, …); the median µs per event of each.
- **Redis bytes per customer**: the same year of shoppers as `benchmarks.redis.memory` through a
  server of each ruleset; `MEMORY USAGE` of every customer's keys.
- **Decide and DecideBatch throughput, Redis work per event**: a server of each ruleset, side by
  side (each with its own embedded Redis), driven in short turns by `benchmarks.load.drive` in
  the order with, without, without, with, and again (so that a drift of the shared machine, or
  another process's burst, weighs on both alike). Round
  trips per event come from each service's /metrics (the hot path's loads and commits); commands
  per event from its Redis's own `INFO` (everything Redis did, the statistics flush every 50 ms
  included).

    python -m benchmarks.goals_cost [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from benchmarks.engine.workload import Workload, load_workload
from benchmarks.journey_text import without_block
from benchmarks.load.drive import Plan as LoadPlan
from benchmarks.load.drive import Result
from benchmarks.load.drive import run as drive
from benchmarks.load.service import RULES_DIR, Running, journeyman, scrape
from benchmarks.ports import free_port
from benchmarks.redis import memory
from benchmarks.report.run_figures import (
    GoalsCostFigures,
    GoalsEngineFigures,
    GoalsLoadFigures,
    GoalsRedisWork,
    YearFigures,
)
from benchmarks.report.targets import per_event
from engine.decide import decide

if TYPE_CHECKING:
    from engine.compile import Ruleset
    from engine.decision import Decision
    from engine.event import Event
    from engine.state import CustomerState

RETAIL = RULES_DIR / "retail.yaml"
VARIANTS = ("with_goals", "without_goals")


@dataclass(frozen=True)
class Plan:
    """The sizes of one run (`QUICK`: a check that it works, not figures to quote)."""

    engine_shoppers: int = 400  # about 20 events each, as the kernel benchmark's retail input
    engine_repeats: int = 7  # replays of each ruleset, interleaved
    memory_customers: int = 100
    warmup_s: float = 0.5
    segment_s: float = 2.0  # each turn of each load; short turns, often alternated, so that
    rounds: int = 4  # the others' load on a shared machine weighs on both variants alike
    lockstep_s: float = 1.5
    concurrency: int = 64
    batch: int = 200
    batch_in_flight: int = 4
    batch_customers: int = 20_000


QUICK = Plan(
    engine_shoppers=100, engine_repeats=3, memory_customers=30, warmup_s=0.5, segment_s=1.0,
    rounds=2, lockstep_s=0.5,
)  # fmt: skip


# --- the journey without its goals ---------------------------------------------------------------


def without_goals(text: str) -> str:
    """`text`, a journey file, with its top-level `goals:` block taken out (the comment lines
    right above it too); ValueError when it has none. Everything else is left as written."""
    return without_block(text, "goals")


# --- decide() ------------------------------------------------------------------------------------


def _counting(tally: dict[str, int]) -> Callable[..., tuple[Decision, CustomerState]]:
    """decide(), counting the exposures and conversions its decisions report."""

    def step(
        ruleset: Ruleset, state: CustomerState, event: Event, now_ms: int
    ) -> tuple[Decision, CustomerState]:
        decision, after = decide(ruleset, state, event, now_ms)
        tally["exposures"] += len(decision.exposures)
        tally["conversions"] += len(decision.conversions)
        return decision, after

    return step


def measure_engine(plan: Plan) -> GoalsEngineFigures:
    """decide() µs per event on the retail journey with and without goals, same events."""
    text = RETAIL.read_text(encoding="utf-8")
    per_shopper = 20
    workloads: dict[str, Workload] = {
        "with_goals": load_workload(str(RETAIL), text, plan.engine_shoppers, per_shopper),
        "without_goals": load_workload(
            "retail.yaml without goals", without_goals(text), plan.engine_shoppers, per_shopper
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(plan.engine_repeats):  # interleaved: a busy moment costs both alike
        for name in VARIANTS:
            samples[name] += workloads[name].per_event_us(decide, 1)
    tally = {"exposures": 0, "conversions": 0}
    with_goals = workloads["with_goals"]
    with_goals.replay(_counting(tally), with_goals.fresh_states())
    return {
        "events": len(with_goals.events),
        "shoppers": plan.engine_shoppers,
        "repeats": plan.engine_repeats,
        "with_goals_us": statistics.median(samples["with_goals"]),
        "without_goals_us": statistics.median(samples["without_goals"]),
        "with_goals_samples_us": [round(s, 3) for s in samples["with_goals"]],
        "without_goals_samples_us": [round(s, 3) for s in samples["without_goals"]],
        "exposures": tally["exposures"],
        "conversions": tally["conversions"],
    }


# --- the two servers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """One of the two servers, with what to read its Redis work from."""

    running: Running
    metrics_port: int

    def redis_commands(self) -> int:
        """Commands its Redis has processed since it started (`INFO stats`)."""
        client = redis.Redis.from_url(self.running.embedded_redis_url())
        try:
            return int(client.info("stats")["total_commands_processed"])
        finally:
            client.close()

    def work(self) -> dict[str, float]:
        """Decide calls, hot-path round trips and commands so far, and Redis's own count."""
        return {**scrape(self.metrics_port), "redis_commands": float(self.redis_commands())}


def redis_work(before: dict[str, float], after: dict[str, float]) -> GoalsRedisWork:
    """`targets.per_event` of two `Server.work` readings, with Redis's own commands per event."""
    work = per_event(before, after)
    events = after["events"] - before["events"]
    commands = after["redis_commands"] - before["redis_commands"]
    return {
        "events": work["events"],
        "pipelines": work["pipelines"],
        "commands": work["commands"],
        "pipelines_per_event": work["pipelines_per_event"],
        "commands_per_event": work["commands_per_event"],
        "commands_per_pipeline": work["commands_per_pipeline"],
        "redis_commands_per_event": commands / events if events > 0 else None,
    }


def _abba(rounds: int) -> Iterator[str]:
    """with, without, without, with, …: each variant as often first as second."""
    for number in range(rounds):
        yield from VARIANTS if number % 2 == 0 else reversed(VARIANTS)


# Customers of the runs one call at a time: few enough that the first pass (a thousand calls or
# so) decides each of them at least once.
LOCKSTEP_CUSTOMERS = 50


def _drive(server: Server, plan: LoadPlan, customers: int) -> Result:
    return asyncio.run(
        drive(server.running.address, plan, customers, server_pid=server.running.pid)
    )


def measure_load(servers: dict[str, Server], plan: Plan) -> dict[str, GoalsLoadFigures]:
    """Decide closed loops (with Redis work), DecideBatch closed loops and one call at a time,
    each server in turn, ABBA."""
    unary = LoadPlan("unary", plan.concurrency, None, 1, plan.warmup_s, plan.segment_s)
    batch = LoadPlan(
        "batch", plan.batch_in_flight, None, 1, plan.warmup_s, plan.segment_s, plan.batch
    )
    lockstep = replace(unary, concurrency=1, warmup_s=plan.warmup_s / 2, duration_s=plan.lockstep_s)
    figures: dict[str, GoalsLoadFigures] = {
        name: {"decide": [], "decide_redis": [], "batch": [], "lockstep_redis": []}
        for name in VARIANTS
    }
    for name in _abba(plan.rounds):
        server, into = servers[name], figures[name]
        before = server.work()
        into["decide"].append(_drive(server, unary, 1000))
        into["decide_redis"].append(redis_work(before, server.work()))
    for name in _abba(plan.rounds):
        figures[name]["batch"].append(_drive(servers[name], batch, plan.batch_customers))
    # One call at a time over few customers, each decided once first: in the state cache, an
    # event costs its commit's round trip alone, in both variants alike (the DecideBatch turns
    # pushed the customers of the turns before out of the cache, and a customer not in it costs
    # a load more: how many depended on the turns' speed, not on the goals).
    for name in _abba(1):
        server = servers[name]
        _drive(server, replace(lockstep, warmup_s=0.0), LOCKSTEP_CUSTOMERS)
        before = server.work()
        _drive(server, replace(lockstep, warmup_s=0.0), LOCKSTEP_CUSTOMERS)
        figures[name]["lockstep_redis"].append(redis_work(before, server.work()))
    return figures


def measure_memory(servers: dict[str, Server], plan: Plan) -> dict[str, YearFigures]:
    """The same year of shoppers through each server; their keys' bytes."""
    year = memory.Plan(customers=plan.memory_customers)
    return {
        name: asyncio.run(memory.year_in_redis(servers[name].running, year)) for name in VARIANTS
    }


def measure(quick: bool = False, plan: Plan | None = None) -> GoalsCostFigures:
    """Every figure of the module docstring, with and without goals."""
    plan = plan or (QUICK if quick else Plan())
    started = time.perf_counter()
    engine = measure_engine(plan)
    with tempfile.TemporaryDirectory(prefix="journeyman-no-goals-") as folder, ExitStack() as stack:
        no_goals = Path(folder) / "retail.yaml"
        no_goals.write_text(without_goals(RETAIL.read_text(encoding="utf-8")), encoding="utf-8")
        servers = {}
        for name, rules in zip(VARIANTS, (RETAIL, no_goals), strict=True):
            port = free_port()
            servers[name] = Server(stack.enter_context(journeyman(rules, metrics_port=port)), port)
        year = measure_memory(servers, plan)
        load = measure_load(servers, plan)
    return {
        "plan": {
            "concurrency": plan.concurrency,
            "warmup_s": plan.warmup_s,
            "segment_s": plan.segment_s,
            "rounds": plan.rounds,
            "lockstep_s": plan.lockstep_s,
            "batch": plan.batch,
            "batch_in_flight": plan.batch_in_flight,
            "memory_customers": plan.memory_customers,
        },
        "engine": engine,
        "memory": year,
        "load": load,
        "seconds": round(time.perf_counter() - started, 1),
    }


# --- the command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.report.section_cli import section_main
    from benchmarks.report.sections import goals

    return section_main(
        argv, prog="python -m benchmarks.goals_cost", doc=__doc__, run="goals",
        measure=lambda quick: measure(quick=quick), section=goals,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
