"""RESULTS.md's sections as data: each run's figures laid out as a table of `Figure`s.

A section names its figures, their ceilings and targets, says how they were measured and what was
measured when a target is missed; `report.markdown` writes them. Pure: the figures come in as
`run_figures` TypedDicts read back from results.json, where a run may have failed (its figures
absent) or, written by an older version, lack a key: `Reader` (`report.runs`) gives None for
those, and the figure says why it is not measured.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from benchmarks.report import targets as t
from benchmarks.report.markdown import shown
from benchmarks.report.parts import decision_parts, other_threads_us
from benchmarks.report.run_figures import (
    ConditionsCostFigures,
    GoalsCostFigures,
    OverloadFigures,
    TimerFigures,
    TimerLoadTurn,
    ZenFigures,
)
from benchmarks.report.runs import REDIS_PIPELINED, Reader, per_event_cpu, redis_py_figure
from benchmarks.report.runs import Runs as Runs  # where every section's caller imports it from
from benchmarks.report.table import Figure, Section, Table
from benchmarks.report.targets import known, ratio
from server.store.record import FINGERPRINT_BYTES

if TYPE_CHECKING:
    from benchmarks.load.drive import Result


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and known(value) else None


def _setting(plan: Mapping[str, object] | None, key: str) -> str:
    """A run's plan setting for the "how" line; "?" where it is not there."""
    value = plan.get(key) if plan is not None else None
    return shown(value) if _number(value) is not None else "?"


def _cpu_split(by_process: Mapping[str, float] | None, scale: float = 1.0) -> str:
    """ "journeyman 900, redis-server 80" from drive's server CPU per call by process name."""
    if not by_process:
        return "by process not measured"
    return ", ".join(f"{name} {shown(us * scale, 'µs')}" for name, us in sorted(by_process.items()))


def loop_busy(result: Result) -> float | None:
    """The share of one core the server's event-loop threads were busy in a run: their CPU per
    call times the calls per second (None where not measured)."""
    loop = result.get("server_loop_cpu_us_per_call")
    return None if loop is None else loop * result["rate"] / 1e6


def _failures(*results: Result | None) -> float | None:
    """Failed calls plus degraded answers over drive results; None when none was measured."""
    measured = [r for r in results if r is not None]
    if not measured:
        return None
    return float(sum(sum(r["errors"].values()) + r["degraded"] for r in measured))


def _failure_text(*results: Result | None) -> str:
    measured = [r for r in results if r is not None]
    return "; ".join(f"errors {r['errors']}, degraded {r['degraded']}" for r in measured)


def _each_turn(
    result: Result | None, ceiling: Result | None, figure: Literal["events_per_s", "p99_us"]
) -> str:
    """The ratio of `figure` in each turn of runs taken in turns with their ceiling (how far
    the machine moved it), or nothing: one run each, or results written before."""
    ours = result.get("turns") if result is not None else None
    theirs = ceiling.get("turns") if ceiling is not None else None
    if not ours or not theirs or len(ours) != len(theirs) or len(ours) < 2:
        return ""
    each = (ratio(mine[figure], its[figure]) for mine, its in zip(ours, theirs, strict=True))
    return "; each turn " + ", ".join(shown(r, "×") for r in each)


def transport(runs: Runs) -> Section:
    get, missing = Reader(runs.figures.get("transport")), runs.missing("transport")
    echo_rate = get(lambda f: f["echo_unary"]["rate"])
    echo_cpu = get(lambda f: f["echo_unary"]["server_cpu_us_per_call"])
    cpu = get(lambda f: f["decide_unary"]["server_cpu_us_per_call"])
    split = _cpu_split(get(lambda f: f["decide_unary"]["server_cpu_by_process_us_per_call"]))
    client = get(lambda f: f["decide_unary"]["client_cpu_us_per_call"])
    why = (
        f"Decide takes {shown(cpu, 'µs')} of server CPU per call ({split}), the echo "
        f"{shown(echo_cpu, 'µs')}; the driver {shown(client, 'µs')} per call, on the same 2 cores"
    ) + _each_turn(get(lambda f: f["decide_unary"]), get(lambda f: f["echo_unary"]), "events_per_s")
    p50s = (
        f"p50 {shown(get(lambda f: f['decide_open']['latency_us']['p50']), 'µs')} against the "
        f"echo's {shown(get(lambda f: f['echo_open']['latency_us']['p50']), 'µs')}"
    )
    half_loop = get(lambda f: f["decide_open"]["server_loop_cpu_us_per_call"])
    closed_loop = get(lambda f: f["decide_unary"]["server_loop_cpu_us_per_call"])
    half_busy = get(lambda f: loop_busy(f["decide_open"]))
    if half_loop is not None and closed_loop is not None and half_busy is not None:
        # Why half the closed loop's rate is more than half its load: fewer calls share a round.
        p50s += (
            f"; at that rate a call took the event loop's thread {shown(half_loop, 'µs')} "
            f"({shown(closed_loop, 'µs')} in the closed loop, where more calls share a round): "
            f"busy {half_busy:.0%} of the run"
        )
    p50s += _each_turn(get(lambda f: f["decide_open"]), get(lambda f: f["echo_open"]), "p99_us")
    workers_cpu = get(lambda f: f["decide_unary_workers2"]["server_cpu_us_per_call"])
    decide_runs = (
        get(lambda f: f["decide_unary"]),
        get(lambda f: f["decide_open"]),
        get(lambda f: f["decide_unary_workers2"]),
    )
    half_rate = shown(get(lambda f: f["half_rate_per_s"]), "calls/s")
    lone_p99s = (
        f"p99 {shown(get(lambda f: f['decide_lockstep']['latency_us']['p99']), 'µs')} against "
        f"the echo's {shown(get(lambda f: f['echo_lockstep']['latency_us']['p99']), 'µs')}"
    )
    spin_us = get(lambda f: f["plan"].get("spin_us"))
    spinning = f"`JOURNEYMAN_SPIN_US={spin_us}`" if spin_us else "`JOURNEYMAN_SPIN_US`"
    spun_p50 = get(lambda f: f["spinning_lockstep"]["latency_us"]["p50"])
    figures = [
        Figure("Decide p50, one call at a time",
               get(lambda f: f["decide_lockstep"]["latency_us"]["p50"]), "µs",
               get(lambda f: f["echo_lockstep"]["latency_us"]["p50"]), "echo, one at a time",
               t.LONE_CALL_P50, on_ratio=True, note=lone_p99s, missing=missing),
        Figure("server CPU per call, one call at a time",
               get(lambda f: f["decide_lockstep"]["server_cpu_us_per_call"]), "µs",
               get(lambda f: f["echo_lockstep"]["server_cpu_us_per_call"]), "echo, one at a time",
               t.LONE_CALL_CPU, on_ratio=True, missing=missing),
        Figure("Decide, concurrency 64, closed loop", get(lambda f: f["decide_unary"]["rate"]),
               "calls/s", echo_rate, "echo", t.UNARY_THROUGHPUT, on_ratio=True, note=why,
               missing=missing),
        Figure("Decide, the same with `--workers 2`",
               get(lambda f: f["decide_unary_workers2"]["rate"]), "calls/s",
               get(lambda f: f.get("echo_unary_beside_workers2", f["echo_unary"])["rate"]), "echo",
               t.UNARY_THROUGHPUT, on_ratio=True, missing=missing,
               note=f"{shown(workers_cpu, 'µs')} of server CPU per call, both workers"
                    + _each_turn(get(lambda f: f["decide_unary_workers2"]),
                                 get(lambda f: f.get("echo_unary_beside_workers2")),
                                 "events_per_s")),
        Figure(f"Decide p99 at half its closed-loop rate ({half_rate}, open loop)",
               get(lambda f: f["decide_open"]["latency_us"]["p99"]), "µs",
               get(lambda f: f["echo_open"]["latency_us"]["p99"]), "echo, same rate",
               t.UNARY_P99, on_ratio=True, note=p50s, missing=missing),
        Figure("bare Decide p50, one call at a time (the parts and one commit, nothing else)",
               get(lambda f: f["bare_lockstep"]["latency_us"]["p50"]), "µs",
               get(lambda f: f["echo_lockstep"]["latency_us"]["p50"]), "echo, one at a time"),
        Figure("bare Decide, server CPU per call, one call at a time",
               get(lambda f: f["bare_lockstep"]["server_cpu_us_per_call"]), "µs",
               get(lambda f: f["echo_lockstep"]["server_cpu_us_per_call"]), "echo, one at a time"),
        Figure("Decide p50, one call at a time, against the bare Decide",
               get(lambda f: f["decide_lockstep"]["latency_us"]["p50"]), "µs",
               get(lambda f: f["bare_lockstep"]["latency_us"]["p50"]), "bare, one at a time"),
        Figure("server CPU per call, one call at a time, against the bare Decide",
               get(lambda f: f["decide_lockstep"]["server_cpu_us_per_call"]), "µs",
               get(lambda f: f["bare_lockstep"]["server_cpu_us_per_call"]),
               "bare, one at a time"),
        Figure(f"Decide p50, one call at a time, its event loop spinning ({spinning})",
               spun_p50, "µs", get(lambda f: f["decide_lockstep"]["latency_us"]["p50"]),
               "Decide, one at a time"),
        Figure("the same against the echo", spun_p50, "µs",
               get(lambda f: f["echo_lockstep"]["latency_us"]["p50"]), "echo, one at a time"),
        Figure(f"server CPU per call, one call at a time, its event loop spinning ({spinning})",
               get(lambda f: f["spinning_lockstep"]["server_cpu_us_per_call"]), "µs",
               get(lambda f: f["decide_lockstep"]["server_cpu_us_per_call"]),
               "Decide, one at a time"),
        Figure("server CPU per call, concurrency 64", cpu, "µs", echo_cpu, "echo"),
        Figure("the event loop's thread, CPU per call, one call at a time",
               get(lambda f: f["decide_lockstep"]["server_loop_cpu_us_per_call"]), "µs",
               get(lambda f: f["echo_lockstep"]["server_loop_cpu_us_per_call"]),
               "echo, one at a time"),
        Figure("the bare Decide's event loop thread, CPU per call, one call at a time",
               get(lambda f: f["bare_lockstep"]["server_loop_cpu_us_per_call"]), "µs",
               get(lambda f: f["echo_lockstep"]["server_loop_cpu_us_per_call"]),
               "echo, one at a time"),
        Figure("gRPC's own threads, CPU per call, one call at a time",
               get(lambda f: other_threads_us(f["decide_lockstep"])), "µs",
               get(lambda f: other_threads_us(f["echo_lockstep"])), "echo, one at a time"),
        Figure("the event loop's thread, CPU per call, concurrency 64",
               get(lambda f: f["decide_unary"]["server_loop_cpu_us_per_call"]), "µs",
               get(lambda f: f["echo_unary"]["server_loop_cpu_us_per_call"]), "echo"),
        Figure("the event loop's thread busy, concurrency 64 (share of one core)",
               get(lambda f: loop_busy(f["decide_unary"])), "",
               get(lambda f: loop_busy(f["echo_unary"])), "echo"),
        Figure("the event loop's thread, CPU per call, at half the closed-loop rate (open loop)",
               half_loop, "µs", closed_loop, "Decide, concurrency 64"),
        Figure("the event loop's thread busy at half the closed-loop rate (share of one core)",
               half_busy, "", get(lambda f: loop_busy(f["echo_open"])), "echo, same rate"),
        Figure("p99, concurrency 64, closed loop",
               get(lambda f: f["decide_unary"]["latency_us"]["p99"]), "µs",
               get(lambda f: f["echo_unary"]["latency_us"]["p99"]), "echo"),
        Figure("failed calls + degraded answers, Decide runs", _failures(*decide_runs),
               target=t.ZERO, note=_failure_text(*decide_runs), missing=missing),
    ]  # fmt: skip
    plan = get(lambda f: f["plan"])
    beside_workers = (
        ", and its ceiling is the echo's closed loop taken in turns with it"
        if get(lambda f: f.get("echo_unary_beside_workers2")) is not None
        else ""
    )
    how = (
        "`benchmarks.load.drive` against `benchmarks.load.echo` (a canned decision: no Redis, no "
        "engine) and `journeyman serve` (retail rules, embedded Redis), both on uvloop, "
        f"{_turns_how(plan)}; closed loops of {_setting(plan, 'concurrency')} workers, "
        f"{_setting(plan, 'warmup_s')} s warm-up then "
        f"{_setting(plan, 'closed_s')} s measured; open loops at half Decide's "
        f"closed-loop rate for {_setting(plan, 'open_s')} s, latency from each call's "
        "scheduled start; CPU from /proc of each server's process tree, and apart of its event "
        "loop's thread (each server process's main thread, which runs all of its Python; gRPC's "
        f"C core runs on threads of its own). {_lockstep_how(plan)} The echo runs as one "
        "process in both rows. For `--workers 2` each of the driver's channels has a connection "
        "of its own (gRPC otherwise shares one among the channels to one address, and a "
        f"connection reaches one worker){beside_workers}; the other rows share one, as the "
        "echo's do. The bare "
        "Decide (`benchmarks.load.bare`, its own embedded Redis, whose CPU is counted as "
        "journeyman's is) does for each call only what the service does for a lone event of a "
        "customer in its state cache: validation, the engine, the answer and its ring entry, the "
        "state's and the record's encoding, and the commit as one EVALSHA on a kept connection (a "
        "customer's first event loads its state first, as in Decide); no batching, timeouts, "
        "retries, breaker, admission, metrics or statistics: the least a stored decision costs "
        "through gRPC in Python, the same rules and driver."
    )
    return Section("Transport: Decide against the echo ceiling, unary", how, figures,
                   errors=runs.errors_of("transport"))  # fmt: skip


def _turns_how(plan: Mapping[str, object] | None) -> str:
    """How a server's loops and its ceiling's were taken: in turns, or one after the other in
    results written before."""
    if plan is None or plan.get("turns") is None:
        return "one after the other"
    return (
        f"in turns: {_setting(plan, 'turns')} rounds of one run each, the measured time split "
        f"among them, the first after the warm-up and the others after "
        f"{_setting(plan, 'turns_rewarm_s')} s (a busy moment of the machine weighs on each "
        "alike), each server's runs pooled (each turn's ratio follows the judged one's reason)"
    )


def _lockstep_how(plan: Mapping[str, object] | None) -> str:
    """How the runs one call at a time were taken: in turns (LOCKSTEP_ROUNDS), or one after
    the other in results written before."""
    if plan is None or plan.get("lockstep_rounds") is None:
        return f"One call at a time: {_setting(plan, 'lockstep_s')} s each, one after the other."
    servers = (
        "the echo, Decide and the bare Decide take turns, all three up"
        if plan.get("spin_us") is None
        else "the echo, Decide, the bare Decide and Decide with its event loop spinning after "
        "each call (`JOURNEYMAN_SPIN_US`, longer than the driver's turnaround) take turns, all "
        "four up"
    )
    return (
        f"One call at a time, {servers}: "
        f"{_setting(plan, 'lockstep_rounds')} rounds of one run each, "
        f"{_setting(plan, 'lockstep_s')} s in all per server (a busy moment of the machine "
        "weighs on each alike); each server's runs pooled: CPU per call over all of its calls, "
        "each latency percentile the median of its runs'. The echo and journeyman stay up "
        "through the closed and open loops too, each idle while the other is driven."
    )


def streaming(runs: Runs) -> Section:
    get, missing = Reader(runs.figures.get("streaming")), runs.missing("streaming")
    plan = get(lambda f: f["plan"])
    cpu = get(lambda f: f["decide_stream"]["server_cpu_us_per_call"])
    echo_cpu = get(lambda f: f["echo_stream"]["server_cpu_us_per_call"])
    shape = f"{_setting(plan, 'streams')} streams × window {_setting(plan, 'window')}"
    split = _cpu_split(get(lambda f: f["decide_stream"]["server_cpu_by_process_us_per_call"]))
    why = (
        f"DecideStream takes {shown(cpu, 'µs')} of server CPU per event ({split}), the echo "
        f"{shown(echo_cpu, 'µs')}"
    ) + _each_turn(
        get(lambda f: f["decide_stream"]), get(lambda f: f["echo_stream"]), "events_per_s"
    )
    decide = get(lambda f: f["decide_stream"])
    figures = [
        Figure(f"DecideStream, {shape}", get(lambda f: f["decide_stream"]["rate"]), "events/s",
               get(lambda f: f["echo_stream"]["rate"]), "stream echo", t.STREAM_THROUGHPUT,
               on_ratio=True, note=why, missing=missing),
        Figure("server CPU per event", cpu, "µs", echo_cpu, "stream echo"),
        Figure("p99 per event", get(lambda f: f["decide_stream"]["latency_us"]["p99"]), "µs",
               get(lambda f: f["echo_stream"]["latency_us"]["p99"]), "stream echo"),
        Figure("failed + degraded events", _failures(decide), target=t.ZERO,
               note=_failure_text(decide), missing=missing),
    ]  # fmt: skip
    how = (
        f"`benchmarks.load.drive --mode stream`, {shape} events in flight, closed loop, against "
        f"the echo and `journeyman serve`, {_turns_how(plan)}; {_setting(plan, 'warmup_s')} s "
        f"warm-up, {_setting(plan, 'closed_s')} s measured."
    )
    return Section("Streaming: DecideStream against the stream echo", how, figures,
                   errors=runs.errors_of("streaming"))  # fmt: skip


def batch(runs: Runs) -> Section:
    get, missing = Reader(runs.figures.get("batch")), runs.missing("batch")
    plan, result = get(lambda f: f["plan"]), get(lambda f: f["decide_batch"])
    server = per_event_cpu(result, result and result["server_cpu_us_per_call"])
    client = per_event_cpu(result, result and result["client_cpu_us_per_call"])
    by_process = result and result["server_cpu_by_process_us_per_call"]
    scale = ratio(result and result["calls"], result and result["events"]) or 0.0
    both = (server or 0.0) + (client or 0.0)
    why = (
        f"{shown(server, 'µs')} of server CPU per event ({_cpu_split(by_process, scale)}) and "
        f"{shown(client, 'µs')} of the driver's: 2 cores give at most about "
        f"{shown(2e6 / both if both else None, 'events/s')}"
    )
    errors = sum(result["errors"].values()) if result is not None else None
    size, in_flight = _setting(plan, "batch"), _setting(plan, "in_flight")
    figures = [
        Figure(f"DecideBatch, {size} events a call, {in_flight} calls in flight",
               result and result["events_per_s"], "events/s",
               redis_py_figure(runs, REDIS_PIPELINED, lambda r: r["events_per_s"]),
               "Redis alone, 64 events a pipeline", t.BATCH_EVENTS_PER_S, note=why,
               missing=missing),
        Figure("server CPU per event", server, "µs",
               Reader(runs.figures.get("engine"))(lambda f: f["zen"]["decide_us_per_event"]),
               "decide() alone"),
        Figure("degraded events (not committed)", result and result["degraded"], target=t.ZERO,
               note="Redis did not take the commits in time", missing=missing),
        Figure("failed calls and items", errors, target=t.ZERO,
               note=str(result and result["errors"]), missing=missing),
    ]  # fmt: skip
    how = (
        f"`benchmarks.load.drive --mode batch` against `journeyman serve` (retail rules, embedded "
        f"Redis): {in_flight} workers each sending DecideBatch calls of {size} events back to "
        f"back, over {_setting(plan, 'customers')} customers; "
        f"{_setting(plan, 'warmup_s')} s warm-up, {_setting(plan, 'closed_s')}"
        " s measured; an event counts as committed when its decision is not degraded."
    )
    return Section("DecideBatch: events per second, committed", how, figures,
                   errors=runs.errors_of("batch"))  # fmt: skip


def redis_work(runs: Runs) -> Section:
    get, missing = Reader(runs.figures.get("transport")), runs.missing("transport")
    unary, lockstep = get(lambda f: f["redis_unary"]), get(lambda f: f["redis_lockstep"])
    per_trip = f"{shown(unary and unary['commands_per_pipeline'])} commands per round trip"
    redis_cpu = get(
        lambda f: f["decide_unary"]["server_cpu_by_process_us_per_call"]["redis-server"]
    )
    redis_alone = Reader(runs.figures.get("redis"))
    figures = [
        Figure("round trips per event, concurrency 64", unary and unary["pipelines_per_event"],
               target=t.ROUND_TRIPS_BATCHED, note=per_trip, missing=missing),
        Figure("round trips per event, one call at a time",
               lockstep and lockstep["pipelines_per_event"], target=t.ROUND_TRIPS_PER_EVENT,
               note=f"{shown(lockstep and lockstep['commands_per_event'])} commands per event",
               missing=missing),
        Figure("commands per event, concurrency 64", unary and unary["commands_per_event"]),
        Figure("commands per round trip, concurrency 64", unary and unary["commands_per_pipeline"]),
        Figure("Redis CPU per event, Decide at concurrency 64", redis_cpu, "µs",
               redis_py_figure(runs, "unix Store", lambda r: r["redis_cpu_us_per_event"]),
               "Redis alone, Store ×64"),
        Figure("Decide at concurrency 64 against Redis alone (the service's Store, 64 in flight)",
               get(lambda f: f["decide_unary"]["rate"]), "events/s",
               redis_py_figure(runs, "unix Store", lambda r: r["events_per_s"]), "Redis alone"),
        Figure("Redis alone, 64 events a pipeline (redis-py, unix socket)",
               redis_py_figure(runs, REDIS_PIPELINED, lambda r: r["events_per_s"]), "events/s"),
        Figure("Redis alone, redis-benchmark ×16 pipelined, one of each command (unix socket)",
               _number(redis_alone(lambda f: f["redis_benchmark"]["unix P16 events_per_s"])),
               "events/s"),
    ]  # fmt: skip
    version = redis_alone(lambda f: f["redis_version"]) or "?"
    how = (
        "Round trips and commands from the service's /metrics (`journeyman_redis_pipelines_total`,"
        " `journeyman_redis_commands_total`) read before and after the Decide runs of section 1, "
        "divided by the Decide calls in between (`journeyman_call_seconds_count`); the journey "
        "statistics' own pipeline (every 50 ms, off the hot path) is not in those counters. Redis "
        f"alone: `benchmarks.redis.ceiling` (Redis {version}, its own redis-server configured like "
        "the embedded one, the service's commands: `HMGET` of the customer's state hash, then the "
        "commit script writing its blob, a record of "
        f"{shown(redis_alone(lambda f: f['blob_bytes']), 'B')} holding the state, 16 event "
        "ids and 8 decisions, compressed with zstd)."
    )
    return Section("Redis work per event", how, figures,
                   errors=runs.errors_of("transport", "redis"))  # fmt: skip


def _agreement(zen: ZenFigures) -> str:
    events = zen["events"]
    return (
        f"stage {zen['agree_stage_events']}/{events}, eligible actions "
        f"{zen['agree_eligible_events']}/{events}, offers {zen['agree_offers_events']}/{events}"
    )


def engine(runs: Runs) -> Section:
    get, missing = Reader(runs.figures.get("engine")), runs.missing("engine")
    decide_us, bare = (
        get(lambda f: f["zen"]["decide_us_per_event"]),
        get(lambda f: f["ceilings_us"]["numba"]),
    )
    zen_us = get(lambda f: f["zen"]["zen_us_per_event"])
    evaluate_us = get(lambda f: f["zen"]["zen_evaluate_us_per_event"])
    readme_us = get(lambda f: f["zen"]["zen_create_decision_us_per_event"])
    one_core = (
        1e6 / decide_us if decide_us is not None and known(decide_us) and decide_us > 0 else None
    )

    def beside_decide(name: str, zen_us_per_event: float | None) -> Figure:
        return Figure(name, zen_us_per_event, "µs", decide_us, "decide()")

    figures = [
        Figure("decide(), retail rules, per event", decide_us, "µs", bare, "bare numba call",
               t.DECIDE_US, missing=missing,
               note=f"{shown(ratio(decide_us, bare), '×')} a bare numba call; "
               "`benchmarks/results/kernels.md` shows where it goes"),
        Figure("zen-engine per event: harness + `ZenEngine.evaluate` (its fastest per-event API)",
               zen_us, "µs", decide_us, "decide()", t.ZEN_RATIO, on_ratio=True, missing=missing,
               note=f"zen-engine takes {shown(zen_us, 'µs')} per event here, "
               f"{shown(evaluate_us, 'µs')} of it in `ZenEngine.evaluate`; its README's "
               f"`create_decision` API: {shown(ratio(readme_us, decide_us), '×')}"),
        beside_decide("zen-engine: `ZenEngine.evaluate` alone", evaluate_us),
        beside_decide("zen-engine: `create_decision(graph).evaluate` (its README's example)",
                      readme_us),
        beside_decide("zen-engine: `evaluate_batch`, every event in one call",
                      get(lambda f: f["zen"]["zen_batch_us_per_event"])),
        beside_decide("zen-engine: `async_evaluate`, 64 in flight",
                      get(lambda f: f["zen"]["zen_async_us_per_event"])),
        Figure("zen-engine CPU per event, harness + evaluate",
               get(lambda f: f["zen"]["zen_cpu_us_per_event"]), "µs",
               get(lambda f: f["zen"]["decide_cpu_us_per_event"]), "decide() CPU"),
        Figure("decide() batched, one core", get(lambda f: f["many"]["retail_many_per_s"]),
               "events/s", get(lambda f: f["many"]["retail_decide_per_s"]) or one_core,
               "decide() one event at a time", t.BATCHED_DECIDE, missing=missing,
               note="`decide_many()` on encoded retail events; with encoding "
               f"{shown(get(lambda f: f['many']['retail_encode_and_many_per_s']), 'events/s')}; "
               "the BPIC 2012 log (262,200 events) in "
               f"{shown(get(lambda f: f['many']['bpic_many_s']), 's')}, "
               f"{shown(get(lambda f: f['many']['bpic_from_file_s']), 's')} from its CSV file, "
               f"against {shown(get(lambda f: f['many']['bpic_decide_s']), 's')} with decide()"),
    ]  # fmt: skip
    how = (
        f"`benchmarks.engine.peer_zen`: {shown(get(lambda f: f['zen']['events']))} simulated "
        f"retail events of {shown(get(lambda f: f['zen']['shoppers']))} shoppers through decide() "
        f"and through zen-engine {get(lambda f: f['zen']['zen_engine_version']) or '?'} running "
        "the same journey as a JDM graph, one event at a time, median of "
        f"{get(lambda f: f['zen']['repeats']) or '?'} replays (wall time); both answered alike on "
        f"{get(lambda f: _agreement(f['zen'])) or '?'}. Ceilings: `benchmarks.engine.ceilings` on "
        "the same events."
    )
    after: list[str | Table] = []
    if note := get(lambda f: f["zen"]["zen_async_note"]):
        after.append(f"zen-engine async probe: {note}.")
    table = Reader(runs.figures.get("kernels"))(lambda f: f["figures_table"])
    if table:
        after.append(
            Table(tuple(table[0]), [tuple(row) for row in table[1:]],
                  "From `benchmarks/results/kernels.md`, written in this run by "
                  "`benchmarks.engine.kernels` (start-up, ceilings, the 200-rule journey, the "
                  "reference evaluator):")
        )  # fmt: skip
    return Section("Engine: decide() alone and beside zen-engine", how, figures, after,
                   runs.errors_of("engine", "kernels"))  # fmt: skip


def replay(runs: Runs) -> Section:
    get, missing = Reader(runs.figures.get("replay")), runs.missing("replay")
    events_per_s = get(lambda f: f["events_per_s"])
    failed = get(lambda f: f["errors_total"] + f["unanswered_events"] + f["degraded"])
    why = (
        f"server CPU {shown(get(lambda f: f['server_cpu_us_per_event']), 'µs')} per event, driver "
        f"{shown(get(lambda f: f['client_cpu_us_per_event']), 'µs')}"
    )
    shape = (
        f"{get(lambda f: f['streams']) or '?'} streams × window {get(lambda f: f['window']) or '?'}"
    )
    figures = [
        Figure(f"BPIC 2012, {shown(get(lambda f: f['events']))} events through DecideStream "
               f"({shape})", events_per_s, "events/s",
               Reader(runs.figures.get("streaming"))(lambda f: f["echo_stream"]["rate"]),
               "stream echo", t.REPLAY_RATE, on_ratio=True, note=why,
               missing=runs.missing("replay", "streaming")),
        Figure("errors + unanswered + degraded events", failed, target=t.ZERO,
               note=str(get(lambda f: f["errors"])), missing=missing),
        Figure("customers whose stage differs from decide()'s own replay",
               get(lambda f: f["customers_mismatched"]), target=t.ZERO,
               note=f"e.g. {get(lambda f: f['mismatched_examples'])}", missing=missing),
        Figure("the replay against decide() alone on the same log, in-process", events_per_s,
               "events/s", get(lambda f: f["engine_in_process_events_per_s"]),
               "decide() alone"),
    ]  # fmt: skip
    service = get(lambda f: f["stage_counts_service"]) or {}
    engine_counts = get(lambda f: f["stage_counts_engine"]) or {}
    after: list[str | Table] = []
    if stages := sorted(set(service) | set(engine_counts)):
        same = "the same" if get(lambda f: f["stage_counts_match"]) else "**different**"
        after.append(
            Table(("stage", "customers (service)", "customers (decide())"),
                  [(s, service.get(s, 0), engine_counts.get(s, 0)) for s in stages],
                  f"Stage distribution at the end ({same} in the service's Redis statistics and "
                  "in decide()'s replay):")
        )  # fmt: skip
    how = (
        "`benchmarks.load.replay`: every application of `../shared/data/bpic2012/` is one "
        "customer, its events in order over one DecideStream (the loan_application journey, a "
        "fresh service and embedded Redis); afterwards every customer's stage is read back with "
        "GetCustomer and compared with decide()'s replay of the same log."
    )
    return Section("Real data: the BPIC 2012 log through DecideStream", how, figures, after,
                   runs.errors_of("replay"))  # fmt: skip


def memory(runs: Runs) -> Section:
    get, missing = Reader(runs.figures.get("memory")), runs.missing("memory")
    state_mean = get(lambda f: f["state_key_bytes_mean"])
    record_mean = get(lambda f: f["record_bytes_mean"])
    engine_state = get(lambda f: f["engine_state_bytes_mean"])
    before_zstd = get(
        lambda f: (
            f["engine_state_bytes_mean"]
            + f["decisions_kept_mean"] * f["decision_bytes_mean"]
            + (f["events_remembered_max"] - f["decisions_kept_mean"]) * FINGERPRINT_BYTES
        )
    )
    at_start = get(lambda f: f["server_rss_mib_at_start"])
    why = (
        f"a customer is one state hash, {shown(state_mean, 'B')} on average: its blob, "
        f"{shown(record_mean, 'B')} ({shown(get(lambda f: f['record_bytes_max']), 'B')} at "
        f"most), holds the state ({shown(engine_state, 'B')}), the last "
        f"{get(lambda f: f['events_remembered_max']) or '?'} event ids and the decisions of the "
        f"last {get(lambda f: f['decisions_kept_max']) or '?'} "
        f"({shown(get(lambda f: f['decision_bytes_mean']), 'B')} each), compressed with zstd"
    )
    customers = get(lambda f: f["customers"]) or "?"
    figures = [
        Figure(f"Redis bytes per customer after a year, p99 ({customers} customers)",
               get(lambda f: f["bytes_per_customer_p99"]), "B", target=t.BYTES_PER_CUSTOMER,
               note=why, missing=missing),
        Figure("state hash per customer, mean", state_mean, "B", record_mean,
               "its blob: state + decisions, zstd"),
        Figure("state + decisions in the blob, mean", record_mean, "B", before_zstd,
               "before zstd"),
        Figure("server RSS under load, peak", get(lambda f: f["server_rss_mib_peak"]), "MiB",
               at_start, "idle, at start", t.SERVER_RSS_MIB, missing=missing,
               note=f"{shown(at_start, 'MiB')} before any load"),
        Figure("embedded Redis RSS under load, peak", get(lambda f: f["redis_rss_mib_peak"]),
               "MiB"),
    ]  # fmt: skip
    how = (
        "`benchmarks.redis.memory`: simulated shoppers identified, then visiting on "
        f"{get(lambda f: f['visit_days_per_customer']) or '?'} days of the last year "
        f"({shown(get(lambda f: f['events_per_customer_mean']))} events each, their own "
        "timestamps) over DecideStream; `MEMORY USAGE … SAMPLES 0` of each customer's keys (one "
        "state hash, whose blob holds the engine state and the ring of the decisions kept for "
        "the last events, compressed together with zstd), each blob read back and decoded. RSS "
        "from /proc every 100 ms during a closed loop of Decide "
        f"({shown(get(lambda f: f['load_calls_per_s']), 'calls/s')})."
    )
    return Section("Memory: Redis per customer, server RSS", how, figures,
                   errors=runs.errors_of("memory"))  # fmt: skip


def _overload_figures(overload: OverloadFigures, missing: str) -> list[Figure]:
    """R, then per multiple of R its goodput and its accepted calls' p99. When the driver fell
    behind its schedule, it offered less than planned and its latencies include its own delay:
    both figures are shown, not judged."""
    sustainable, cap = overload["sustainable_per_s"], overload["max_concurrent_calls"]
    bound_us = cap / sustainable * 1e6 if sustainable else None
    figures = [Figure("sustainable rate R (closed loop, concurrency 64)", sustainable, "calls/s")]
    for run in overload["runs"]:
        times = f"{run['multiple']:g}× R"
        lag = f"driver loop lag up to {shown(run['driver_loop_lag_ms_max'], 'ms')}"
        shed = (
            f"{shown(run['resource_exhausted'])} RESOURCE_EXHAUSTED, "
            f"{shown(run['cancelled'])} CANCELLED; {lag}"
        )
        # It did not offer the planned load on time: neither figure answers the question.
        behind = (
            "" if run["driver_kept_schedule"] else f"the driver fell behind its schedule ({lag})"
        )
        figures += [
            Figure(f"goodput at {times} ({shown(run['offered_per_s'], 'calls/s')} offered)",
                   run["goodput_per_s"], "calls/s", sustainable, "R", t.OVERLOAD_GOODPUT,
                   on_ratio=True, note=shed, unjudged=behind,
                   missing=f"the driver fell behind its schedule ({lag}): its window is not "
                   "trusted"),
            Figure(f"p99 of accepted calls at {times}", run["ok_p99_us"], "µs", bound_us,
                   f"cap {cap} ÷ R", t.OVERLOAD_P99, on_ratio=True, note=shed, unjudged=behind,
                   missing=missing),
        ]  # fmt: skip
    return figures


def _overload_table(overload: OverloadFigures) -> Table:
    header = ("offered", "goodput/s", "RESOURCE_EXHAUSTED", "CANCELLED", "other",
              "OK p50 µs", "OK p99 µs", "driver loop lag ms", "driver kept schedule")  # fmt: skip
    rows = [
        (f"{r['multiple']:g}× ({shown(r['offered_per_s'])}/s)", r["goodput_per_s"],
         r["resource_exhausted"], r["cancelled"],
         sum(r["other_errors"].values()) + r["client_overloaded"], r["ok_p50_us"],
         r["ok_p99_us"], r["driver_loop_lag_ms_max"],
         "yes" if r["driver_kept_schedule"] else "no")
        for r in overload["runs"]
    ]  # fmt: skip
    return Table(header, rows)


def overload(runs: Runs) -> Section:
    figures_of, missing = runs.figures.get("overload"), runs.missing("overload")
    after: list[str | Table] = []
    if figures_of is not None:
        figures, after = _overload_figures(figures_of, missing), [_overload_table(figures_of)]
    else:
        figures = [Figure("goodput at 1–8× R", None, "calls/s", target=t.OVERLOAD_GOODPUT,
                          missing=missing)]  # fmt: skip
    cap = Reader(figures_of)(lambda f: f["max_concurrent_calls"]) or "?"
    how = (
        "`benchmarks.load.overload`: R from a closed loop of Decide at concurrency 64, then open "
        f"loops at 1, 2, 4 and 8× R against the same service (admission cap {cap} calls); "
        "latency of the accepted calls from their scheduled start. Our reading of issue 6: "
        "goodput ≥ 0.8× R, p99 within twice the time R takes to serve a full admission queue."
    )
    return Section("Overload: goodput at 1–8× the sustainable rate (issue 6)", how, figures,
                   after, runs.errors_of("overload"))  # fmt: skip


def locust(runs: Runs) -> Section:
    get, missing = Reader(runs.figures.get("locust")), runs.missing("locust")
    user_errors = get(lambda f: f["user_errors"]) or []
    failed = get(lambda f: f["failures"] + len(user_errors))
    messages = [*(get(lambda f: f["failure_messages"]) or []), *user_errors]
    users, duration = get(lambda f: f["users"]) or "?", get(lambda f: f["duration_s"]) or "?"
    figures = [
        Figure(f"failures, {users} users, {duration} s", failed, target=t.ZERO,
               note="; ".join(messages[:3]), missing=missing),
        Figure("requests per second", get(lambda f: f["requests_per_s"]), "calls/s",
               Reader(runs.figures.get("transport"))(lambda f: f["decide_unary"]["rate"]),
               "drive, Decide at concurrency 64"),
        Figure("p50", get(lambda f: f["p50_us"]), "µs"),
        Figure("p99", get(lambda f: f["p99_us"]), "µs"),
    ]  # fmt: skip
    after: list[str | Table] = []
    if by_request := get(lambda f: f["by_request"]):
        header = ("request", "requests", "failures", "req/s", "p50 µs", "p99 µs")
        rows: list[tuple[str | float | None, ...]] = [
            (name, r["requests"], r["failures"], r["requests_per_s"], r["p50_us"], r["p99_us"])
            for name, r in by_request.items()
        ]
        after.append(Table(header, rows))
    how = (
        f"`benchmarks.load.run_locust`: locust {get(lambda f: f['locust_version']) or '?'} "
        "headless, the locustfile's simulated shoppers and CDNOW replay (gevent gRPC users timing "
        f"in µs), think time {get(lambda f: f['think_ms'])} ms, against a fresh `journeyman "
        "serve`; locust keeps percentiles to two significant figures."
    )
    return Section("Locust: hundreds of users on the hot path", how, figures, after,
                   runs.errors_of("locust"))  # fmt: skip


WITH, WITHOUT = "with_goals", "without_goals"
NO_GOALS = "without goals"
Turns = Literal["decide", "decide_redis", "batch", "lockstep_redis"]
CustomerBytes = Literal[
    "bytes_per_customer_mean", "bytes_per_customer_p99", "state_key_bytes_mean",
    "decisions_key_bytes_mean",
]  # fmt: skip


def _mean(values: list[float | None]) -> float | None:
    """The mean of the measured values (equal turns of a load); None when none was."""
    measured = [v for v in values if v is not None and known(v)]
    return sum(measured) / len(measured) if measured else None


def _turns(goals: GoalsCostFigures, variant: str, kind: Turns, pick: Callable[[Any], Any]) -> Any:
    """The mean of `pick(turn)` over `variant`'s turns of one load."""
    return _mean([pick(turn) for turn in goals["load"][variant][kind]])


def _goals_figures(goals: GoalsCostFigures, missing: str) -> list[Figure]:
    engine, year = goals["engine"], goals["memory"]

    def load(name: str, unit: str, kind: Turns, pick: Callable[[Any], Any], **rest: Any) -> Figure:
        return Figure(name, _turns(goals, WITH, kind, pick), unit,
                      _turns(goals, WITHOUT, kind, pick), NO_GOALS, **rest)  # fmt: skip

    def bytes_of(name: str, key: CustomerBytes) -> Figure:
        return Figure(name, year[WITH][key], "B", year[WITHOUT][key], NO_GOALS)

    lockstep = _turns(goals, WITH, "lockstep_redis", lambda w: w["commands_per_event"])
    runs = [
        *(r for v in (WITH, WITHOUT) for r in goals["load"][v]["decide"]),
        *(r for v in (WITH, WITHOUT) for r in goals["load"][v]["batch"]),
    ]
    customers = year[WITH]["customers"]
    return [
        Figure("decide(), retail rules, per event", engine["with_goals_us"], "µs",
               engine["without_goals_us"], NO_GOALS),
        bytes_of(f"Redis bytes per customer after a year, mean ({customers} customers)",
                 "bytes_per_customer_mean"),
        bytes_of("Redis bytes per customer after a year, p99", "bytes_per_customer_p99"),
        bytes_of("state hash per customer, mean", "state_key_bytes_mean"),
        load("Decide, concurrency 64, closed loop", "calls/s", "decide", lambda r: r["rate"]),
        load("server CPU per Decide call", "µs", "decide",
             lambda r: r["server_cpu_us_per_call"]),
        load("DecideBatch, 200 events a call, 4 in flight", "events/s", "batch",
             lambda r: r["events_per_s"]),
        load("server CPU per DecideBatch event", "µs", "batch",
             lambda r: per_event_cpu(r, r["server_cpu_us_per_call"])),
        load("round trips per event, one call at a time", "", "lockstep_redis",
             lambda w: w["pipelines_per_event"], target=t.NO_EXTRA_ROUND_TRIP, on_ratio=True,
             note=f"{shown(lockstep)} hot-path commands per event", missing=missing),
        load("round trips per event, concurrency 64", "", "decide_redis",
             lambda w: w["pipelines_per_event"]),
        load("hot-path commands per event, concurrency 64", "", "decide_redis",
             lambda w: w["commands_per_event"]),
        load("commands Redis ran per event, concurrency 64 (its INFO: scripts' and the "
             "statistics flush's included)", "",
             "decide_redis", lambda w: w["redis_commands_per_event"]),
        Figure("failed calls + degraded answers, these runs", _failures(*runs), target=t.ZERO,
               note=_failure_text(*runs), missing=missing),
    ]  # fmt: skip


def _goals_work(goals: GoalsCostFigures) -> str:
    """What the goals had to do in the decide() replay."""
    engine = goals["engine"]
    return (
        "Where the cost goes: exposures and attribution live in the customer's state (3 ints per "
        "action, 1 per action and goal) and travel in the same load and commit as the rest of "
        "it; their daily counts go out with the journey statistics, one pipeline every 50 ms "
        "for all calls, off the hot path. "
        f"In the decide() replay with goals, its {shown(engine['events'])} events recorded "
        f"{shown(engine['exposures'])} new exposures in the customers' state (an action offered "
        f"or held out for the first time in its window) and attributed "
        f"{shown(engine['conversions'])} conversions (`order`: the simulated traffic has "
        "purchases, no responses)."
    )


def _spread(name: str, unit: str, with_goals: list[float], without: list[float]) -> str:
    """Whether one load's turns with goals stand apart from its turns without."""
    if not with_goals or not without:
        return ""
    apart = max(with_goals) < min(without) or min(with_goals) > max(without)
    return (
        f"{name} turns ran at {shown(min(with_goals))}–{shown(max(with_goals), unit)} with goals "
        f"and {shown(min(without))}–{shown(max(without), unit)} without: "
        + ("every turn with goals apart from every turn without" if apart
           else "the ranges overlap, the difference is within this run's noise")
    )  # fmt: skip


def _goals_spread(goals: GoalsCostFigures) -> str:
    """Whether the throughput differences stand out of the turns' own spread."""
    with_goals, without = goals["load"][WITH], goals["load"][WITHOUT]
    said = [
        _spread("Decide", "calls/s", [r["rate"] for r in with_goals["decide"]],
                [r["rate"] for r in without["decide"]]),
        _spread("DecideBatch", "events/s", [r["events_per_s"] for r in with_goals["batch"]],
                [r["events_per_s"] for r in without["batch"]]),
    ]  # fmt: skip
    return "; ".join(s for s in said if s) + "."


def _goals_turns(goals: GoalsCostFigures) -> Table:
    with_goals, without = goals["load"][WITH], goals["load"][WITHOUT]
    turns = zip(with_goals["decide"], without["decide"], with_goals["batch"], without["batch"],
                strict=False)  # fmt: skip
    rows = [
        (str(number), decide_with["rate"], decide_without["rate"],
         batch_with["events_per_s"], batch_without["events_per_s"])
        for number, (decide_with, decide_without, batch_with, batch_without)
        in enumerate(turns, start=1)
    ]  # fmt: skip
    header = ("turn", "Decide calls/s, with goals", "without", "DecideBatch events/s, with",
              "without")  # fmt: skip
    return Table(
        header,
        rows,
        "Each variant's turns, in the order each ran them (the two "
        "variants alternating with, without, without, with):",
    )


def goals(runs: Runs) -> Section:
    figures_of, missing = runs.figures.get("goals"), runs.missing("goals")
    get = Reader(figures_of)
    after: list[str | Table] = []
    if figures_of is not None:
        figures = _goals_figures(figures_of, missing)
        after = [_goals_work(figures_of), _goals_spread(figures_of), _goals_turns(figures_of)]
    else:
        figures = [
            Figure("round trips per event, one call at a time", None,
                   target=t.NO_EXTRA_ROUND_TRIP, on_ratio=True, missing=missing)
        ]  # fmt: skip
    plan = get(lambda f: f["plan"])
    how = (
        "`benchmarks.goals_cost`: `rules/retail.yaml` (goals `order` and `click`) against the same "
        "file with its `goals:` block taken out (no goal: no exposure is recorded), in one run. "
        f"decide(): {shown(get(lambda f: f['engine']['events']))} simulated retail events, the "
        "two rulesets' replays interleaved, median of "
        f"{get(lambda f: f['engine']['repeats']) or '?'}. Memory: `benchmarks.redis.memory`'s "
        "year of shoppers through a server of each. Load: both servers side by side, each with its"
        " embedded Redis, `benchmarks.load.drive` on each in turn (with, without, without, with,"
        f" {_setting(plan, 'rounds')} turns each), {_setting(plan, 'segment_s')} s per turn after"
        f" {_setting(plan, 'warmup_s')} s of warm-up, the mean of the turns; one call at a time:"
        " 50 shoppers, each decided once first (in the state cache, as a returning customer is);"
        " round trips from each service's /metrics, Redis's own commands from its `INFO stats`."
    )
    return Section("Goals and exposures: what they cost (issue 12)", how, figures, after,
                   runs.errors_of("goals"))  # fmt: skip


def regret(runs: Runs) -> Section:
    figures_of, missing = runs.figures.get("regret"), runs.missing("regret")
    get = Reader(figures_of)
    figures = [
        Figure("cumulative regret, adaptive arbitration", get(lambda f: f["adaptive_regret"]),
               "clicks", get(lambda f: f["static_regret"]), "static priorities",
               target=t.REGRET_RATIO, on_ratio=True, missing=missing),
        Figure("cumulative regret, uniform random", get(lambda f: f["random_regret"]), "clicks",
               get(lambda f: f["static_regret"]), "static priorities", missing=missing),
        Figure("best banner's share of the last 10,000 decisions, adaptive",
               get(lambda f: f["adaptive_best_share_last_10k"]), missing=missing),
    ]  # fmt: skip
    how = (
        "`benchmarks.engine.regret`: "
        f"{shown(get(lambda f: f['shoppers']))} simulated shoppers, each new, meet one of five "
        "banners whose true click rates (2, 4, 6, 8 and 10 %) the rules do not know. Adaptive "
        "arbitration (`decide()` with `arbitration: adaptive`, equal priorities, its learned "
        "tables rebuilt every 1,000 shoppers as the service refreshes them) against the same "
        "journey with `arbitration: priority` and a marketer's guess of the order, and against "
        "a uniformly random banner (expected regret, computed). Regret adds up, shopper by "
        "shopper, how much likelier a click the best banner would have been than the one shown."
    )
    return Section("Adaptive arbitration: regret (issue 12)", how, figures, [],
                   runs.errors_of("regret"))  # fmt: skip


OFF = "timer loop off"
VARIANT_NAMES = ("off", "idle", "busy")


def _timer_turns(timers: TimerFigures, variant: str, pick: Callable[[TimerLoadTurn], Any]) -> Any:
    """The mean of `pick(turn)` over the hot-path turns of one variant (off, idle, busy)."""
    return _mean([pick(turn) for turn in timers["load"] if turn["variant"] == variant])


def _timer_memory_figures(timers: TimerFigures) -> list[Figure]:
    memory = timers["memory"]
    per_customer = memory["index_bytes_per_timer"] + memory["state_bytes_per_customer"]
    return [
        Figure(f"Redis bytes per pending timer: the due-time index, "
               f"{shown(memory['customers'])} members", memory["index_bytes_per_timer"], "B",
               memory["state_bytes_per_customer"], "a state hash, same customers"),
        Figure(f"the same by MEMORY USAGE of the {memory['shards']} sorted sets",
               memory["index_memory_usage_per_timer"], "B"),
        Figure("Redis bytes per customer with a timer pending: state hash + index",
               per_customer, "B"),
    ]  # fmt: skip


def _timer_rate_figures(timers: TimerFigures, missing: str) -> list[Figure]:
    rate, alone = timers["rate"], timers["rate_alone"]
    failed = [f"{name} ({run})" for run, figures in (("pending", rate), ("alone", alone))
              for name, held in figures["checks"].items() if not held]  # fmt: skip
    due = shown(rate["due"])
    return [
        Figure(f"timers fired per second, {shown(rate['pending'])} pending ({due} due)",
               rate["fired_per_s"], "timers/s", alone["fired_per_s"], f"the {due} due alone"),
        Figure("timer loop CPU per timer (claim, load, decide, commit, settle, statistics)",
               rate["loop_cpu_us_per_timer"], "µs", timers["decide_us_per_timer"],
               "decide() alone"),
        Figure(f"timer loop CPU per timer, {shown(rate['pending'])} pending",
               rate["loop_cpu_us_per_timer"], "µs", alone["loop_cpu_us_per_timer"],
               "the due alone"),
        Figure("redis-server CPU per timer", rate["redis_cpu_us_per_timer"], "µs",
               alone["redis_cpu_us_per_timer"], "the due alone"),
        Figure("checks failed after the loop ran (each due timer fired once, the others still "
               "pending, one outbox entry each, fired customers moved)", float(len(failed)),
               target=t.ZERO, note="; ".join(failed), missing=missing),
    ]  # fmt: skip


def _timer_load_figures(timers: TimerFigures, missing: str) -> list[Figure]:
    plan = timers["plan"]
    at = f"concurrency {plan['concurrency']}"
    picks: list[tuple[str, str, Callable[[TimerLoadTurn], Any]]] = [
        (f"Decide, {at}, closed loop", "calls/s", lambda r: r["decide"]["rate"]),
        (f"Decide p50, {at}", "µs", lambda r: r["decide"]["latency_us"]["p50"]),
        ("Decide p50, one call at a time", "µs", lambda r: r["lockstep"]["latency_us"]["p50"]),
        ("Decide p99, one call at a time", "µs", lambda r: r["lockstep"]["latency_us"]["p99"]),
        (f"server CPU per Decide call, {at}", "µs",
         lambda r: r["decide"]["server_cpu_us_per_call"]),
    ]  # fmt: skip
    busy = f"timer loop busy ({shown(plan['busy_per_s'])} timers/s falling due)"
    loop = {"idle": "timer loop idle", "busy": busy}
    figures = [
        Figure(f"{name}, {loop[variant]}", _timer_turns(timers, variant, pick), unit,
               _timer_turns(timers, "off", pick), OFF)
        for name, unit, pick in picks for variant in ("idle", "busy")
    ]  # fmt: skip
    runs = [r for turn in timers["load"] for r in (turn["decide"], turn["lockstep"])]
    stray = sum(turn["fired"] for turn in timers["load"] if turn["variant"] != "busy")
    lateness = _timer_turns(timers, "busy", lambda r: r["lateness_s_mean"])
    return [
        *figures,
        Figure("timers fired per second, busy turns",
               _timer_turns(timers, "busy", lambda r: r["fired_per_s"]), "timers/s",
               plan["busy_per_s"], "falling due"),
        Figure("timer lateness (due time to commit), mean, busy turns",
               lateness * 1000 if lateness is not None else None, "ms"),
        Figure("timers fired in the idle and off turns", stray, target=t.ZERO,
               note="something fell due that the benchmark did not make due", missing=missing),
        Figure("failed calls + degraded answers, these runs", _failures(*runs), target=t.ZERO,
               note=_failure_text(*runs), missing=missing),
    ]  # fmt: skip


def _timer_work(timers: TimerFigures) -> str:
    """Where a timer's time goes, from the figures."""
    rate = timers["rate"]
    loop_us, redis_us = rate["loop_cpu_us_per_timer"], rate["redis_cpu_us_per_timer"]
    both = loop_us + redis_us
    return (
        f"Where a timer's time goes: the loop's process spends {shown(loop_us, 'µs')} of CPU per "
        f"timer, of which decide() alone takes about {shown(timers['decide_us_per_timer'], 'µs')}"
        "; the rest is decoding and encoding the state, the answer's protobuf and outbox entry, "
        "the statistics, and redis-py packing each commit's arguments. Redis adds "
        f"{shown(redis_us, 'µs')}. A turn claims about 256 due customers over the shards, then "
        "loads, decides, commits (16 a round trip) and settles them, awaiting Redis between the "
        "steps, so the two add up: "
        f"{shown(both, 'µs')} a timer, {shown(1e6 / both if both else None, 'timers/s')} were "
        f"the cores free; {shown(rate['fired_per_s'], 'timers/s')} measured (on a shared machine "
        "the rates move with the others' load more than the CPU per timer does). The loop "
        "yields to the server's calls every 4 decisions and commits 16 a round trip (before: a "
        "batch of 256 in one stretch, 3.2× the p99 with the loop off). The busy p99 left is not "
        "profiled yet; likely a call's several event-loop turns each waiting behind a stretch of "
        "the loop's work, on two cores shared with the driver and Redis."
    )


def _timer_range(
    timers: TimerFigures, name: str, unit: str, pick: Callable[[TimerLoadTurn], Any]
) -> str:
    """The range of one figure over each variant's turns, and whether the idle or busy turns
    stand apart from the turns with the loop off."""
    by = {v: [x for t in timers["load"] if t["variant"] == v and known(x := pick(t))]
          for v in VARIANT_NAMES}  # fmt: skip
    ranges = ", ".join(f"{shown(min(xs))}–{shown(max(xs), unit)} {v}" for v, xs in by.items() if xs)
    off = by["off"]
    apart = [v for v in ("idle", "busy") if by[v] and off
             and (max(by[v]) < min(off) or min(by[v]) > max(off))]  # fmt: skip
    if apart:
        verdict = f"every {' and every '.join(apart)} turn apart from every turn with the loop off"
    else:
        verdict = "each range overlaps the loop-off one, the differences within this run's noise"
    return f"{name}: {ranges} ({verdict})"


def _timer_spread(timers: TimerFigures) -> str:
    """Whether the hot path's differences stand out of the turns' own spread."""
    said = [
        _timer_range(timers, "Decide at concurrency 64, turn by turn", "calls/s",
                     lambda t: t["decide"]["rate"]),
        _timer_range(timers, "Decide's p99 one call at a time", "µs",
                     lambda t: t["lockstep"]["latency_us"]["p99"]),
    ]  # fmt: skip
    return "; ".join(said) + "."


def _timer_turn_table(timers: TimerFigures) -> Table:
    header = ("turn", "timer loop", "Decide calls/s, concurrency 64", "p50 µs", "p50 µs, one at "
              "a time", "p99 µs, one at a time", "timers fired/s")  # fmt: skip
    rows = [
        (str(number), turn["variant"], turn["decide"]["rate"],
         turn["decide"]["latency_us"]["p50"], turn["lockstep"]["latency_us"]["p50"],
         turn["lockstep"]["latency_us"]["p99"], turn["fired_per_s"])
        for number, turn in enumerate(timers["load"], start=1)
    ]  # fmt: skip
    return Table(header, rows, "The turns, in the order they ran:")


def timers_section(runs: Runs) -> Section:
    figures_of, missing = runs.figures.get("timers"), runs.missing("timers")
    get = Reader(figures_of)
    after: list[str | Table] = []
    if figures_of is not None:
        figures = [*_timer_memory_figures(figures_of), *_timer_rate_figures(figures_of, missing),
                   *_timer_load_figures(figures_of, missing)]  # fmt: skip
        after = [_timer_work(figures_of), _timer_spread(figures_of), _timer_turn_table(figures_of)]
    else:
        figures = [Figure("failed calls + degraded answers, these runs", None, target=t.ZERO,
                          missing=missing)]  # fmt: skip
    plan = get(lambda f: f["plan"])
    how = (
        "`benchmarks.timers_cost` (`make bench` runs it after `benchmarks.run_all`). Memory and "
        "rate (`benchmarks.redis.timers`): a redis-server of our own "
        f"({get(lambda f: f['memory']['redis_version']) or '?'}, configured as the embedded one)"
        f"; {_setting(plan, 'customers')} customers of the retail journey with a cart left, each "
        "state made by decide() over a short session (a few thousand distinct states, each "
        "customer its own copy) and its state hash written as the commit script writes it (no "
        "decisions hash: section 7 has a customer's whole cost), each due time in "
        f"the service's {get(lambda f: f['memory']['shards']) or '?'} sorted sets (ZADD, then "
        "HSET and EXPIRE, pipelined); used memory "
        "before and after each, less client and AOF buffers. Then "
        f"{_setting(plan, 'due')} of them due: the service's `TimerLoop` with its settings, "
        "in-process on uvloop, turn after turn until they are fired; the same due timers alone "
        "in a database of their own, and decide() alone on them, as ceilings. Hot path: two "
        "`journeyman serve` side by side (retail rules, each its own embedded Redis), the timer "
        "loop off (`JOURNEYMAN_TIMERS=0`) and on; `benchmarks.load.drive` in turns (off, idle, "
        f"busy, then busy, idle, off, …: {_setting(plan, 'rounds')} of each), each a closed "
        f"loop at concurrency {_setting(plan, 'concurrency')} ({_setting(plan, 'warmup_s')} s "
        f"warm-up, {_setting(plan, 'segment_s')} s) then one call at a time "
        f"({_setting(plan, 'lockstep_s')} s), the mean of the turns; busy: timers falling due "
        f"at {_setting(plan, 'busy_per_s')} a second over the whole turn, written into the "
        "server's Redis just before it. Server CPU counts the server's whole process tree, the "
        "timers it fires included."
    )
    return Section("Timers: memory, rate and the cost to the hot path (issue 15)", how, figures,
                   after, runs.errors_of("timers"))  # fmt: skip


BASE = "base"
# The variants of `benchmarks.engine.conditions_cost`, and what each has of the three.
CONDITION_VARIANTS = {
    "base": "base: no `since:`, `until:` or contact policy",
    "since": "+ `since: signup` (fast_start_call)",
    "until": "+ `until: trial_ends_at` ×2 (trial_last_call)",
    "contact": "+ contact policy (2 limits on email, quiet hours)",
    "all": "all three (rules/trial.yaml as written)",
}
ADDED = ("since", "until", "contact", "all")


def _conditions_figures(conditions: ConditionsCostFigures) -> list[Figure]:
    variants = conditions["variants"]
    base, all_three = variants[BASE], variants["all"]
    many = conditions["many_events_per_s"]
    decide_us = [
        Figure(f"decide() per event, {CONDITION_VARIANTS[name]}", variants[name]["us_per_event"],
               "µs", base["us_per_event"], BASE)
        for name in ADDED
    ]  # fmt: skip
    return [
        Figure(f"decide() per event, trial journey, {CONDITION_VARIANTS[BASE]}",
               base["us_per_event"], "µs"),
        *decide_us,
        Figure("the traits' features, once per change (`trait_features` alone), + `until:`",
               variants["until"]["traits_us"], "µs", base["traits_us"], BASE),
        Figure("encoded state per customer (`encode_state`), mean, all three",
               all_three["state_bytes_mean"], "B", base["state_bytes_mean"], BASE),
        Figure("encoded state per customer, max, all three", all_three["state_bytes_max"], "B",
               base["state_bytes_max"], BASE),
        Figure("decide_many(), one core, all three", many.get("all"), "events/s",
               many.get(BASE), BASE),
    ]  # fmt: skip


def _signed(value: float, unit: str) -> str:
    return ("+" if value >= 0 else "") + shown(value, unit)


def _conditions_work(conditions: ConditionsCostFigures) -> str:
    """Where each feature's time and bytes go, from the figures."""
    variants = conditions["variants"]
    base = variants[BASE]

    def us(name: str) -> str:
        return _signed(variants[name]["us_per_event"] - base["us_per_event"], "µs")

    def state(name: str) -> str:
        return _signed(variants[name]["state_bytes_mean"] - base["state_bytes_mean"], "B")

    traits = _signed(variants["until"]["traits_us"] - base["traits_us"], "µs")
    return (
        f"Where the cost goes, each against the base. `since:`: {us('since')} a decision, "
        f"{state('since')} of state per customer: one int per event type it reads, written on "
        "each event of that type, the time since it put in the kernel's context on every "
        f"decision. `until:`: {us('until')}, of which `trait_features` alone (timed on its own, "
        f"warm, over the same customers' traits) {traits}: there the date trait is parsed from "
        "its ISO text and the traits merged into a new mapping, on the first decision after the "
        "traits change or the state is read from Redis (decide() keeps what it made with the "
        "state it returns, for the next); it keeps no stored state (the mean differs by "
        f"{state('until')}: its decisions offered otherwise). The contact policy: "
        f"{us('contact')}, {state('contact')} of state: for each ranked action on a limited "
        "channel, the offers its limits remember are counted (1 and 3 slots here), and an offer "
        "is remembered in each limit; for the quiet hours, the customer's UTC offset at the "
        "event's time is looked up (cached per zone and quarter hour) and put in the event's "
        "slots, and each action's channel tested against the local minute. All three: "
        f"{us('all')}, {state('all')}. decide_many() reads each customer's traits once per "
        "batch, not once per event."
    )


def _paired(conditions: ConditionsCostFigures, name: str) -> list[float]:
    """Each round's replay of variant `name` over the base's replay in the same round."""
    variants = conditions["variants"]
    pairs = zip(variants[name]["samples_us"], variants[BASE]["samples_us"], strict=False)
    return [us / base for us, base in pairs if base]


def _conditions_spread(conditions: ConditionsCostFigures) -> str:
    """Whether each variant's cost stands out of the rounds' own spread."""
    said = []
    for name in ADDED:
        if not (ratios := _paired(conditions, name)):
            continue
        verdict = ("every round above the base" if min(ratios) > 1 else
                   "every round below the base" if max(ratios) < 1 else
                   "rounds on both sides of the base: within this run's noise")  # fmt: skip
        said.append(f"{name} {shown(min(ratios), '×')}–{shown(max(ratios), '×')} ({verdict})")
    start, end = (conditions[k].split(":")[0] for k in ("load_average_start", "load_average_end"))
    return (
        "Each variant's replay over the base's in the same round: " + "; ".join(said) + ". "
        "The machine is shared with other work; the rounds alternate so that it weighs on each "
        f"variant alike (load average, 1, 5 and 15 min: {start} at the start, {end} at the end)."
    )


def _conditions_table(conditions: ConditionsCostFigures) -> Table:
    variants = conditions["variants"]
    header = ("variant", "µs per event, fastest", "median", "slowest", "round by round over "
              "the base, median", "state B, mean", "offers in one replay")  # fmt: skip
    rows = [
        (CONDITION_VARIANTS.get(name, name), v["us_per_event"], v["us_per_event_median"],
         max(v["samples_us"]), shown(statistics.median(_paired(conditions, name)), "×"),
         v["state_bytes_mean"], ", ".join(f"{action} {n}" for action, n in v["offers"].items()))
        for name, v in variants.items()
    ]  # fmt: skip
    return Table(header, rows, "Each variant, and what its decisions offered:")


def conditions_section(runs: Runs) -> Section:
    figures_of, missing = runs.figures.get("conditions"), runs.missing("conditions")
    get = Reader(figures_of)
    after: list[str | Table] = []
    if figures_of is not None:
        figures = _conditions_figures(figures_of)
        after = [_conditions_work(figures_of), _conditions_spread(figures_of),
                 _conditions_table(figures_of)]  # fmt: skip
    else:
        figures = [Figure("decide() per event, all three", None, "µs", missing=missing)]
    plan = get(lambda f: f["plan"])
    how = (
        "`benchmarks.engine.conditions_cost` (`make bench` runs it after the timers): "
        "`rules/trial.yaml` as five variants written from its text. Base: its `since:` and "
        "`until:` conditions compared as the number trait `seats` instead (the same condition "
        "nodes and comparisons, `lte: 7d` written `lte: 7`: no time kept, no date read), its "
        "`contact_policy` taken out; + since, + until, + contact policy: the base with that one "
        "back as written; all three: the file as it is. "
        f"{_setting(plan, 'customers')} simulated trial users "
        f"({shown(get(lambda f: f['events']))} events: sign-up, logins and features used over "
        "three weeks, a few subscribing; traits include `trial_ends_at`, ISO text, 14 days "
        "after sign-up) replayed from fresh states through decide() in-process (no Redis; "
        "kernels warm, one untimed replay of each variant first), "
        f"{_setting(plan, 'rounds')} rounds of one replay per variant, the order rotated each "
        "round so that the shared machine's load weighs on each alike, the collector paused; "
        "the fastest replay's µs per event (the least disturbed by other work), its ratio to "
        "the base's fastest. State: `engine.codec.encode_state` of each customer after a "
        "replay. decide_many(): the same events encoded beforehand, base and all three "
        f"alternated, median of {_setting(plan, 'many_repeats')}."
    )
    return Section("Time conditions and the contact policy: what they cost (issue 17)", how,
                   figures, after, runs.errors_of("conditions"))  # fmt: skip


SECTIONS: tuple[Callable[[Runs], Section], ...] = (
    transport, streaming, batch, redis_work, engine, replay, memory, overload, locust, goals,
    regret, timers_section, conditions_section, decision_parts,
)  # fmt: skip


def sections(runs: Runs) -> list[Section]:
    """Every section in order; one whose figures are not in the shape expected says so."""
    return [_section(build, runs) for build in SECTIONS]


def _section(build: Callable[[Runs], Section], runs: Runs) -> Section:
    try:
        return build(runs)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
        # A run's figures not in the shape this report expects: say so, keep the rest.
        problem = f"its figures could not be read ({type(error).__name__}: {error})"
        return Section(build.__name__, "—", [], errors=[problem])
