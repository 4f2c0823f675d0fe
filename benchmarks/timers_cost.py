"""Timers at scale (issue 15), in one run: what a pending timer costs in Redis, how fast the timer
loop fires with a million pending, and what the loop costs the Decide hot path.

- **Memory and rate**: `benchmarks.redis.timers`, (a) and (b) there.
- **The hot path**: two `journeyman serve` side by side (retail rules, each its own embedded
  Redis), one with the timer loop off (`JOURNEYMAN_TIMERS=0`: its commits still write each
  customer's due time, as a replica's do) and one with it on. `benchmarks.load.drive` drives
  Decide on them in turns: off, idle, busy, then busy, idle, off, `rounds` times over. Idle:
  nothing falls due (the driven shoppers' carts fall due half an hour after they fill them).
  Busy: just before the turn, shoppers whose abandoned carts fall due `busy_per_s` a second over
  the whole turn are written into that server's Redis, states first, as (a) writes them; its loop
  fires them while Decide runs, and before the next turn the stream is let drain. Each turn a
  closed loop at concurrency 64, then one call at a time; the timers fired in the turn and their
  lateness from the server's /metrics.

    python -m benchmarks.timers_cost [--quick] [--json] [--into-results]

`--into-results` (what `make bench` runs, after `benchmarks.run_all`) puts the figures, or the
error, into benchmarks/results/results.json as the run `timers` beside the others, and renders
RESULTS.md from that file (section 12).
"""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import redis

from benchmarks import added_run
from benchmarks.added_run import AddedRun
from benchmarks.load.drive import Plan as LoadPlan
from benchmarks.load.drive import Result
from benchmarks.load.drive import run as drive
from benchmarks.load.service import Running, journeyman
from benchmarks.ports import free_port
from benchmarks.redis import timers
from benchmarks.report.run_figures import TimerFigures, TimerLoadTurn
from engine.codec import encode_state
from engine.compile import Ruleset
from server.store.keys import Keyspace

RUN_NAME = "timers"

if TYPE_CHECKING:
    from benchmarks.report.sections import Runs
    from benchmarks.report.table import Section
VARIANTS = ("off", "idle", "busy")
LEAD_S = 0.5  # the stream's first timer falls due this long after its states are written
STATE_BUILD_S = 0.0003  # an allowance per state built (decide() over a session, ~0.1 ms)
DRAIN_S = 15.0  # at most this long for a busy turn's stream to be fired after the turn
# What the timer loop reports on /metrics, summed over labels.
TIMER_SAMPLES = {
    "journeyman_timers_fired_total": "fired",
    "journeyman_timer_lateness_seconds_sum": "lateness_s",
    "journeyman_timer_lateness_seconds_count": "lateness_n",
}


@dataclass(frozen=True)
class Plan:
    """The sizes of one run (`QUICK`: a check that it works, not figures to quote)."""

    redis: timers.Plan = field(default_factory=timers.Plan)
    concurrency: int = 64
    warmup_s: float = 0.5
    segment_s: float = 2.0  # each turn's closed loop; short turns, often alternated, so that
    rounds: int = 3  # the others' load on a shared machine weighs on every variant alike
    lockstep_s: float = 1.5
    # Timers falling due per second in a busy turn: a third of what a server decides at
    # concurrency 64 here, an eighth of what one loop fires alone.
    busy_per_s: float = 500.0


QUICK = Plan(timers.QUICK, warmup_s=0.3, segment_s=1.0, rounds=1, lockstep_s=0.5, busy_per_s=100.0)


# --- the two servers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """One of the two servers, with its /metrics port."""

    running: Running
    metrics_port: int

    def timer_metrics(self) -> dict[str, float]:
        """Timers fired so far, and their lateness (sum of seconds, count), from /metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as page:
            text = page.read().decode()
        counts = dict.fromkeys(TIMER_SAMPLES.values(), 0.0)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (name := TIMER_SAMPLES.get(sample.name)) is not None:
                    counts[name] += sample.value
        return counts


def make_due(server: Server, ruleset: Ruleset, per_s: float, seconds: float, turn: int) -> int:
    """Shoppers whose carts fall due `per_s` a second for `seconds`, the first shortly after
    this returns, written into `server`'s Redis; how many."""
    count = max(1, round(per_s * seconds))
    start_ms = timers.now_ms() + round((LEAD_S + count * STATE_BUILD_S) * 1000)
    due_ms = [start_ms + round(i * 1000 / per_s) for i in range(count)]
    ids = [f"busy-{turn}-{i:06d}" for i in range(count)]
    blobs = [encode_state(ruleset, s) for s in timers.cart_states(ruleset, due_ms)]
    keys = Keyspace(timers.SERVICE.key_prefix)
    client = redis.Redis.from_url(server.running.embedded_redis_url())
    try:
        # States first: a member claimed before its state is written is dropped as not due.
        timers.write_states(client, keys, ids, blobs, time.monotonic() + 30)
        timers.write_index(client, keys, timers.SERVICE.timer_shards, ids, due_ms)
    finally:
        client.close()
    time.sleep(max(0.0, start_ms / 1000 - time.time()))
    return count


def _drain(server: Server, fired_before: float, count: int) -> None:
    """Wait until the loop has fired the `count` timers made due after `fired_before`."""
    deadline = time.monotonic() + DRAIN_S
    while server.timer_metrics()["fired"] < fired_before + count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the busy stream's {count} timers not fired {DRAIN_S:g} s on")
        time.sleep(0.1)


def _orders(rounds: int) -> Iterator[str]:
    """off, idle, busy, then busy, idle, off, …: each variant as often early as late."""
    for number in range(rounds):
        yield from VARIANTS if number % 2 == 0 else reversed(VARIANTS)


def _drive(server: Server, plan: LoadPlan) -> Result:
    return asyncio.run(drive(server.running.address, plan, 1000, server_pid=server.running.pid))


def one_turn(
    server: Server, variant: str, number: int, plan: Plan, ruleset: Ruleset
) -> TimerLoadTurn:
    """A closed loop of Decide, then one call at a time, on `server`; busy: over a stream."""
    closed = LoadPlan("unary", plan.concurrency, None, 1, plan.warmup_s, plan.segment_s)
    lockstep = replace(closed, concurrency=1, warmup_s=plan.warmup_s / 2,
                       duration_s=plan.lockstep_s)  # fmt: skip
    # The drives' own start-up (channels, CPU marks) takes a little more: the stream outlasts.
    turn_s = plan.warmup_s * 1.5 + plan.segment_s + plan.lockstep_s + 1.0
    before = server.timer_metrics()
    scheduled = (
        make_due(server, ruleset, plan.busy_per_s, turn_s, number) if variant == "busy" else 0
    )
    started, at_start = time.perf_counter(), server.timer_metrics()
    decide, one_at_a_time = _drive(server, closed), _drive(server, lockstep)
    elapsed, after = time.perf_counter() - started, server.timer_metrics()
    if scheduled:
        _drain(server, before["fired"], scheduled)
    fired = after["fired"] - at_start["fired"]
    timed = after["lateness_n"] - at_start["lateness_n"]
    lateness = after["lateness_s"] - at_start["lateness_s"]
    return {
        "variant": variant,
        "decide": decide,
        "lockstep": one_at_a_time,
        "scheduled": scheduled,
        "fired": fired,
        "fired_per_s": round(fired / elapsed, 1),
        "lateness_s_mean": lateness / timed if timed else None,
    }


def measure_load(plan: Plan) -> list[TimerLoadTurn]:
    """Decide on the two servers, turn by turn (module docstring)."""
    ruleset = timers.retail_rules()
    with ExitStack() as stack:
        servers = {}
        for name, loop in (("off", "0"), ("on", "1")):
            port = free_port()
            running = stack.enter_context(journeyman(timers.RETAIL, metrics_port=port,
                                                     timers=loop))  # fmt: skip
            servers[name] = Server(running, port)
        return [
            one_turn(servers["off" if variant == "off" else "on"], variant, number, plan, ruleset)
            for number, variant in enumerate(_orders(plan.rounds))
        ]


# --- the benchmark -------------------------------------------------------------------------------


def measure(quick: bool = False, plan: Plan | None = None) -> TimerFigures:
    """Every figure of the module docstring."""
    plan = plan or (QUICK if quick else Plan())
    started = time.perf_counter()
    in_redis = timers.measure(plan=plan.redis)
    load = measure_load(plan)
    return {
        "plan": {
            "customers": plan.redis.customers,
            "due": plan.redis.due,
            "concurrency": plan.concurrency,
            "warmup_s": plan.warmup_s,
            "segment_s": plan.segment_s,
            "lockstep_s": plan.lockstep_s,
            "rounds": plan.rounds,
            "busy_per_s": plan.busy_per_s,
        },
        "memory": in_redis["memory"],
        "rate": in_redis["rate"],
        "rate_alone": in_redis["rate_alone"],
        "decide_us_per_timer": in_redis["decide_us_per_timer"],
        "load": load,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _section(runs: Runs) -> Section:
    from benchmarks.report.sections import timers_section

    return timers_section(runs)


RUN = AddedRun(RUN_NAME, "benchmarks.timers_cost", lambda quick: measure(quick=quick), 12, _section)


def main(argv: Sequence[str] | None = None) -> int:
    return added_run.main(RUN, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
