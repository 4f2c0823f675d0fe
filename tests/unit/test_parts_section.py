"""Where a decision's CPU goes (`benchmarks.report.parts`): its figures and the floors it states
with the other runs' figures, or without them.

Behaviour only: the figures are made up (in the shape `benchmarks.decision_parts` returns),
nothing is timed, and every number the text must show is computed here from them.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from benchmarks.engine.timing import least_cpu_us
from benchmarks.report import parts, sections, targets
from benchmarks.report.markdown import section_markdown, shown
from benchmarks.report.run_figures import PartsFigures
from benchmarks.report.sections import Runs
from tests.unit.test_targets import all_rows, drive_result

PARTS_US = {
    "validation": 10.0, "engine": 80.0, "answer": 12.0, "state": 24.0, "timer": 3.0,
    "record": 15.0, "commit": 200.0,
}  # fmt: skip
DECIDE_US, DECIDE_BATCH_US = 500.0, 220.0
# The parts' sum counts the record once: it is in the commit.
PARTS_SUM = sum(us for name, us in PARTS_US.items() if name != "record")


def parts_figures() -> PartsFigures:
    return {
        "plan": {"customers": 300, "events": 2000, "batch": 200, "batches": 10,
                 "round_trips": 3000, "repeats": 3},
        "redis_version": "7.0.15",
        "round_trip_us": {"bare_us": 20.0, "pipeliner_us": 100.0, "redis_py_us": 110.0},
        "decide_us": DECIDE_US,
        "decide_batch_us": DECIDE_BATCH_US,
        "parts_us": PARTS_US,
        "seconds": 17.0,
    }  # fmt: skip


def transport_figures(
    echo_cpu_us: float, decide_cpu_us: float, *, echo_p50_us: float = 500.0
) -> dict[str, Any]:
    """What the floors one call at a time and at concurrency 64 read of the transport run
    (`drive_result`'s p50 is a quarter of its p99; its driver takes 300 µs a call)."""
    return {
        "echo_lockstep": drive_result(3000.0, server_cpu_us=echo_cpu_us, p99_us=4 * echo_p50_us),
        "decide_lockstep": drive_result(700.0, server_cpu_us=decide_cpu_us, p99_us=8000.0),
        "echo_unary": drive_result(ECHO_RATE, server_cpu_us=ECHO_CPU_US),
        "decide_unary": drive_result(1000.0, server_cpu_us=DECIDE_CPU_US),
    }


def streaming_figures(echo_rate: float) -> dict[str, Any]:
    return {
        "echo_stream": drive_result(echo_rate, server_cpu_us=ECHO_CPU_US),
        "decide_stream": drive_result(1000.0, server_cpu_us=DECIDE_CPU_US),
    }


ECHO_RATE, ECHO_CPU_US, DECIDE_CPU_US = 3000.0, 200.0, 900.0


BATCH_CALLS, BATCH_EVENTS, BATCH_SERVER_CPU_US = 100, 20_000, 20_000.0


def batch_figures() -> dict[str, Any]:
    return {
        "plan": {"batch": 200, "in_flight": 4, "customers": 20_000},
        "decide_batch": drive_result(25.0, server_cpu_us=BATCH_SERVER_CPU_US, calls=BATCH_CALLS,
                                     events=BATCH_EVENTS),
    }  # fmt: skip


def floors(runs: Runs) -> tuple[str, str]:
    """The floors one call at a time (its CPU) and of DecideBatch."""
    texts = all_floors(runs)
    return texts["**The floor, one call at a time.**"], texts["**The floor of DecideBatch.**"]


def all_floors(runs: Runs) -> dict[str, str]:
    """Each floor's paragraph by its bold head."""
    after = parts.decision_parts(runs).after
    assert all(isinstance(text, str) for text in after)
    return {f"**{str(text).split('**')[1]}**": str(text) for text in after}


def floor(runs: Runs, head: str) -> str:
    return all_floors(runs)[f"**{head}**"]


def test_the_whole_is_read_against_the_sum_of_its_parts() -> None:
    rows = all_rows(parts.decision_parts(Runs({"parts": parts_figures()})))
    whole = DECIDE_US + PARTS_US["validation"]
    one = rows["a decision, one event at a time: `Decider.decide` + validation"]
    assert (one.measured, one.ceiling) == (shown(whole, "µs"), f"{shown(PARTS_SUM, 'µs')} "
                                           "(the parts' sum)")  # fmt: skip
    assert one.ratio == shown(whole / PARTS_SUM, "×")
    together = next(r for name, r in rows.items() if name.startswith("running the parts"))
    assert together.measured == shown(whole - PARTS_SUM, "µs")
    batched = next(r for name, r in rows.items() if name.startswith("the same in DecideBatch"))
    no_commit = PARTS_SUM - PARTS_US["commit"]
    assert batched.measured == shown(DECIDE_BATCH_US + PARTS_US["validation"] - no_commit, "µs")
    commit = next(r for name, r in rows.items() if name.startswith("part: one commit"))
    assert commit.measured == shown(PARTS_US["commit"] - PARTS_US["record"], "µs")
    assert commit.ratio == shown((PARTS_US["commit"] - PARTS_US["record"]) / 100.0, "×")
    pipeliner = rows["the same through the service's `Pipeliner.send`"]
    assert (pipeliner.ratio, pipeliner.target) == ("5×", "—")  # a profile: nothing is judged


def test_without_the_other_runs_the_floors_are_not_measured() -> None:
    one, batched = floors(Runs({"parts": parts_figures()}))
    assert one.startswith("**The floor, one call at a time.** Not measured (the `transport` run")
    assert shown(PARTS_SUM, "µs") in one
    assert "Not measured (the `batch` run did not run)" in batched
    assert shown(DECIDE_BATCH_US + PARTS_US["validation"], "µs") in batched


def test_a_failed_run_says_so_in_the_floor_and_the_rest_still_renders() -> None:
    runs = Runs({"parts": parts_figures()}, {"transport": "RuntimeError: boom"})
    one, _ = floors(runs)
    assert "Not measured (the `transport` run failed (see its error))" in one
    text = section_markdown(14, parts.decision_parts(runs))
    assert "## 14. Where a decision's CPU goes (issue 16)" in text


def test_the_floor_one_call_at_a_time_is_the_echo_plus_the_parts() -> None:
    echo, decide = 300.0, 1200.0
    runs = Runs({"parts": parts_figures(), "transport": transport_figures(echo, decide)})
    one, _ = floors(runs)
    floor = echo + PARTS_SUM
    assert floor / echo > targets.LONE_CALL_CPU.bound  # the case this test is about
    assert f"plus the parts ({shown(PARTS_SUM, 'µs')}): {shown(floor, 'µs')}" in one
    assert f"{shown(floor / echo, '×')} the echo's, against the target ≤ 2× echo's" in one
    assert f"The floor is {shown(floor - 2 * echo, 'µs')} above the target" in one
    assert f"measured {shown(decide, 'µs')} ({shown(decide / echo, '×')}" in one
    assert f"{shown(decide - floor, 'µs')} above the floor" in one


def test_a_floor_within_the_target_says_how_much_room_it_leaves() -> None:
    echo = 400.0
    runs = Runs({"parts": parts_figures(), "transport": transport_figures(echo, 1200.0)})
    one, _ = floors(runs)
    floor = echo + PARTS_SUM
    assert floor / echo <= targets.LONE_CALL_CPU.bound
    assert f"leave {shown(2 * echo - floor, 'µs')} under the target" in one
    together = DECIDE_US + PARTS_US["validation"] - PARTS_SUM
    assert f"together ({shown(together, 'µs')} here" in one


def test_the_floor_of_decide_batch_is_two_cores_at_every_cpu_an_event_costs() -> None:
    runs = Runs({"parts": parts_figures(), "batch": batch_figures()})
    _, batched = floors(runs)
    per_call_to_event = BATCH_CALLS / BATCH_EVENTS
    redis = BATCH_SERVER_CPU_US * 0.1 * per_call_to_event  # drive_result: 10 % redis-server
    driver = 300.0 * per_call_to_event  # drive_result's client CPU per call
    each = DECIDE_BATCH_US + PARTS_US["validation"] + redis + driver
    assert f"2 cores at {shown(each, 'µs')} per event" in batched
    assert f"Redis's CPU per event in section 3: {shown(redis, 'µs')}" in batched
    assert f"the driver's: {shown(driver, 'µs')}" in batched
    assert f"give at most {shown(2e6 / each, 'events/s')}" in batched
    assert "out of reach" in batched  # 2e6 / 241.5 is below 20,000
    assert "Section 3 measured 5,000 events/s" in batched


def test_one_server_process_is_bound_by_its_own_cpu_per_event() -> None:
    runs = Runs({"parts": parts_figures(), "batch": batch_figures()})
    _, batched = floors(runs)
    own = BATCH_SERVER_CPU_US * 0.9 * BATCH_CALLS / BATCH_EVENTS  # drive_result: 90 % journeyman
    assert f"at its {shown(own, 'µs')} of CPU per event there" in batched
    assert f"it commits at most {shown(1e6 / own, 'events/s')}." in batched


def redis_figures(client_us: float, redis_us: float) -> dict[str, Any]:
    """What the stack's floor reads of the Redis ceiling run."""
    run = {"events_per_s": 1e6 / client_us, "ops_per_s": 2e6 / client_us,
           "client_cpu_us_per_event": client_us, "redis_cpu_us_per_event": redis_us,
           "conflicts": 0}  # fmt: skip
    return {"redis_py": {"unix Store x64": {**run, "client_cpu_us_per_event": 999.0},
                         "unix pipelined N=64 x1": run}}  # fmt: skip


def engine_figures(many_per_s: float) -> dict[str, Any]:
    """What the stack's floor reads of the engine run: the batched kernel's rate with encoding
    (and decide()'s, which DecideBatch does not use for a call's new events)."""
    return {"zen": {"decide_us_per_event": 500.0},
            "many": {"retail_encode_and_many_per_s": many_per_s}}  # fmt: skip


# An event's own work in DecideBatch: validation, the batched kernel (with encoding: 20 µs at
# 50,000 events/s), the answer and the state's encoding.
BATCHED_WORK_US = PARTS_US["validation"] + 20.0 + PARTS_US["answer"] + PARTS_US["state"]


def test_the_stack_alone_leaves_the_target_less_than_an_events_batched_work_takes() -> None:
    driver = 300.0 * BATCH_CALLS / BATCH_EVENTS  # 1.5 µs
    runs = Runs({"parts": parts_figures(), "batch": batch_figures(),
                 "redis": redis_figures(45.0, 20.0), "engine": engine_figures(5e4)})  # fmt: skip
    _, batched = floors(runs)
    budget = 2e6 / 20_000
    stack = 45.0 + 20.0 + driver
    assert budget - stack < BATCHED_WORK_US  # 33.5 against 66 µs
    assert f"the 2 cores have {shown(budget, 'µs')} per event for everything" in batched
    assert f"the client's {shown(45.0, 'µs')} and Redis's {shown(20.0, 'µs')}" in batched
    assert f"take {shown(stack, 'µs')} of it, leaving {shown(budget - stack, 'µs')}" in batched
    assert "the batched kernel with the events' encoding (section 5: 20 µs)" in batched
    assert f"alone take {shown(BATCHED_WORK_US, 'µs')}: out of reach on 2 cores" in batched
    assert "decide()" not in batched  # its 500 µs is not what a DecideBatch event pays


def test_a_stack_that_leaves_more_than_the_batched_work_takes_claims_nothing_more() -> None:
    runs = Runs({"parts": parts_figures(), "batch": batch_figures(),
                 "redis": redis_figures(20.0, 10.0), "engine": engine_figures(5e4)})  # fmt: skip
    _, batched = floors(runs)
    assert "leaving" in batched and "whatever the rest of the service costs" not in batched


def test_without_the_batched_kernels_rate_the_stack_claims_nothing_more() -> None:
    runs = Runs({"parts": parts_figures(), "batch": batch_figures(),
                 "redis": redis_figures(45.0, 20.0), "engine": {"zen": {}}})  # fmt: skip
    _, batched = floors(runs)
    assert "leaving" in batched and "whatever the rest of the service costs" not in batched


def test_a_stack_beyond_the_budget_puts_the_target_beyond_the_machine() -> None:
    runs = Runs({"parts": parts_figures(), "batch": batch_figures(),
                 "redis": redis_figures(80.0, 30.0)})  # fmt: skip
    _, batched = floors(runs)
    assert batched.endswith("the target is beyond this machine before any work of the service.")


def test_without_its_own_run_the_section_lists_its_figures_unmeasured() -> None:
    runs = Runs({"transport": transport_figures(300.0, 1200.0), "batch": batch_figures()})
    section = parts.decision_parts(runs)
    assert section.figures and all(f.measured is None for f in section.figures)
    one, batched = floors(runs)
    assert "Not measured (the `parts` run did not run)" in one
    assert "Not measured (the `parts` run did not run)" in batched


def test_an_older_results_file_without_a_figure_is_not_an_error() -> None:
    older = dict(parts_figures())
    del older["decide_batch_us"]
    runs = Runs({"parts": older, "batch": batch_figures()})
    _, batched = floors(runs)
    assert "Not measured" in batched


def test_the_floors_name_the_sections_their_runs_are_in() -> None:
    assert sections.SECTIONS.index(sections.transport) + 1 == parts.TRANSPORT_SECTION
    assert sections.SECTIONS.index(sections.streaming) + 1 == parts.STREAMING_SECTION
    assert sections.SECTIONS.index(sections.batch) + 1 == parts.BATCH_SECTION
    assert sections.SECTIONS.index(sections.redis_work) + 1 == parts.REDIS_SECTION
    assert sections.SECTIONS.index(sections.engine) + 1 == parts.ENGINE_SECTION
    assert parts.decision_parts in sections.SECTIONS


def test_the_least_cpu_is_taken_over_timed_runs_after_an_untimed_one() -> None:
    runs: list[int] = []

    async def run(count: int) -> int:
        runs.append(count)
        return count

    least = asyncio.run(least_cpu_us(run, lambda: 7, repeats=3))
    assert runs == [7, 7, 7, 7] and least >= 0
    runs.clear()
    asyncio.run(least_cpu_us(run, lambda: 7, repeats=3, until_s=-math.inf))  # time spent
    assert runs == [7, 7]  # the untimed run and one timed


def test_the_floor_of_one_calls_latency_is_the_echos_p50_plus_the_parts() -> None:
    echo = 500.0
    runs = Runs({"parts": parts_figures(), "transport": transport_figures(300.0, 1200.0)})
    text = floor(runs, "The floor of one call's latency.")
    least = echo + PARTS_SUM  # 829 µs, above 1.5 × 500
    assert f"the echo's p50 (section 1: {shown(echo, 'µs')}" in text
    assert f"({shown(PARTS_SUM, 'µs')} of CPU;" in text
    assert f": {shown(least, 'µs')}, {shown(least / echo, '×')} the echo's, against" in text
    assert f"against the target ≤ 1.5× echo p50 ({shown(1.5 * echo, 'µs')})" in text
    assert f"The floor is {shown(least - 1.5 * echo, 'µs')} above the target" in text
    assert f"Section 1 measured {shown(2000.0, 'µs')} ({shown(4.0, '×')}): " in text
    assert f"{shown(2000.0 - least, 'µs')} above the floor." in text


def test_the_bare_decide_splits_what_lies_above_the_floor() -> None:
    echo, decide, bare = 300.0, 1200.0, 1100.0
    figures = transport_figures(echo, decide)
    figures["bare_lockstep"] = drive_result(700.0, server_cpu_us=bare, p99_us=8000.0)
    one, _ = floors(Runs({"parts": parts_figures(), "transport": figures}))
    floor = echo + PARTS_SUM
    assert "The bare Decide (section 1: the parts and one commit through gRPC" in one
    assert f"measured {shown(bare, 'µs')} ({shown(bare / echo, '×')})" in one
    assert f"of the {shown(decide - floor, 'µs')} above the floor" in one
    assert f"{shown(bare - floor, 'µs')} are the parts themselves as a server runs them" in one
    assert f"and {shown(decide - bare, 'µs')} the service around them." in one


def test_the_parts_in_a_server_are_read_against_the_parts_alone() -> None:
    served = {"validation": 20.0, "load": 40.0, "engine": 240.0, "answer": 24.0, "state": 48.0,
              "commit_args": 36.0, "round_trip": 150.0}  # fmt: skip
    figures = transport_figures(300.0, 1200.0)
    figures["bare_lockstep"] = drive_result(700.0, server_cpu_us=1100.0)
    figures["bare_lockstep"]["server_loop_cpu_us_per_call"] = 800.0
    figures["echo_lockstep"]["server_loop_cpu_us_per_call"] = 200.0
    figures["bare_parts_us"] = served
    section = parts.decision_parts(Runs({"parts": parts_figures(), "transport": figures}))
    rows = {name.split(": ", 1)[-1]: row for name, row in all_rows(section).items()}
    assert rows["the engine"].ratio == shown(240.0 / PARTS_US["engine"], "×")
    assert rows["the timer write, the record and commit.lua's arguments"].ratio == shown(
        36.0 / (PARTS_US["timer"] + PARTS_US["record"]), "×"
    )
    assert rows["the commit's round trip: its EVALSHA sent and its reply read"].ratio == shown(
        150.0 / (PARTS_US["commit"] - PARTS_US["record"]), "×"
    )
    summed = sum(us for part, us in served.items() if part != "load")  # loads: first events
    assert rows["the parts' sum"].measured == shown(summed, "µs")
    assert rows["the parts' sum"].ratio == shown(summed / PARTS_SUM, "×")
    besides = rows["gRPC, the event loop"]  # the bare Decide's loop thread besides its parts
    assert besides.measured == shown(800.0 - summed, "µs")
    assert besides.ceiling == "200 µs (echo's loop thread)"


def test_the_floors_one_call_at_a_time_are_stated_again_with_the_parts_a_server_ran() -> None:
    """Alone in a loop the parts run warm; a server one call at a time runs them after its
    thread waited idle, several times slower: the floor with those is what the target faces."""
    served = {"validation": 20.0, "load": 40.0, "engine": 240.0, "answer": 24.0, "state": 48.0,
              "commit_args": 36.0, "round_trip": 150.0}  # fmt: skip
    in_server = sum(us for part, us in served.items() if part != "load")  # 518 µs
    echo_cpu, echo_p50 = 600.0, 1500.0
    figures = transport_figures(echo_cpu, 1800.0, echo_p50_us=echo_p50)
    figures["bare_parts_us"] = served
    runs = Runs({"parts": parts_figures(), "transport": figures})
    cpu = floor(runs, "The floor, one call at a time.")
    over = echo_cpu + in_server - 2 * echo_cpu  # the CPU floor's excess: 1,118 against 1,200
    assert over < 0  # ...is none here: under the target
    assert f"which waited idle for each call: {shown(in_server, 'µs')}), the floor is " in cpu
    assert f"{shown(echo_cpu + in_server, 'µs')}, {shown(1 + in_server / echo_cpu, '×')}" in cpu
    assert f"{shown(-over, 'µs')} under the target (section 5:" in cpu
    latency = floor(runs, "The floor of one call's latency.")
    above = echo_p50 + in_server - 1.5 * echo_p50  # 2,018 against 2,250: under as well
    assert f"{shown(-above, 'µs')} under the target (section 5:" in latency
    slow = transport_figures(300.0, 1800.0, echo_p50_us=500.0)
    slow["bare_parts_us"] = served
    text = floor(
        Runs({"parts": parts_figures(), "transport": slow}), "The floor, one call at a time."
    )
    assert f"the floor is {shown(300.0 + in_server, 'µs')}" in text
    assert (
        f"{shown(300.0 + in_server - 600.0, 'µs')} above the target: as a server runs them" in text
    )


def test_results_without_the_bare_decide_leave_it_out_of_the_floors() -> None:
    runs = Runs({"parts": parts_figures(), "transport": transport_figures(300.0, 1200.0)})
    assert all("bare" not in text for text in all_floors(runs).values())


def test_a_latency_floor_under_the_target_says_what_it_leaves() -> None:
    echo = 1000.0
    runs = Runs({"parts": parts_figures(),
                 "transport": transport_figures(300.0, 1200.0, echo_p50_us=echo)})  # fmt: skip
    text = floor(runs, "The floor of one call's latency.")
    assert f"leave {shown(1.5 * echo - echo - PARTS_SUM, 'µs')} under the target" in text
    assert "out of reach" not in text


def concurrent_runs(echo_rate: float) -> Runs:
    return Runs({"parts": parts_figures(), "batch": batch_figures(),
                 "transport": transport_figures(300.0, 1200.0),
                 "streaming": streaming_figures(echo_rate)})  # fmt: skip


# An event's cheapest decision: its whole in DecideBatch calls of 200, and Redis's CPU there.
CHEAPEST_US = DECIDE_BATCH_US + PARTS_US["validation"] + BATCH_SERVER_CPU_US * 0.1 / 200
ECHO_COSTS_US = ECHO_CPU_US + 300.0  # its server's and the driver's CPU per call


def test_the_floor_at_concurrency_64_is_what_the_target_leaves_after_the_echos_costs() -> None:
    text = floor(concurrent_runs(ECHO_RATE), "The floor at concurrency 64.")
    budget = 2e6 / (0.6 * ECHO_RATE)  # 1,111 µs
    left = budget - ECHO_COSTS_US
    assert f"(≥ 0.6× echo: {shown(0.6 * ECHO_RATE, 'events/s')})" in text
    assert f"the 2 cores have {shown(budget, 'µs')} per event for everything" in text
    assert f"take {shown(ECHO_COSTS_US, 'µs')} of it, leaving {shown(left, 'µs')}" in text
    assert f"takes {shown(CHEAPEST_US, 'µs')}: {shown(left - CHEAPEST_US, 'µs')} an event" in text
    assert f"measured {shown(DECIDE_CPU_US, 'µs')} of server CPU per event" in text
    assert f"{shown(DECIDE_CPU_US - ECHO_CPU_US - CHEAPEST_US, 'µs')} above the echo's" in text


def test_a_stream_echo_too_fast_for_the_cheapest_decision_puts_the_target_out_of_reach() -> None:
    fast = 6000.0  # at 0.5x: 3,000 events/s, 667 µs an event, 167 left after the echo's costs
    text = floor(concurrent_runs(fast), "The floor of DecideStream.")
    left = 2e6 / (0.5 * fast) - ECHO_COSTS_US
    assert left < CHEAPEST_US  # the case this test is about
    assert f"(≥ 0.5× stream echo: {shown(0.5 * fast, 'events/s')})" in text
    assert f"leaving {shown(left, 'µs')} for what a decision adds" in text
    assert "out of reach on 2 cores shared with the driver until these get cheaper" in text


def test_without_the_batch_run_the_concurrent_floors_are_not_measured() -> None:
    runs = Runs({"parts": parts_figures(), "transport": transport_figures(300.0, 1200.0)})
    assert "Not measured (the `batch` run did not run)" in floor(
        runs, "The floor at concurrency 64."
    )
    assert "Not measured (the `streaming` run did not run)" in floor(
        runs, "The floor of DecideStream."
    )


def _with_loop_thread(result: Any, loop_us: float) -> Any:
    """A drive result whose server's event-loop thread took `loop_us` a call."""
    return {**result, "server_loop_cpu_us_per_call": loop_us}


def test_the_event_loops_thread_bounds_one_process_and_the_target_says_by_how_much() -> None:
    transport = transport_figures(300.0, 1200.0)
    lone_loop, echo_lone_loop, loop, echo_loop = 800.0, 200.0, 900.0, 100.0
    for run, loop_us in (("decide_lockstep", lone_loop), ("echo_lockstep", echo_lone_loop),
                         ("decide_unary", loop), ("echo_unary", echo_loop)):  # fmt: skip
        transport[run] = _with_loop_thread(transport[run], loop_us)
    transport["redis_unary"] = {"events_per_round": 3.5, "server_us_per_call": 2500.0}
    transport["plan"] = {"concurrency": 64}
    text = floor(
        Runs({"parts": parts_figures(), "transport": transport}), "One thread runs the Python."
    )
    # gRPC's own threads: the process tree less Redis (a tenth, in drive_result) and the loop.
    assert f"gRPC's own threads took {shown(1200.0 * 0.9 - lone_loop, 'µs')}" in text
    assert f"against the echo's {shown(300.0 * 0.9 - echo_lone_loop, 'µs')}" in text
    assert f"on that thread ({shown(lone_loop - echo_lone_loop, 'µs')}" in text
    decide_rate = transport["decide_unary"]["rate"]
    assert f"busy {shown(100 * loop * decide_rate / 1e6, '%')}" in text
    assert f"at most {shown(1e6 / loop, 'calls/s')} whatever the other core does" in text
    goal = targets.UNARY_THROUGHPUT.bound * ECHO_RATE
    assert (
        f"at most {shown(1e6 / goal, 'µs')} a call, {shown(loop - 1e6 / goal, 'µs')} less" in text
    )
    assert (
        f"from {shown(loop - echo_loop, 'µs')} down to {shown(1e6 / goal - echo_loop, 'µs')}"
        in text
    )
    assert "Of the 64 calls in flight, a decision round decided 3.5 on average" in text
    assert f"{shown(2500.0, 'µs')} in journeyman's handler" in text


def test_a_loop_thread_within_the_target_says_how_much_room_it_has() -> None:
    transport = transport_figures(300.0, 1200.0)
    goal = targets.UNARY_THROUGHPUT.bound * ECHO_RATE
    loop = 1e6 / goal - 50.0  # 50 us a call under what the target allows
    for run, loop_us in (("decide_lockstep", 800.0), ("echo_lockstep", 200.0),
                         ("decide_unary", loop), ("echo_unary", 100.0)):  # fmt: skip
        transport[run] = _with_loop_thread(transport[run], loop_us)
    text = floor(
        Runs({"parts": parts_figures(), "transport": transport}), "One thread runs the Python."
    )
    assert f"{shown(50.0, 'µs')} more than measured: the thread has room to spare" in text
    assert "less than measured" not in text and "must come from" not in text


def test_results_without_the_loop_thread_say_it_was_not_measured() -> None:
    runs = Runs({"parts": parts_figures(), "transport": transport_figures(300.0, 1200.0)})
    text = floor(runs, "One thread runs the Python.")
    assert text.startswith("**One thread runs the Python.** Not measured")
    assert "predate the event loop's thread's CPU" in text


def test_section_1_shows_the_event_loops_thread_beside_the_echos() -> None:
    transport = transport_figures(300.0, 1200.0)
    transport["decide_unary"] = _with_loop_thread(transport["decide_unary"], 900.0)
    transport["echo_unary"] = _with_loop_thread(transport["echo_unary"], 100.0)
    rows = all_rows(sections.transport(Runs({"transport": transport})))
    busy = rows["the event loop's thread busy, concurrency 64 (share of one core)"]
    decide_rate = transport["decide_unary"]["rate"]
    assert busy.measured == shown(900.0 * decide_rate / 1e6)
    assert busy.ceiling.startswith(shown(100.0 * ECHO_RATE / 1e6))
    # The lone runs predate the loop thread's figure: shown as not measured, nothing breaks.
    lone = rows["the event loop's thread, CPU per call, one call at a time"]
    assert lone.measured == "—"


def test_the_calls_of_a_lone_decision_are_shown_with_the_engines_share() -> None:
    counted = dict(parts_figures())
    counted["calls_per_event"] = {"python": 400.0, "c": 250.0, "engine_python": 50.0,
                                  "engine_c": 100.0}  # fmt: skip
    rows = all_rows(parts.decision_parts(Runs({"parts": counted})))
    python = next(r for name, r in rows.items() if name.startswith("Python function calls"))
    assert python.measured == shown(400.0)
    engine = rows["of them in the engine (code under engine/)"]
    assert (engine.measured, engine.ratio) == (shown(50.0), shown(50.0 / 400.0, "×"))
    from_engine = rows["of them called from the engine"]
    assert (from_engine.measured, from_engine.ratio) == (shown(100.0), shown(100.0 / 250.0, "×"))


def test_results_from_before_calls_were_counted_show_them_unmeasured() -> None:
    rows = all_rows(parts.decision_parts(Runs({"parts": parts_figures()})))
    counted = [
        r for name, r in rows.items() if "function calls" in name or name.startswith("of them")
    ]
    assert len(counted) == 4
    assert {(r.measured, r.ratio) for r in counted} == {("—", "—")}
