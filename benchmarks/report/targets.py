"""The targets of issue 5 (and issue 6's overload), each figure against its ceiling, in Markdown.

Pure: the figures come in as the JSON-serialisable dicts the benchmark modules' `measure()`
return (collected by `benchmarks.run_all`), and go out as `SectionReport`s and Markdown. Every
judged figure is measured in the same run as its ceiling; a target is "met", "not met: <the
measured reason>", or "not measured: <why>", never left blank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

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


# --- numbers -------------------------------------------------------------------------------------


def known(value: Any) -> bool:
    """A number that was measured (not None, not NaN, not infinite)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def ratio(measured: Any, ceiling: Any) -> float | None:
    """measured ÷ ceiling, or None when either is missing or the ceiling is 0."""
    if not known(measured) or not known(ceiling) or ceiling == 0:
        return None
    return float(measured) / float(ceiling)


def shown(value: Any, unit: str = "") -> str:
    """A figure for a table: thousands separated from 100 up, three significant digits below."""
    if not known(value):
        return NONE
    number = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if unit == "×":
        return f"{number}×"
    return f"{number} {unit}".strip()


def verdict(target: Target | None, value: Any, reason: str = "") -> str:
    """met / not met: reason / not measured: reason; "—" when there is no target."""
    if target is None:
        return NONE
    if not known(value):
        return f"{NOT_MEASURED}: {reason}" if reason else NOT_MEASURED
    if target.holds(value):
        return MET
    return f"{NOT_MET}: {reason}" if reason else NOT_MET


def per_event(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float | None]:
    """Redis work per event between two /metrics scrapes: `events`, `pipelines` (round trips)
    and `commands` counters in each; None per event when no event was decided in between."""
    events = after["events"] - before["events"]
    pipelines = after["pipelines"] - before["pipelines"]
    commands = after["commands"] - before["commands"]
    return {
        "events": events,
        "pipelines": pipelines,
        "commands": commands,
        "pipelines_per_event": pipelines / events if events > 0 else None,
        "commands_per_event": commands / events if events > 0 else None,
        "commands_per_pipeline": commands / pipelines if pipelines > 0 else None,
    }


# --- rows, sections, Markdown --------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of a section's table, already formatted."""

    figure: str
    measured: str
    ceiling: str = NONE
    ratio: str = NONE
    target: str = NONE
    verdict: str = NONE
    judged: str = NONE  # the cell the target is read against: the figure or the ratio


def row(
    figure: str,
    measured: Any,
    unit: str,
    *,
    ceiling: Any = None,
    ceiling_name: str = "",
    target: Target | None = None,
    on_ratio: bool = False,
    reason: str = "",
    missing: str = "",
) -> Row:
    """A figure beside its ceiling and their ratio, judged on the ratio (`on_ratio`) or on the
    figure itself. `reason` says what was measured when the target is not met; `missing`, why
    the judged value could not be measured."""
    quotient = ratio(measured, ceiling)
    measured_text = shown(measured, unit)
    ceiling_text = shown(ceiling, unit)
    if ceiling_name and ceiling_text != NONE:
        ceiling_text = f"{ceiling_text} ({ceiling_name})"
    value, value_text = (quotient, shown(quotient, "×")) if on_ratio else (measured, measured_text)
    return Row(
        figure, measured_text, ceiling_text, shown(quotient, "×"),
        target.shown if target else NONE,
        verdict(target, value, reason if known(value) else missing),
        value_text if target else NONE,
    )  # fmt: skip


@dataclass(frozen=True)
class SectionReport:
    """A titled table, one line on how it was measured, optional Markdown after the table, and
    the errors of the runs it reads (the rows that could still be built are kept)."""

    title: str
    how: str
    rows: list[Row]
    after: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_cell(c) for c in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


ROW_HEADER = ("figure", "measured", "ceiling (same run)", "ratio", "target", "verdict")


def section_markdown(number: int, section: SectionReport) -> str:
    lines = [f"## {number}. {section.title}", ""]
    lines += [f"**Error**: {error}" for error in section.errors]
    if section.errors:
        lines.append("")
    if section.rows:
        cells = [
            (r.figure, r.measured, r.ceiling, r.ratio, r.target, r.verdict) for r in section.rows
        ]
        lines += [markdown_table(ROW_HEADER, cells), ""]
    lines += [f"How: {section.how}", ""]
    for block in section.after:
        lines += [block, ""]
    return "\n".join(lines)


def summary_rows(sections: Sequence[SectionReport]) -> list[tuple[str, str, str, str, str]]:
    """Every judged row of every section: section number, figure, value judged, target, verdict."""
    summary = []
    for number, section in enumerate(sections, start=1):
        for r in section.rows:
            if r.target != NONE:
                summary.append((str(number), r.figure, r.judged, r.target, r.verdict))
    return summary


def tally(sections: Sequence[SectionReport]) -> dict[str, int]:
    """How many targets were met, not met, and not measured."""
    counts = {MET: 0, NOT_MET: 0, NOT_MEASURED: 0}
    for *_, said in summary_rows(sections):
        for kind in counts:
            if said == kind or said.startswith(f"{kind}:"):
                counts[kind] += 1
    return counts


def document(
    title: str, intro: Sequence[str], machine: Mapping[str, str], sections: Sequence[SectionReport]
) -> str:
    """The whole results file: title, intro, the machine, a summary of targets, each section."""
    counts = tally(sections)
    lines = [f"# {title}", "", *intro, ""]
    lines += [f"- **{key}**: {value}" for key, value in machine.items()]
    lines += ["", "## Targets at a glance", ""]
    lines.append(", ".join(f"{n} {kind}" for kind, n in counts.items()) + ".")
    lines += ["", markdown_table(("§", "figure", "judged", "target", "verdict"),
                                 summary_rows(sections)), ""]  # fmt: skip
    for number, section in enumerate(sections, start=1):
        lines.append(section_markdown(number, section))
    return "\n".join(lines).rstrip() + "\n"


# --- the sections --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Runs:
    """The figures of every run of one benchmark session, and the errors of those that failed."""

    figures: Mapping[str, Mapping[str, Any]]
    errors: Mapping[str, str] = field(default_factory=dict)

    def get(self, run: str, *path: str) -> Any:
        """figures[run][path[0]][path[1]]…, None where any step is missing."""
        value: Any = self.figures.get(run)
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        return value

    def missing(self, *runs: str) -> str:
        """Why a figure of these runs is absent: the first that failed or did not run."""
        for run in runs:
            if run in self.errors:
                return f"the `{run}` run failed (see its error)"
            if run not in self.figures:
                return f"the `{run}` run did not run"
        return "the run did not report it"

    def reader(self, run: str) -> Callable[..., Any]:
        """`get` bound to one run: reader("transport")("decide_unary", "rate")."""
        return lambda *path: self.get(run, *path)

    def errors_of(self, *runs: str) -> list[str]:
        return [f"`{run}`: {self.errors[run]}" for run in runs if run in self.errors]


def _cpu_split(by_process: Any, scale: float = 1.0) -> str:
    """ "journeyman 900, redis-server 80" from drive's server CPU per call by process name."""
    if not isinstance(by_process, Mapping) or not by_process:
        return "by process not measured"
    return ", ".join(f"{name} {shown(us * scale, 'µs')}" for name, us in sorted(by_process.items()))


def _failures(*results: Any) -> float | None:
    """Failed calls plus degraded answers over drive results; None when none was measured."""
    measured = [r for r in results if isinstance(r, Mapping)]
    if not measured:
        return None
    return float(sum(sum(r["errors"].values()) + r["degraded"] for r in measured))


def _failure_text(*results: Any) -> str:
    measured = [r for r in results if isinstance(r, Mapping)]
    return "; ".join(f"errors {r['errors']}, degraded {r['degraded']}" for r in measured)


def _per_event_cpu(result: Any, key: str) -> float | None:
    """A drive result's CPU µs per call, per event instead (a DecideBatch call has many)."""
    if not isinstance(result, Mapping) or not known(result.get(key)) or not result["events"]:
        return None
    return float(result[key]) * float(result["calls"]) / float(result["events"])


def _setting(plan: Any, key: str) -> str:
    value = plan.get(key) if isinstance(plan, Mapping) else None
    return shown(value) if known(value) else "?"


def transport(runs: Runs) -> SectionReport:
    get, missing = runs.reader("transport"), runs.missing("transport")
    plan = get("plan")
    echo_rate, echo_cpu = get("echo_unary", "rate"), get("echo_unary", "server_cpu_us_per_call")
    cpu = get("decide_unary", "server_cpu_us_per_call")
    split = _cpu_split(get("decide_unary", "server_cpu_by_process_us_per_call"))
    client = get("decide_unary", "client_cpu_us_per_call")
    why = (
        f"Decide takes {shown(cpu, 'µs')} of server CPU per call ({split}), the echo "
        f"{shown(echo_cpu, 'µs')}; the driver {shown(client, 'µs')} per call, on the same 2 cores"
    )
    p50s = (
        f"p50 {shown(get('decide_open', 'latency_us', 'p50'), 'µs')} against the echo's "
        f"{shown(get('echo_open', 'latency_us', 'p50'), 'µs')}"
    )
    workers_cpu = get("decide_unary_workers2", "server_cpu_us_per_call")
    decide_runs = (get("decide_unary"), get("decide_open"), get("decide_unary_workers2"))
    rows = [
        row("Decide, concurrency 64, closed loop", get("decide_unary", "rate"), "calls/s",
            ceiling=echo_rate, ceiling_name="echo", target=UNARY_THROUGHPUT, on_ratio=True,
            reason=why, missing=missing),
        row("Decide, the same with `--workers 2`", get("decide_unary_workers2", "rate"), "calls/s",
            ceiling=echo_rate, ceiling_name="echo", target=UNARY_THROUGHPUT, on_ratio=True,
            reason=f"{shown(workers_cpu, 'µs')} of server CPU per call, both workers",
            missing=missing),
        row(f"Decide p99 at half its closed-loop rate ({shown(get('half_rate_per_s'), 'calls/s')},"
            " open loop)", get("decide_open", "latency_us", "p99"), "µs",
            ceiling=get("echo_open", "latency_us", "p99"), ceiling_name="echo, same rate",
            target=UNARY_P99, on_ratio=True, reason=p50s, missing=missing),
        row("server CPU per call, concurrency 64", cpu, "µs", ceiling=echo_cpu,
            ceiling_name="echo"),
        row("p99, concurrency 64, closed loop", get("decide_unary", "latency_us", "p99"), "µs",
            ceiling=get("echo_unary", "latency_us", "p99"), ceiling_name="echo"),
        row("failed calls + degraded answers, Decide runs", _failures(*decide_runs), "",
            target=ZERO, reason=_failure_text(*decide_runs), missing=missing),
    ]  # fmt: skip
    how = (
        "`benchmarks.load.drive` against `benchmarks.load.echo` (a canned decision: no Redis, no "
        "engine) "
        "and `journeyman serve` (retail rules, embedded Redis), both on uvloop, one after the "
        f"other; closed loops of {_setting(plan, 'concurrency')} workers, "
        f"{_setting(plan, 'warmup_s')} s warm-up then {_setting(plan, 'closed_s')} s measured; "
        f"open loops at half Decide's closed-loop rate for {_setting(plan, 'open_s')} s, latency "
        "from each call's scheduled start; CPU from /proc of each server's process tree. The "
        "echo runs as one process in both rows."
    )
    return SectionReport(
        "Transport: Decide against the echo ceiling, unary", how, rows,
        errors=runs.errors_of("transport"),
    )  # fmt: skip


def streaming(runs: Runs) -> SectionReport:
    get, missing = runs.reader("streaming"), runs.missing("streaming")
    plan = get("plan")
    cpu, echo_cpu = (
        get("decide_stream", "server_cpu_us_per_call"),
        get("echo_stream", "server_cpu_us_per_call"),
    )
    shape = f"{_setting(plan, 'streams')} streams × window {_setting(plan, 'window')}"
    why = (
        f"DecideStream takes {shown(cpu, 'µs')} of server CPU per event "
        f"({_cpu_split(get('decide_stream', 'server_cpu_by_process_us_per_call'))}), the echo "
        f"{shown(echo_cpu, 'µs')}"
    )
    decide = get("decide_stream")
    rows = [
        row(f"DecideStream, {shape}", get("decide_stream", "rate"), "events/s",
            ceiling=get("echo_stream", "rate"), ceiling_name="stream echo",
            target=STREAM_THROUGHPUT, on_ratio=True, reason=why, missing=missing),
        row("server CPU per event", cpu, "µs", ceiling=echo_cpu, ceiling_name="stream echo"),
        row("p99 per event", get("decide_stream", "latency_us", "p99"), "µs",
            ceiling=get("echo_stream", "latency_us", "p99"), ceiling_name="stream echo"),
        row("failed + degraded events", _failures(decide), "", target=ZERO,
            reason=_failure_text(decide), missing=missing),
    ]  # fmt: skip
    how = (
        f"`benchmarks.load.drive --mode stream`, {shape} events in flight, closed loop, against "
        "the "
        f"echo and then `journeyman serve`; {_setting(plan, 'warmup_s')} s warm-up, "
        f"{_setting(plan, 'closed_s')} s measured."
    )
    return SectionReport("Streaming: DecideStream against the stream echo", how, rows,
                         errors=runs.errors_of("streaming"))  # fmt: skip


def _redis_py(runs: Runs, prefix: str) -> Any:
    """The redis_ceiling redis-py figures whose name starts with `prefix` (the first such)."""
    figures = runs.get("redis", "redis_py")
    if not isinstance(figures, Mapping):
        return None
    return next((v for k, v in figures.items() if k.startswith(prefix)), None)


def batch(runs: Runs) -> SectionReport:
    get, missing = runs.reader("batch"), runs.missing("batch")
    plan, result = get("plan"), get("decide_batch")
    server = _per_event_cpu(result, "server_cpu_us_per_call")
    client = _per_event_cpu(result, "client_cpu_us_per_call")
    by_process = get("decide_batch", "server_cpu_by_process_us_per_call")
    scale = ratio(get("decide_batch", "calls"), get("decide_batch", "events")) or 0.0
    both = (server or 0.0) + (client or 0.0)
    why = (
        f"{shown(server, 'µs')} of server CPU per event ({_cpu_split(by_process, scale)}) and "
        f"{shown(client, 'µs')} of the driver's: 2 cores give at most about "
        f"{shown(2e6 / both if both else None, 'events/s')}"
    )
    pipelined = _redis_py(runs, "unix pipelined N=64")
    errors = sum(result["errors"].values()) if isinstance(result, Mapping) else None
    rows = [
        row(f"DecideBatch, {_setting(plan, 'batch')} events a call, "
            f"{_setting(plan, 'in_flight')} calls in flight", get("decide_batch", "events_per_s"),
            "events/s", ceiling=pipelined and pipelined.get("events_per_s"),
            ceiling_name="Redis alone, 64 events a pipeline", target=BATCH_EVENTS_PER_S,
            reason=why, missing=missing),
        row("server CPU per event", server, "µs",
            ceiling=runs.get("engine", "zen", "decide_us_per_event"),
            ceiling_name="decide() alone"),
        row("degraded events (not committed)", get("decide_batch", "degraded"), "", target=ZERO,
            reason="Redis did not take the commits in time", missing=missing),
        row("failed calls and items", errors, "", target=ZERO,
            reason=str(get("decide_batch", "errors")), missing=missing),
    ]  # fmt: skip
    how = (
        f"`benchmarks.load.drive --mode batch` against `journeyman serve` (retail rules, embedded "
        f"Redis): {_setting(plan, 'in_flight')} workers each sending DecideBatch calls of "
        f"{_setting(plan, 'batch')} events back to back, over {_setting(plan, 'customers')} "
        f"customers; {_setting(plan, 'warmup_s')} s warm-up, {_setting(plan, 'closed_s')} s "
        "measured; an event counts as committed when its decision is not degraded."
    )
    return SectionReport("DecideBatch: events per second, committed", how, rows,
                         errors=runs.errors_of("batch"))  # fmt: skip


def redis_work(runs: Runs) -> SectionReport:
    get, missing = runs.reader("transport"), runs.missing("transport")
    unary, lockstep = get("redis_unary") or {}, get("redis_lockstep") or {}
    store = _redis_py(runs, "unix Store")
    store_events = store and store.get("events_per_s")
    redis_cpu = get("decide_unary", "server_cpu_by_process_us_per_call", "redis-server")
    per_trip = f"{shown(unary.get('commands_per_pipeline'))} commands per round trip"
    rows = [
        row("round trips per event, concurrency 64", unary.get("pipelines_per_event"), "",
            target=ROUND_TRIPS_BATCHED, reason=per_trip, missing=missing),
        row("round trips per event, one call at a time", lockstep.get("pipelines_per_event"), "",
            target=ROUND_TRIPS_PER_EVENT,
            reason=f"{shown(lockstep.get('commands_per_event'))} commands per event",
            missing=missing),
        row("commands per event, concurrency 64", unary.get("commands_per_event"), ""),
        row("commands per round trip, concurrency 64", unary.get("commands_per_pipeline"), ""),
        row("Redis CPU per event, Decide at concurrency 64", redis_cpu, "µs",
            ceiling=store and store.get("redis_cpu_us_per_event"),
            ceiling_name="Redis alone, Store ×64"),
        row("Decide at concurrency 64 against Redis alone (the service's Store, 64 in flight)",
            get("decide_unary", "rate"), "events/s", ceiling=store_events,
            ceiling_name="Redis alone"),
        row("Redis alone, 64 events a pipeline (redis-py, unix socket)",
            (_redis_py(runs, "unix pipelined N=64") or {}).get("events_per_s"), "events/s"),
        row("Redis alone, redis-benchmark ×16 pipelined, one of each command (unix socket)",
            runs.get("redis", "redis_benchmark", "unix P16 events_per_s"), "events/s"),
    ]  # fmt: skip
    how = (
        "Round trips and commands from the service's /metrics (`journeyman_redis_pipelines_total`,"
        " `journeyman_redis_commands_total`) read before and after the Decide runs of section 1, "
        "divided by the Decide calls in between (`journeyman_call_seconds_count`); the journey "
        "statistics' own pipeline (every 50 ms, off the hot path) is not in those counters. Redis "
        f"alone: `benchmarks.redis.ceiling` (Redis {runs.get('redis', 'redis_version') or '?'}, "
        "its own redis-server configured like the embedded one, the service's commands)."
    )
    return SectionReport("Redis work per event", how, rows,
                         errors=runs.errors_of("transport", "redis"))  # fmt: skip


def _agreement(zen: Any) -> str:
    if not isinstance(zen, Mapping):
        return "?"
    events = zen["events"]
    return (
        f"stage {zen['agree_stage_events']}/{events}, eligible actions "
        f"{zen['agree_eligible_events']}/{events}, offers {zen['agree_offers_events']}/{events}"
    )


def engine(runs: Runs) -> SectionReport:
    get, missing = runs.reader("engine"), runs.missing("engine")
    zen = get("zen")
    decide_us, bare = get("zen", "decide_us_per_event"), get("ceilings_us", "numba")
    zen_us, evaluate_us = get("zen", "zen_us_per_event"), get("zen", "zen_evaluate_us_per_event")
    readme_us = get("zen", "zen_create_decision_us_per_event")
    one_core = 1e6 / decide_us if known(decide_us) and decide_us > 0 else None

    def beside_decide(label: str, key: str) -> Row:
        return row(label, get("zen", f"{key}_us_per_event"), "µs", ceiling=decide_us,
                   ceiling_name="decide()")  # fmt: skip

    rows = [
        row("decide(), retail rules, per event", decide_us, "µs", ceiling=bare,
            ceiling_name="bare numba call", target=DECIDE_US, missing=missing,
            reason=f"{shown(ratio(decide_us, bare), '×')} a bare numba call; "
            "`benchmarks/results/kernels.md` shows where it goes"),
        row("zen-engine per event: harness + `ZenEngine.evaluate` (its fastest per-event API)",
            zen_us, "µs", ceiling=decide_us, ceiling_name="decide()", target=ZEN_RATIO,
            on_ratio=True, missing=missing,
            reason=f"zen-engine takes {shown(zen_us, 'µs')} per event here, "
            f"{shown(evaluate_us, 'µs')} of it in `ZenEngine.evaluate`; its README's "
            f"`create_decision` API: {shown(ratio(readme_us, decide_us), '×')}"),
        beside_decide("zen-engine: `ZenEngine.evaluate` alone", "zen_evaluate"),
        beside_decide("zen-engine: `create_decision(graph).evaluate` (its README's example)",
                      "zen_create_decision"),
        beside_decide("zen-engine: `evaluate_batch`, every event in one call", "zen_batch"),
        beside_decide("zen-engine: `async_evaluate`, 64 in flight", "zen_async"),
        row("zen-engine CPU per event, harness + evaluate", get("zen", "zen_cpu_us_per_event"),
            "µs", ceiling=get("zen", "decide_cpu_us_per_event"), ceiling_name="decide() CPU"),
        row("decide() batched, one core", None, "events/s", ceiling=one_core,
            ceiling_name="decide() one event at a time", target=BATCHED_DECIDE,
            missing="not built: the engine has no batched decide() API"
            + (f"; one decide() per event gives {shown(one_core, 'events/s')} on one core"
               if one_core else "")),
    ]  # fmt: skip
    how = (
        f"`benchmarks.engine.peer_zen`: {shown(get('zen', 'events'))} simulated retail events of "
        f"{shown(get('zen', 'shoppers'))} shoppers through decide() and through zen-engine "
        f"{get('zen', 'zen_engine_version') or '?'} running the same journey as a JDM graph, one "
        f"event at a time, median of {get('zen', 'repeats') or '?'} replays (wall time); both "
        f"answered alike on {_agreement(zen)}. Ceilings: `benchmarks.engine.ceilings` on the same "
        "events."
    )
    after = []
    if note := get("zen", "zen_async_note"):
        after.append(f"zen-engine async probe: {note}.")
    table = runs.get("kernels", "figures_table")
    if isinstance(table, list) and table:
        after.append(
            "From `benchmarks/results/kernels.md`, written in this run by "
            "`benchmarks.engine.kernels` "
            "(start-up, ceilings, the 200-rule journey, the reference evaluator):\n\n"
            + markdown_table(table[0], table[1:])
        )
    return SectionReport("Engine: decide() alone and beside zen-engine", how, rows, after,
                         runs.errors_of("engine", "kernels"))  # fmt: skip


def replay(runs: Runs) -> SectionReport:
    get, missing = runs.reader("replay"), runs.missing("replay")
    events_per_s = get("events_per_s")
    failed = None
    if known(get("errors_total")):
        failed = get("errors_total") + get("unanswered_events") + get("degraded")
    why = (
        f"server CPU {shown(get('server_cpu_us_per_event'), 'µs')} per event, driver "
        f"{shown(get('client_cpu_us_per_event'), 'µs')}"
    )
    shape = f"{get('streams') or '?'} streams × window {get('window') or '?'}"
    rows = [
        row(f"BPIC 2012, {shown(get('events'))} events through DecideStream ({shape})",
            events_per_s, "events/s", ceiling=runs.get("streaming", "echo_stream", "rate"),
            ceiling_name="stream echo", target=REPLAY_RATE, on_ratio=True, reason=why,
            missing=runs.missing("replay", "streaming")),
        row("errors + unanswered + degraded events", failed, "", target=ZERO,
            reason=str(get("errors")), missing=missing),
        row("customers whose stage differs from decide()'s own replay",
            get("customers_mismatched"), "", target=ZERO,
            reason=f"e.g. {get('mismatched_examples')}", missing=missing),
        row("the replay against decide() alone on the same log, in-process", events_per_s,
            "events/s",
            ceiling=get("engine_in_process_events_per_s"), ceiling_name="decide() alone"),
    ]  # fmt: skip
    service, engine_counts = get("stage_counts_service") or {}, get("stage_counts_engine") or {}
    stages = sorted(set(service) | set(engine_counts))
    after = []
    if stages:
        counts = [(s, shown(service.get(s, 0)), shown(engine_counts.get(s, 0))) for s in stages]
        same = "the same" if get("stage_counts_match") else "**different**"
        after.append(
            f"Stage distribution at the end ({same} in the service's Redis statistics and in "
            "decide()'s replay):\n\n"
            + markdown_table(("stage", "customers (service)", "customers (decide())"), counts)
        )
    how = (
        "`benchmarks.load.replay`: every application of `../shared/data/bpic2012/` is one "
        "customer, "
        "its events in order over one DecideStream (the loan_application journey, a fresh "
        "service and embedded Redis); afterwards every customer's stage is read back with "
        "GetCustomer and compared with decide()'s replay of the same log."
    )
    return SectionReport("Real data: the BPIC 2012 log through DecideStream", how, rows, after,
                         runs.errors_of("replay"))  # fmt: skip


def memory(runs: Runs) -> SectionReport:
    get, missing = runs.reader("memory"), runs.missing("memory")
    why = (
        f"the decisions hash (up to {get('decisions_kept_max') or '?'} decisions of "
        f"{shown(get('decision_bytes_mean'), 'B')}) takes "
        f"{shown(get('decisions_key_bytes_mean'), 'B')} and the state hash "
        f"{shown(get('state_key_bytes_mean'), 'B')} of the mean "
        f"{shown(get('bytes_per_customer_mean'), 'B')}"
    )
    rows = [
        row(f"Redis bytes per customer after a year, p99 ({get('customers') or '?'} customers)",
            get("bytes_per_customer_p99"), "B", target=BYTES_PER_CUSTOMER, reason=why,
            missing=missing),
        row("state hash per customer, mean", get("state_key_bytes_mean"), "B",
            ceiling=get("state_blob_bytes_mean"), ceiling_name="its msgpack state"),
        row("decisions hash per customer, mean", get("decisions_key_bytes_mean"), "B"),
        row("server RSS under load, peak", get("server_rss_mib_peak"), "MiB",
            ceiling=get("server_rss_mib_at_start"), ceiling_name="idle, at start",
            target=SERVER_RSS_MIB, missing=missing,
            reason=f"{shown(get('server_rss_mib_at_start'), 'MiB')} before any load"),
        row("embedded Redis RSS under load, peak", get("redis_rss_mib_peak"), "MiB"),
    ]  # fmt: skip
    how = (
        f"`benchmarks.redis.memory`: simulated shoppers identified, then visiting on "
        f"{get('visit_days_per_customer') or '?'} days of the last year "
        f"({shown(get('events_per_customer_mean'))} events each, their own timestamps) over "
        "DecideStream; `MEMORY USAGE … SAMPLES 0` of each customer's keys. RSS from /proc every "
        f"100 ms during a closed loop of Decide ({shown(get('load_calls_per_s'), 'calls/s')})."
    )
    return SectionReport("Memory: Redis per customer, server RSS", how, rows,
                         errors=runs.errors_of("memory"))  # fmt: skip


def _overload_rows(figures: Mapping[str, Any], missing: str) -> list[Row]:
    """R, then per multiple of R its goodput and its accepted calls' p99. When the driver fell
    behind its schedule, it offered less than planned and its latencies include its own delay:
    both figures are shown, not judged."""
    sustainable, cap = figures["sustainable_per_s"], figures["max_concurrent_calls"]
    bound_us = cap / sustainable * 1e6 if sustainable else None
    rows = [row("sustainable rate R (closed loop, concurrency 64)", sustainable, "calls/s")]
    for run in figures["runs"]:
        times = f"{run['multiple']:g}× R"
        lag = f"driver loop lag up to {shown(run['driver_loop_lag_ms_max'], 'ms')}"
        shed = (
            f"{shown(run['resource_exhausted'])} RESOURCE_EXHAUSTED, "
            f"{shown(run['cancelled'])} CANCELLED; {lag}"
        )
        goodput = row(
            f"goodput at {times} ({shown(run['offered_per_s'], 'calls/s')} offered)",
            run["goodput_per_s"], "calls/s", ceiling=sustainable, ceiling_name="R",
            target=OVERLOAD_GOODPUT, on_ratio=True, reason=shed,
            missing=f"the driver fell behind its schedule ({lag}): its window is not trusted",
        )  # fmt: skip
        p99 = row(
            f"p99 of accepted calls at {times}", run["ok_p99_us"], "µs", ceiling=bound_us,
            ceiling_name=f"cap {cap} ÷ R", target=OVERLOAD_P99, on_ratio=True, reason=shed,
            missing=missing,
        )  # fmt: skip
        if not run["driver_kept_schedule"]:
            # It did not offer the planned load on time: neither figure answers the question.
            behind = f"{NOT_MEASURED}: the driver fell behind its schedule ({lag})"
            goodput, p99 = replace(goodput, verdict=behind), replace(p99, verdict=behind)
        rows += [goodput, p99]
    return rows


def _overload_table(figures: Mapping[str, Any]) -> str:
    header = ("offered", "goodput/s", "RESOURCE_EXHAUSTED", "CANCELLED", "other",
              "OK p50 µs", "OK p99 µs", "driver loop lag ms", "driver kept schedule")  # fmt: skip
    cells = [
        (f"{r['multiple']:g}× ({shown(r['offered_per_s'])}/s)", shown(r["goodput_per_s"]),
         shown(r["resource_exhausted"]), shown(r["cancelled"]),
         shown(sum(r["other_errors"].values()) + r["client_overloaded"]), shown(r["ok_p50_us"]),
         shown(r["ok_p99_us"]), shown(r["driver_loop_lag_ms_max"]),
         "yes" if r["driver_kept_schedule"] else "no")
        for r in figures["runs"]
    ]  # fmt: skip
    return markdown_table(header, cells)


def overload(runs: Runs) -> SectionReport:
    figures, missing = runs.figures.get("overload"), runs.missing("overload")
    if isinstance(figures, Mapping):
        rows, after = _overload_rows(figures, missing), [_overload_table(figures)]
    else:
        rows = [row("goodput at 1–8× R", None, "calls/s", target=OVERLOAD_GOODPUT,
                    missing=missing)]  # fmt: skip
        after = []
    how = (
        "`benchmarks.load.overload`: R from a closed loop of Decide at concurrency 64, then open "
        "loops "
        "at 1, 2, 4 and 8× R against the same service (admission cap "
        f"{runs.get('overload', 'max_concurrent_calls') or '?'} calls); latency of the accepted "
        "calls from their scheduled start. Our reading of issue 6: goodput ≥ 0.8× R, p99 within "
        "twice the time R takes to serve a full admission queue."
    )
    return SectionReport("Overload: goodput at 1–8× the sustainable rate (issue 6)", how, rows,
                         after, runs.errors_of("overload"))  # fmt: skip


def locust(runs: Runs) -> SectionReport:
    get, missing = runs.reader("locust"), runs.missing("locust")
    failed = None
    if known(get("failures")):
        failed = get("failures") + len(get("user_errors") or [])
    messages = [*(get("failure_messages") or []), *(get("user_errors") or [])]
    rows = [
        row(f"failures, {get('users') or '?'} users, {get('duration_s') or '?'} s", failed, "",
            target=ZERO, reason="; ".join(messages[:3]), missing=missing),
        row("requests per second", get("requests_per_s"), "calls/s",
            ceiling=runs.get("transport", "decide_unary", "rate"),
            ceiling_name="drive, Decide at concurrency 64"),
        row("p50", get("p50_us"), "µs"),
        row("p99", get("p99_us"), "µs"),
    ]  # fmt: skip
    by_request = get("by_request") or {}
    after = []
    if by_request:
        cells = [
            (name, shown(f["requests"]), shown(f["failures"]), shown(f["requests_per_s"]),
             shown(f["p50_us"]), shown(f["p99_us"]))
            for name, f in by_request.items()
        ]  # fmt: skip
        header = ("request", "requests", "failures", "req/s", "p50 µs", "p99 µs")
        after.append(markdown_table(header, cells))
    how = (
        f"`benchmarks.load.run_locust`: locust {get('locust_version') or '?'} headless, the "
        f"locustfile's simulated shoppers and CDNOW replay (gevent gRPC users timing in µs), "
        f"think time {get('think_ms')} ms, against a fresh `journeyman serve`; locust keeps "
        "percentiles to two significant figures."
    )
    return SectionReport("Locust: hundreds of users on the hot path", how, rows, after,
                         runs.errors_of("locust"))  # fmt: skip


SECTIONS: tuple[Callable[[Runs], SectionReport], ...] = (
    transport, streaming, batch, redis_work, engine, replay, memory, overload, locust,
)  # fmt: skip
