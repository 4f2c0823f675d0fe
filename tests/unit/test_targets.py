"""The results report: targets, ratios, verdicts, the sections' figures and their Markdown.

Behaviour only: the figures are made up (in the shapes the benchmarks produce), nothing is timed.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import pytest

from benchmarks.load.drive import Result, Turn
from benchmarks.load.overload import summarise_run
from benchmarks.report import sections, targets
from benchmarks.report.markdown import (
    document,
    figure_cells,
    judged_text,
    markdown_table,
    shown,
    tally,
)
from benchmarks.report.sections import Runs
from benchmarks.report.table import Figure, Section
from benchmarks.report.targets import MET, NONE, Target, per_event, ratio, verdict


def drive_result(
    rate: float,
    *,
    server_cpu_us: float = 900.0,
    p99_us: float = 40_000.0,
    errors: dict[str, int] | None = None,
    degraded: int = 0,
    calls: int = 1000,
    events: int = 1000,
    rate_target: float | None = None,
) -> Result:
    """A `benchmarks.load.drive` result as the orchestrator stores it."""
    return Result(
        target="127.0.0.1:1", mode="unary", concurrency=64, rate_target=rate_target,
        duration_s=5.0, calls=calls, rate=rate, events=events, events_per_s=rate * events / calls,
        degraded=degraded, latency_us={"p50": p99_us / 4, "p90": p99_us / 2, "p99": p99_us,
                                       "p99.9": p99_us * 2},
        errors=errors or {}, client_cpu_us_per_call=300.0, server_cpu_us_per_call=server_cpu_us,
        server_cpu_by_process_us_per_call={"journeyman": server_cpu_us * 0.9,
                                           "redis-server": server_cpu_us * 0.1},
    )  # fmt: skip


class Row(NamedTuple):
    """A figure's line as the renderer writes it, and the value its target reads, as shown."""

    figure: str
    measured: str
    ceiling: str
    ratio: str
    target: str
    verdict: str
    judged: str


def row(figure: Figure) -> Row:
    return Row(*figure_cells(figure), judged_text(figure))


def all_rows(section: Section) -> dict[str, Row]:
    return {f.name: row(f) for f in section.figures}


def judged_rows(section: Section) -> dict[str, Row]:
    return {name: r for name, r in all_rows(section).items() if r.target != NONE}


# --- targets, ratios, verdicts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "bound", "value", "holds"),
    [
        (">=", 0.6, 0.6, True), (">=", 0.6, 0.59, False), ("<=", 2.0, 2.0, True),
        ("<=", 2.0, 2.01, False), ("<", 2.0, 2.0, False), ("<", 2.0, 1.99, True),
        ("==", 0, 0, True), ("==", 0, 1, False),
    ],
)  # fmt: skip
def test_a_target_holds_on_its_side_of_the_bound(
    op: str, bound: float, value: float, holds: bool
) -> None:
    assert Target(op, bound, "shown").holds(value) is holds


@pytest.mark.parametrize(
    ("measured", "ceiling"),
    [(None, 1.0), (1.0, None), (1.0, 0.0), (math.nan, 1.0), (1.0, math.inf), (True, 1.0)],
)
def test_ratio_is_none_when_either_side_was_not_measured(measured: Any, ceiling: Any) -> None:
    assert ratio(measured, ceiling) is None


def test_ratio_is_the_figure_over_its_ceiling() -> None:
    assert ratio(1500, 3000) == 0.5


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (None, "µs", NONE), (math.nan, "µs", NONE), (12_345.6, "calls/s", "12,346 calls/s"),
        (29.34, "µs", "29.3 µs"), (0.123456, "×", "0.123×"), (2.0, "", "2"), (100, "B", "100 B"),
    ],
)  # fmt: skip
def test_shown_separates_thousands_and_keeps_three_digits_below_100(
    value: Any, unit: str, text: str
) -> None:
    assert shown(value, unit) == text


def test_verdicts_say_met_not_met_or_not_measured_with_their_reason() -> None:
    at_least = Target(">=", 0.6, "≥ 0.6×")
    assert verdict(at_least, 0.7, "unused") == MET
    assert verdict(at_least, 0.5, "CPU 900 µs per call") == "not met: CPU 900 µs per call"
    assert verdict(at_least, None, "the run failed") == "not measured: the run failed"
    assert verdict(at_least, 0.5) == "not met"
    assert verdict(None, 0.5, "whatever") == NONE


def test_a_row_judged_on_the_ratio_shows_the_ceiling_and_the_ratio() -> None:
    made = row(Figure("Decide", 1500.0, "calls/s", ceiling=3000.0, ceiling_name="echo",
               target=targets.UNARY_THROUGHPUT, on_ratio=True, note="CPU-bound"))  # fmt: skip
    assert made == Row(
        "Decide", "1,500 calls/s", "3,000 calls/s (echo)", "0.5×", "≥ 0.6× echo",
        "not met: CPU-bound", "0.5×",
    )  # fmt: skip


def test_a_row_judged_on_the_figure_ignores_the_ratio() -> None:
    made = row(Figure("decide()", 15.0, "µs", ceiling=0.2, ceiling_name="bare numba call",
               target=targets.DECIDE_US))  # fmt: skip
    assert (made.ratio, made.judged, made.verdict) == ("75×", "15 µs", MET)


def test_a_row_without_its_figure_says_why_it_is_missing() -> None:
    made = row(Figure("Decide", None, "calls/s", ceiling=3000.0, target=targets.UNARY_THROUGHPUT,
               on_ratio=True, note="not this", missing="the `transport` run failed"))  # fmt: skip
    assert made.measured == NONE
    assert made.verdict == "not measured: the `transport` run failed"


def test_a_row_without_a_target_has_no_verdict() -> None:
    made = row(Figure("server CPU per call", 900.0, "µs", ceiling=300.0, ceiling_name="echo"))
    assert (made.ratio, made.target, made.verdict, made.judged) == ("3×", NONE, NONE, NONE)


def test_redis_work_per_event_is_the_difference_of_two_scrapes_over_the_events() -> None:
    before = {"events": 100.0, "pipelines": 80.0, "commands": 300.0}
    after = {"events": 1100.0, "pipelines": 580.0, "commands": 3300.0}
    figures = per_event(before, after)
    assert figures["pipelines_per_event"] == 0.5
    assert figures["commands_per_event"] == 3.0
    assert figures["commands_per_pipeline"] == 6.0


def test_redis_work_per_event_is_unknown_without_events() -> None:
    same = {"events": 5.0, "pipelines": 5.0, "commands": 5.0}
    figures = per_event(same, same)
    assert figures["pipelines_per_event"] is None
    assert figures["commands_per_pipeline"] is None


# --- Markdown ------------------------------------------------------------------------------------


def test_markdown_table_escapes_pipes_and_newlines_in_cells() -> None:
    table = markdown_table(("a", "b"), [("x|y", "one\ntwo")])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | one two |"]


def test_document_has_the_machine_the_tally_and_every_section_in_order() -> None:
    first = Section("First", "how one", [
        Figure("met one", 1.0, "", target=Target(">=", 1, "≥ 1")),
        Figure("context", 5.0, "µs"),
    ])  # fmt: skip
    second = Section(
        "Second", "how two", [Figure("missed", 0.0, "", target=Target(">=", 1, "≥ 1"), note="r")],
        after=["extra block"], errors=["`second`: boom"],
    )  # fmt: skip
    text = document("Results", ["intro line"], {"CPU": "AMD EPYC"}, [first, second])
    assert text.index("- **CPU**: AMD EPYC") < text.index("## Targets at a glance")
    assert "1 met, 1 not met, 0 not measured." in text
    assert text.index("## 1. First") < text.index("## 2. Second")
    assert "**Error**: `second`: boom" in text
    assert "| 2 | missed | 0 | ≥ 1 | not met: r |" in text
    assert "How: how two\n\nextra block" in text
    assert "| context |" not in text.split("## 1. First")[0]  # context rows: not in the summary


def test_tally_counts_each_kind_of_verdict() -> None:
    section = Section("S", "", [
        Figure("a", 1.0, "", target=targets.ZERO),
        Figure("b", 0.0, "", target=targets.ZERO),
        Figure("c", None, "", target=targets.ZERO, missing="did not run"),
    ])  # fmt: skip
    assert tally([section]) == {"met": 1, "not met": 1, "not measured": 1}


# --- sections ------------------------------------------------------------------------------------


def test_every_section_builds_from_no_figures_and_says_why_each_target_is_not_measured() -> None:
    runs = Runs({}, {"transport": "RuntimeError: boom"})
    for build in sections.SECTIONS:
        section = build(runs)
        assert section.figures, build.__name__
        for judged in judged_rows(section).values():
            assert judged.verdict.startswith("not measured: "), (build.__name__, judged)
    assert sections.transport(runs).errors == ["`transport`: RuntimeError: boom"]
    first = next(iter(judged_rows(sections.transport(runs)).values()))
    assert "`transport` run failed" in first.verdict


def streaming_figures(echo_rate: float) -> dict[str, Any]:
    return {
        "echo_stream": drive_result(echo_rate, server_cpu_us=100.0),
        "decide_stream": drive_result(1000.0, server_cpu_us=400.0),
    }


def transport_figures(decide_rate: float, decide_p99_us: float) -> dict[str, Any]:
    return {
        "plan": {"concurrency": 64, "warmup_s": 2.0, "closed_s": 8.0, "open_s": 6.0},
        "echo_unary": drive_result(3000.0, server_cpu_us=300.0),
        "decide_unary": drive_result(decide_rate, server_cpu_us=900.0),
        "decide_unary_workers2": drive_result(2000.0),
        "half_rate_per_s": decide_rate / 2,
        "decide_open": drive_result(decide_rate / 2, p99_us=decide_p99_us, rate_target=750.0),
        "echo_open": drive_result(decide_rate / 2, p99_us=1000.0, rate_target=750.0),
        "redis_unary": per_event({"events": 0, "pipelines": 0, "commands": 0},
                                 {"events": 1000, "pipelines": 400, "commands": 3000}),
        "redis_lockstep": per_event({"events": 0, "pipelines": 0, "commands": 0},
                                    {"events": 100, "pipelines": 200, "commands": 300}),
    }  # fmt: skip


def test_transport_judges_throughput_and_p99_as_ratios_of_the_echo() -> None:
    runs = Runs({"transport": transport_figures(decide_rate=1500.0, decide_p99_us=1500.0)})
    rows = judged_rows(sections.transport(runs))
    throughput = rows["Decide, concurrency 64, closed loop"]
    assert (throughput.ratio, throughput.verdict[:8]) == ("0.5×", "not met:")
    assert "900 µs of server CPU per call" in throughput.verdict  # the measured reason
    assert "300 µs" in throughput.verdict  # against the echo's
    assert rows["Decide, the same with `--workers 2`"].verdict == MET  # 2000 / 3000 ≥ 0.6
    p99 = rows["Decide p99 at half its closed-loop rate (750 calls/s, open loop)"]
    assert (p99.ratio, p99.verdict) == ("1.5×", MET)
    assert rows["failed calls + degraded answers, Decide runs"].verdict == MET


def test_the_half_rate_p99_says_what_a_call_cost_the_event_loop_there_and_how_busy_it_was() -> None:
    figures = transport_figures(decide_rate=1500.0, decide_p99_us=9000.0)
    figures["decide_unary"]["server_loop_cpu_us_per_call"] = 300.0
    figures["decide_open"]["server_loop_cpu_us_per_call"] = 800.0  # 750 calls/s: 0.6 of a core
    figures["echo_open"]["server_loop_cpu_us_per_call"] = 200.0
    rows = all_rows(sections.transport(Runs({"transport": figures})))
    p99 = rows["Decide p99 at half its closed-loop rate (750 calls/s, open loop)"]
    assert p99.verdict.startswith("not met: p50 2,250 µs against the echo's 250 µs")
    assert "took the event loop's thread 800 µs (300 µs in the closed loop" in p99.verdict
    assert p99.verdict.endswith("busy 60% of the run")
    cost = rows["the event loop's thread, CPU per call, at half the closed-loop rate (open loop)"]
    assert cost.ratio == "2.67×"
    busy = rows["the event loop's thread busy at half the closed-loop rate (share of one core)"]
    assert (busy.measured, busy.ceiling, busy.ratio) == ("0.6", "0.15 (echo, same rate)", "4×")
    del figures["decide_open"]["server_loop_cpu_us_per_call"]  # results written before
    rows = all_rows(sections.transport(Runs({"transport": figures})))
    p99 = rows["Decide p99 at half its closed-loop rate (750 calls/s, open loop)"]
    assert p99.verdict.startswith("not met: p50") and "event loop" not in p99.verdict


def test_transport_reads_one_call_at_a_time_against_the_bare_decide_too() -> None:
    figures = transport_figures(2000.0, 1000.0)
    figures["echo_lockstep"] = drive_result(2000.0, server_cpu_us=250.0, p99_us=2000.0)
    figures["decide_lockstep"] = drive_result(700.0, server_cpu_us=1000.0, p99_us=6000.0)
    figures["bare_lockstep"] = drive_result(800.0, server_cpu_us=800.0, p99_us=4000.0)
    rows = all_rows(sections.transport(Runs({"transport": figures})))
    bare = rows["bare Decide p50, one call at a time (the parts and one commit, nothing else)"]
    assert (bare.measured, bare.ratio) == ("1,000 µs", "2×")  # p50s: 4000 / 4 against 2000 / 4
    assert rows["bare Decide, server CPU per call, one call at a time"].ratio == "3.2×"
    assert rows["Decide p50, one call at a time, against the bare Decide"].ratio == "1.5×"
    assert rows["server CPU per call, one call at a time, against the bare Decide"].ratio == "1.25×"
    del figures["bare_lockstep"]  # results written before it was measured
    rows = all_rows(sections.transport(Runs({"transport": figures})))
    assert rows["bare Decide, server CPU per call, one call at a time"].measured == "—"


def test_transport_counts_failed_calls_and_degraded_answers() -> None:
    figures = transport_figures(2000.0, 1000.0)
    figures["decide_open"] = drive_result(1000.0, errors={"UNAVAILABLE": 2}, degraded=3)
    rows = judged_rows(sections.transport(Runs({"transport": figures})))
    failures = rows["failed calls + degraded answers, Decide runs"]
    assert failures.measured == "5"
    assert "UNAVAILABLE" in failures.verdict


def test_redis_round_trips_are_judged_batched_and_alone() -> None:
    runs = Runs({"transport": transport_figures(2000.0, 1000.0)})
    rows = judged_rows(sections.redis_work(runs))
    assert rows["round trips per event, concurrency 64"].judged == "0.4"
    assert rows["round trips per event, concurrency 64"].verdict == MET
    assert rows["round trips per event, one call at a time"].verdict == MET  # exactly 2


def test_batch_reads_cpu_per_event_from_cpu_per_call() -> None:
    figures = {
        "plan": {"batch": 200, "in_flight": 4, "customers": 20_000},
        "decide_batch": drive_result(25.0, server_cpu_us=20_000.0, calls=100, events=20_000),
    }
    rows = all_rows(sections.batch(Runs({"batch": figures})))
    assert rows["server CPU per event"].measured == "100 µs"  # 20,000 µs a call of 200 events
    throughput = rows["DecideBatch, 200 events a call, 4 calls in flight"]
    assert throughput.measured == "5,000 events/s"
    assert throughput.verdict.startswith("not met: 100 µs of server CPU per event")


def test_the_engine_reports_batched_decide_beside_one_at_a_time() -> None:
    agreed = {"agree_stage_events": 10, "agree_eligible_events": 10, "agree_offers_events": 10}
    zen = {"decide_us_per_event": 25.0, "zen_us_per_event": 1500.0, "events": 10, **agreed}
    many = {
        "retail_many_per_s": 250_000.0, "retail_encode_and_many_per_s": 180_000.0,
        "retail_decide_per_s": 40_000.0, "bpic_many_s": 1.4, "bpic_from_file_s": 4.0,
        "bpic_decide_s": 9.0,
    }  # fmt: skip
    engine = {"zen": zen, "ceilings_us": {"numba": 0.25, "python": 0.15}}
    rows = judged_rows(sections.engine(Runs({"engine": {**engine, "many": many}})))
    assert rows["decide(), retail rules, per event"].verdict.startswith("not met: 100×")
    zen_row = next(r for name, r in rows.items() if name.startswith("zen-engine"))
    assert (zen_row.ratio, zen_row.verdict) == ("60×", MET)
    batched = rows["decide() batched, one core"]
    assert (batched.ratio, batched.verdict) == ("6.25×", MET)
    # A run from before decide_many() existed: the figure is missing, not judged.
    old = judged_rows(sections.engine(Runs({"engine": engine})))["decide() batched, one core"]
    assert old.verdict.startswith("not measured")


def test_overload_does_not_judge_a_run_whose_driver_fell_behind() -> None:
    kept = Result(
        target="t", mode="unary", concurrency=64, rate_target=1000.0, duration_s=5.0, calls=5000,
        rate=1000.0, events=5000, events_per_s=1000.0, degraded=0,
        latency_us={"p50": 1e5, "p90": 2e5, "p99": 3e5, "p99.9": 4e5}, errors={},
        client_cpu_us_per_call=300.0, server_cpu_us_per_call=900.0,
        server_cpu_by_process_us_per_call={},
    )  # fmt: skip
    runs_figures = [
        summarise_run(kept, 1.0, planned_s=5.0, loop_lag_ms=5.0),
        summarise_run(kept, 2.0, planned_s=5.0, loop_lag_ms=500.0),
    ]
    figures = {"sustainable_per_s": 1000.0, "max_concurrent_calls": 512, "runs": runs_figures}
    rows = judged_rows(sections.overload(Runs({"overload": figures})))
    assert rows["p99 of accepted calls at 1× R"].verdict == MET  # 0.3 s within 2 × 0.512 s
    behind = rows["p99 of accepted calls at 2× R"]
    assert behind.verdict.startswith("not measured: the driver fell behind its schedule")
    assert rows["goodput at 1× R (1,000 calls/s offered)"].verdict == MET
    assert rows["goodput at 2× R (1,000 calls/s offered)"].verdict.startswith("not measured: ")
    assert rows["goodput at 2× R (1,000 calls/s offered)"].measured == "1,000 calls/s"  # shown


def goals_figures(round_trips_with_goals: float) -> dict[str, Any]:
    def work(pipelines: float, commands: float) -> dict[str, Any]:
        return {**per_event({"events": 0, "pipelines": 0, "commands": 0},
                            {"events": 100, "pipelines": pipelines, "commands": commands}),
                "redis_commands_per_event": commands / 100 + 5}  # fmt: skip

    def year(state_bytes: float) -> dict[str, Any]:
        return {"customers": 150, "bytes_per_customer_mean": state_bytes + 6000,
                "bytes_per_customer_p99": state_bytes + 7000, "state_key_bytes_mean": state_bytes,
                "decisions_key_bytes_mean": 6000}  # fmt: skip

    def load(rate: float, pipelines: float) -> dict[str, Any]:
        return {"decide": [drive_result(rate), drive_result(rate + 100)],
                "decide_redis": [work(40, 300)] * 2,
                "batch": [drive_result(25.0, calls=100, events=20_000)] * 2,
                "lockstep_redis": [work(pipelines, 300)]}  # fmt: skip

    return {
        "plan": {"segment_s": 4.0, "warmup_s": 1.0},
        "engine": {"events": 8000, "repeats": 9, "with_goals_us": 30.0,
                   "without_goals_us": 25.0, "exposures": 900, "conversions": 40},
        "memory": {"with_goals": year(1400.0), "without_goals": year(1200.0)},
        "load": {"with_goals": load(1500.0, round_trips_with_goals),
                 "without_goals": load(1600.0, 200)},
    }  # fmt: skip


def test_goals_are_read_against_the_same_journey_without_them() -> None:
    rows = all_rows(sections.goals(Runs({"goals": goals_figures(round_trips_with_goals=200)})))
    assert rows["decide(), retail rules, per event"].ratio == "1.2×"  # 30 µs against 25
    assert rows["state hash per customer, mean"].ceiling == "1,200 B (without goals)"
    decide = rows["Decide, concurrency 64, closed loop"]
    assert (decide.measured, decide.ceiling) == ("1,550 calls/s", "1,650 calls/s (without goals)")
    round_trips = rows["round trips per event, one call at a time"]
    assert (round_trips.measured, round_trips.ratio, round_trips.verdict) == ("2", "1×", MET)


def test_goals_say_whether_the_throughput_stands_out_of_the_turns_spread() -> None:
    after = sections.goals(Runs({"goals": goals_figures(round_trips_with_goals=200)})).after
    spread = next(block for block in after if isinstance(block, str) and "turns ran" in block)
    assert "Decide turns ran at 1,500–1,600 calls/s with goals and 1,600–1,700 calls/s" in spread
    assert "the ranges overlap" in spread  # 1,600 in both


def test_goals_that_add_a_round_trip_miss_their_target() -> None:
    rows = judged_rows(sections.goals(Runs({"goals": goals_figures(round_trips_with_goals=300)})))
    round_trips = rows["round trips per event, one call at a time"]
    assert (round_trips.judged, round_trips.verdict[:8]) == ("1.5×", "not met:")


def test_transport_and_streaming_say_whether_the_loops_took_turns_with_their_ceiling() -> None:
    figures = transport_figures(1500.0, 1500.0)
    how = sections.transport(Runs({"transport": figures})).how
    assert "both on uvloop, one after the other; closed loops of 64 workers" in how
    figures["plan"] = {**figures["plan"], "turns": 2, "turns_rewarm_s": 0.5}
    how = sections.transport(Runs({"transport": figures})).how
    assert "both on uvloop, in turns: 2 rounds of one run each" in how
    assert "the others after 0.5 s" in how
    assert "its ceiling is the echo's closed loop taken in turns with it" not in how
    figures["echo_unary_beside_workers2"] = drive_result(4000.0)
    transport = sections.transport(Runs({"transport": figures}))
    assert "its ceiling is the echo's closed loop taken in turns with it" in transport.how
    workers = all_rows(transport)["Decide, the same with `--workers 2`"]
    assert (workers.ceiling, workers.ratio) == ("4,000 calls/s (echo)", "0.5×")  # not 3,000's
    streaming = {"plan": {"streams": 16, "window": 4, "warmup_s": 2.0, "closed_s": 8.0},
                 **streaming_figures(3000.0)}  # fmt: skip
    how = sections.streaming(Runs({"streaming": streaming})).how
    assert "against the echo and `journeyman serve`, one after the other;" in how
    streaming["plan"] = {**streaming["plan"], "turns": 2, "turns_rewarm_s": 0.5}
    how = sections.streaming(Runs({"streaming": streaming})).how
    assert "against the echo and `journeyman serve`, in turns: 2 rounds" in how


def _turns(*figures: tuple[float, float]) -> list[Turn]:
    return [Turn(events_per_s=rate, p99_us=p99) for rate, p99 in figures]


def test_loops_taken_in_turns_show_each_turns_ratio_beside_the_pooled_one() -> None:
    figures = transport_figures(decide_rate=1500.0, decide_p99_us=3000.0)
    figures["echo_unary"]["turns"] = _turns((3000.0, 1.0), (2000.0, 1.0), (4000.0, 1.0))
    figures["decide_unary"]["turns"] = _turns((1500.0, 1.0), (1600.0, 1.0), (1200.0, 1.0))
    figures["echo_open"]["turns"] = _turns((750.0, 1000.0), (750.0, 2000.0))
    figures["decide_open"]["turns"] = _turns((750.0, 3000.0), (750.0, 3000.0))
    rows = judged_rows(sections.transport(Runs({"transport": figures})))
    assert "; each turn 0.5×, 0.8×, 0.3×" in rows["Decide, concurrency 64, closed loop"].verdict
    half = rows["Decide p99 at half its closed-loop rate (750 calls/s, open loop)"]
    assert "; each turn 3×, 1.5×" in half.verdict
    # Not taken in turns (one run each, or written before): no turns to show.
    assert "each turn" not in rows["Decide, the same with `--workers 2`"].verdict
    streaming = streaming_figures(3000.0)
    streaming["echo_stream"]["turns"] = _turns((3000.0, 1.0), (3000.0, 1.0))
    streaming["decide_stream"]["turns"] = _turns((900.0, 1.0), (1200.0, 1.0))
    rows = judged_rows(sections.streaming(Runs({"streaming": streaming})))
    assert "; each turn 0.3×, 0.4×" in rows["DecideStream, ? streams × window ?"].verdict


def test_decide_with_its_loop_spinning_is_shown_against_decide_and_the_echo() -> None:
    figures = transport_figures(1500.0, 1500.0)
    figures["plan"] = {**figures["plan"], "lockstep_s": 3.0, "lockstep_rounds": 3, "spin_us": 3000}
    figures["echo_lockstep"] = drive_result(1500.0, server_cpu_us=400.0, p99_us=2000.0)
    figures["decide_lockstep"] = drive_result(600.0, server_cpu_us=1200.0, p99_us=6000.0)
    figures["spinning_lockstep"] = drive_result(800.0, server_cpu_us=1400.0, p99_us=4800.0)
    rows = all_rows(sections.transport(Runs({"transport": figures})))
    spinning = "its event loop spinning (`JOURNEYMAN_SPIN_US=3000`)"
    p50 = rows[f"Decide p50, one call at a time, {spinning}"]
    assert (p50.measured, p50.ceiling, p50.ratio) == ("1,200 µs", "1,500 µs (Decide, one at a "
                                                      "time)", "0.8×")  # fmt: skip
    echo = rows["the same against the echo"]
    assert (echo.measured, echo.ratio) == ("1,200 µs", "2.4×")  # against the echo's 500
    cpu = rows[f"server CPU per call, one call at a time, {spinning}"]
    assert (cpu.measured, cpu.ratio) == ("1,400 µs", shown(1400 / 1200, "×"))


def test_transport_says_whether_the_runs_one_call_at_a_time_took_turns() -> None:
    figures = transport_figures(1500.0, 1500.0)
    figures["plan"] = {**figures["plan"], "lockstep_s": 3.0, "lockstep_rounds": 3}
    how = sections.transport(Runs({"transport": figures})).how
    assert "take turns, all three up: 3 rounds of one run each, 3 s in all per server" in how
    figures["plan"]["spin_us"] = 3000  # Decide with its loop spinning took its turn too
    how = sections.transport(Runs({"transport": figures})).how
    assert "spinning after each call (`JOURNEYMAN_SPIN_US`, longer than the driver's" in how
    assert "take turns, all four up: 3 rounds of one run each" in how
    del figures["plan"]["spin_us"]
    del figures["plan"]["lockstep_rounds"]  # results written before they took turns
    how = sections.transport(Runs({"transport": figures})).how
    assert "One call at a time: 3 s each, one after the other." in how
