"""RESULTS.md's section on where a decision's CPU goes (issue 16): the figures of
`benchmarks.decision_parts`, and the floor they put under the hot-path targets missed in
sections 1 to 3, computed with those sections' runs when the same results hold them.

Pure, as `report.sections` is (which lists this section among the others).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from benchmarks.calls import CallCounts
from benchmarks.report import targets as t
from benchmarks.report.markdown import shown
from benchmarks.report.run_figures import DecisionPartsUs, PartsFigures, TransportFigures
from benchmarks.report.runs import REDIS_PIPELINED, Reader, Runs, per_event_cpu, redis_py_figure
from benchmarks.report.table import Figure, Section, Table
from benchmarks.report.targets import known, ratio

if TYPE_CHECKING:
    from benchmarks.load.drive import Result

RUN: Final = "parts"
# The sections whose runs the floors read (`tests/unit/test_parts_section.py` holds these to
# `report.sections.SECTIONS`).
TRANSPORT_SECTION = 1
STREAMING_SECTION = 2
BATCH_SECTION = 3
REDIS_SECTION = 4
ENGINE_SECTION = 5
CORES = 2  # the targets' machine: 2 cores, shared with the driver
NO_CLIENT = "no client library"
# What the bare Decide's parts sum over (`benchmarks.load.bare.PARTS` but the first events' loads,
# which the parts alone never make: their customers are in the state cache).
SERVED_PARTS = ("validation", "engine", "answer", "state", "commit_args", "round_trip")


# --- the arithmetic ------------------------------------------------------------------------------


def parts_sum(parts: DecisionPartsUs) -> float:
    """An event's calls alone, one commit (its record in it) included."""
    return (
        parts["validation"] + parts["engine"] + parts["answer"] + parts["state"] + parts["timer"]
        + parts["commit"]
    )  # fmt: skip


def one_at_a_time_us(figures: PartsFigures) -> float:
    """The whole decision of an event sent alone, its validation included."""
    return figures["decide_us"] + figures["parts_us"]["validation"]


def in_batches_us(figures: PartsFigures) -> float:
    """The whole decision of an event in DecideBatch calls, its validation included."""
    return figures["decide_batch_us"] + figures["parts_us"]["validation"]


def together_us(figures: PartsFigures) -> float:
    """What running the parts together adds to them, one event at a time."""
    return one_at_a_time_us(figures) - parts_sum(figures["parts_us"])


def _total(*values: float | None) -> float | None:
    """The sum, None unless every value was measured."""
    measured = [value for value in values if value is not None and known(value)]
    return sum(measured) if len(measured) == len(values) else None


# --- the floors ----------------------------------------------------------------------------------


def lone_call_floor(runs: Runs) -> str:
    """One call at a time: the echo's server CPU per call (gRPC and the event loop, no work)
    plus the parts is as low as Decide's can go; read against the target."""
    return _echo_plus_parts(
        runs,
        "**The floor, one call at a time.**",
        lambda call: call["server_cpu_us_per_call"],
        t.LONE_CALL_CPU,
        unmeasured="the echo's server CPU per call",
        says=lambda echo, summed: (
            f"The server's CPU per Decide call is at least the echo's (section "
            f"{TRANSPORT_SECTION}: {echo}, gRPC and the event loop doing no work) plus the parts "
            f"({summed})"
        ),
        room=(
            f"running them together ({shown(Reader(runs.figures.get(RUN))(together_us), 'µs')} "
            "here, in-process) and for whatever else a call costs beyond the echo's"
        ),
        measured_as=", its Redis's CPU included",
    )


def lone_latency_floor(runs: Runs) -> str:
    """One call at a time, its latency: the echo's p50 (the driver, the network and gRPC) plus
    the parts, which run one after the other on the call's path; read against the target."""
    return _echo_plus_parts(
        runs,
        "**The floor of one call's latency.**",
        lambda call: call["latency_us"]["p50"],
        t.LONE_CALL_P50,
        unmeasured="the echo's p50 one call at a time",
        says=lambda echo, summed: (
            f"A Decide call sent alone waits at least the echo's p50 (section {TRANSPORT_SECTION}:"
            f" {echo}: the driver, the network and gRPC) plus the parts, which run one after the "
            f"other before it is answered ({summed} of CPU; the commit's wait for Redis not "
            "counted)"
        ),
        room="Redis's round trip, running them together and the rest",
        measured_as="",
    )


def _echo_plus_parts(
    runs: Runs,
    head: str,
    figure: Callable[[Result], float | None],
    target: t.Target,
    *,
    unmeasured: str,
    says: Callable[[str, str], str],
    room: str,
    measured_as: str,
) -> str:
    """A floor one call at a time: the echo's `figure` (section 1) plus the parts' sum, read
    against `target` (a bound on the ratio to the echo's), then Decide's own `figure`."""
    get, parts = Reader(runs.figures.get("transport")), Reader(runs.figures.get(RUN))
    echo = get(lambda f: figure(f["echo_lockstep"]))
    summed = parts(lambda f: parts_sum(f["parts_us"]))
    floor = _total(echo, summed)
    times = ratio(floor, echo)
    if floor is None or times is None or echo is None:
        return (
            f"{head} Not measured ({runs.missing('transport', RUN)}): {unmeasured} (section "
            f"{TRANSPORT_SECTION}) plus the parts ({shown(summed, 'µs')})."
        )
    allowed = target.bound * echo
    said = (
        f"{head} {says(shown(echo, 'µs'), shown(summed, 'µs'))}: {shown(floor, 'µs')}, "
        f"{shown(times, '×')} the echo's, against the target {target.shown} "
        f"({shown(allowed, 'µs')})."
    )
    if target.holds(times):
        said += f" The parts leave {shown(allowed - floor, 'µs')} under the target for {room}."
    else:
        said += (
            f" The floor is {shown(floor - allowed, 'µs')} above the target: the parts alone put "
            "it out of reach, they must get cheaper."
        )
    said += _served_floor(get, echo, allowed)
    decide = get(lambda f: figure(f["decide_lockstep"]))
    if decide is not None and known(decide):
        said += (
            f" Section {TRANSPORT_SECTION} measured {shown(decide, 'µs')} "
            f"({shown(ratio(decide, echo), '×')}{measured_as}): "
            f"{shown(decide - floor, 'µs')} above the floor."
        )
        said += _bare_share(get(lambda f: figure(f["bare_lockstep"])), echo, floor, decide)
    return said


def _served_floor(get: Reader[TransportFigures], echo: float, allowed: float) -> str:
    """The same floor with the parts as a server runs them one call at a time (the bare Decide's,
    timed on its thread after it waited idle for the call), where the parts alone in a loop run
    warm; "" where not measured."""
    served = get(lambda f: f["bare_parts_us"])
    if not served:
        return ""
    in_server = sum(served[key] for key in SERVED_PARTS)
    floor = echo + in_server
    verdict = (
        f"{shown(allowed - floor, 'µs')} under the target"
        if floor <= allowed
        else f"{shown(floor - allowed, 'µs')} above the target: as a server runs them, the parts "
        "alone put it out of reach"
    )
    return (
        f" As a server runs them, one call at a time (the bare Decide's parts, timed on its "
        f"thread, which waited idle for each call: {shown(in_server, 'µs')}), the floor is "
        f"{shown(floor, 'µs')}, {shown(ratio(floor, echo), '×')} the echo's, {verdict}"
        f" (section {ENGINE_SECTION}: decide() run cold, after other code and a pause, costs"
        " several times its figure back to back; the echo's figures pay the same on their"
        " smaller work)."
    )


def _bare_share(bare: float | None, echo: float, floor: float, decide: float) -> str:
    """What the bare Decide (section 1: the parts and one commit, nothing around them) says of
    Decide's distance above the floor: how much of it the parts themselves take as a server runs
    them, one call at a time, and how much the service around them; "" where not measured."""
    if bare is None or not known(bare):
        return ""
    return (
        f" The bare Decide (section {TRANSPORT_SECTION}: the parts and one commit through gRPC, "
        f"nothing around them) measured {shown(bare, 'µs')} ({shown(ratio(bare, echo), '×')}): "
        f"of the {shown(decide - floor, 'µs')} above the floor, {shown(bare - floor, 'µs')} are "
        f"the parts themselves as a server runs them, one call at a time, and "
        f"{shown(decide - bare, 'µs')} the service around them."
    )


def loop_thread_floor(runs: Runs) -> str:
    """Where in the server process the CPU goes: gRPC's C core runs on threads of its own, the
    Python (gRPC's handlers, the decision) on the event loop's one thread; one call at a time
    each against the echo's, and at concurrency 64 how busy that thread was, which bounds one
    process's rate whatever the other core does."""
    head = "**One thread runs the Python.**"
    get = Reader(runs.figures.get("transport"))
    lone_loop = get(lambda f: f["decide_lockstep"]["server_loop_cpu_us_per_call"])
    echo_lone_loop = get(lambda f: f["echo_lockstep"]["server_loop_cpu_us_per_call"])
    lone_other = get(lambda f: other_threads_us(f["decide_lockstep"]))
    echo_lone_other = get(lambda f: other_threads_us(f["echo_lockstep"]))
    loop = get(lambda f: f["decide_unary"]["server_loop_cpu_us_per_call"])
    echo_loop = get(lambda f: f["echo_unary"]["server_loop_cpu_us_per_call"])
    rate = get(lambda f: f["decide_unary"]["rate"])
    echo_rate = get(lambda f: f["echo_unary"]["rate"])
    measured = (lone_loop, echo_lone_loop, lone_other, echo_lone_other, loop, echo_loop, rate,
                echo_rate)  # fmt: skip
    if any(value is None or not known(value) for value in measured):
        why = (
            runs.missing("transport")
            if runs.figures.get("transport") is None
            else "the `transport` run's results predate the event loop's thread's CPU"
        )
        return (
            f"{head} Not measured ({why}): the server's CPU per call on its event loop's "
            f"thread and on gRPC's own threads (section {TRANSPORT_SECTION})."
        )
    assert lone_loop is not None and echo_lone_loop is not None and lone_other is not None
    assert echo_lone_other is not None and loop is not None and echo_loop is not None
    assert rate is not None and echo_rate is not None
    parts_whole = Reader(runs.figures.get(RUN))(one_at_a_time_us)
    goal = t.UNARY_THROUGHPUT.bound * echo_rate
    most = 1e6 / goal
    return (
        f"{head} A server process runs gRPC's C core on threads of its own and all of its "
        "Python (gRPC's handlers, the decision) on its event loop's one thread. One call at a "
        f"time (section {TRANSPORT_SECTION}), gRPC's own threads took {shown(lone_other, 'µs')} "
        f"per call against the echo's {shown(echo_lone_other, 'µs')}, the event loop's thread "
        f"{shown(lone_loop, 'µs')} against the echo's {shown(echo_lone_loop, 'µs')}: what "
        f"Decide costs beyond the echo is on that thread ({shown(lone_loop - echo_lone_loop, 'µs')}"
        f"; the whole decision in process, above: {shown(parts_whole, 'µs')}). At concurrency "
        f"64 the thread was busy {shown(100 * loop * rate / 1e6, '%')} of the run, "
        f"{shown(loop, 'µs')} a call at {shown(rate, 'calls/s')}: one process answers at most "
        f"{shown(1e6 / loop, 'calls/s')} whatever the other core does. The target "
        f"({t.UNARY_THROUGHPUT.shown}: {shown(goal, 'calls/s')}) needs the thread at most "
        f"{shown(most, 'µs')} a call, "
        + (
            f"{shown(loop - most, 'µs')} less than measured; the echo's thread takes "
            f"{shown(echo_loop, 'µs')} a call there, so what a decision adds on it must come "
            f"from {shown(loop - echo_loop, 'µs')} down to {shown(most - echo_loop, 'µs')}, "
            "with the driver and Redis on the same 2 cores."
            if loop > most
            else f"{shown(most - loop, 'µs')} more than measured: the thread has room to spare."
        )
    ) + _queued_text(get)


def _queued_text(get: Reader[TransportFigures]) -> str:
    """Where the 64 calls in flight wait: the decision rounds' size and the time a call spent in
    the server's handler, against the driver's wait (said when the run measured them)."""
    per_round = get(lambda f: f["redis_unary"].get("events_per_round"))
    in_server = get(lambda f: f["redis_unary"].get("server_us_per_call"))
    waited = get(lambda f: f["decide_unary"]["latency_us"]["p50"])
    in_flight = get(lambda f: f["plan"]["concurrency"])
    if per_round is None or in_server is None or waited is None or in_flight is None:
        return ""
    return (
        f" Of the {shown(in_flight)} calls in flight, a decision round decided "
        f"{shown(per_round)} on average, and a call spent {shown(in_server, 'µs')} in "
        f"journeyman's handler (mean) of the {shown(waited, 'µs')} the driver waited for it "
        "(p50): the rest of the wait, outside the handler, is queued in gRPC behind the event "
        "loop's busy thread."
    )


def other_threads_us(result: Result) -> float | None:
    """CPU per call of the server's threads but its event loop's and its Redis's."""
    loop, tree = result.get("server_loop_cpu_us_per_call"), result["server_cpu_us_per_call"]
    if loop is None or tree is None:
        return None
    return tree - result["server_cpu_by_process_us_per_call"].get("redis-server", 0.0) - loop


def concurrent_floor(runs: Runs, *, streams: bool) -> str:
    """Concurrent calls (concurrency 64) or streams: at the target's rate the cores have so
    much CPU per event; the echo's own server and driver take theirs at its rate, and the
    cheapest decision measured (in DecideBatch calls of 200, with Redis's CPU per event there)
    must fit in what is left."""
    if streams:
        run, section, target = "streaming", STREAMING_SECTION, t.STREAM_THROUGHPUT
        head = "**The floor of DecideStream.**"
        streamed = Reader(runs.figures.get("streaming"))
        echo, decide = streamed(lambda f: f["echo_stream"]), streamed(lambda f: f["decide_stream"])
    else:
        run, section, target = "transport", TRANSPORT_SECTION, t.UNARY_THROUGHPUT
        head = "**The floor at concurrency 64.**"
        unary = Reader(runs.figures.get("transport"))
        echo, decide = unary(lambda f: f["echo_unary"]), unary(lambda f: f["decide_unary"])
    echo_rate = Reader(echo)(lambda r: r["events_per_s"])
    echo_server = per_event_cpu(echo, Reader(echo)(lambda r: r["server_cpu_us_per_call"]))
    echo_driver = per_event_cpu(echo, Reader(echo)(lambda r: r["client_cpu_us_per_call"]))
    batch = Reader(runs.figures.get("batch"))(lambda f: f["decide_batch"])
    redis = per_event_cpu(
        batch, Reader(batch)(lambda r: r["server_cpu_by_process_us_per_call"]["redis-server"])
    )
    decision = Reader(runs.figures.get(RUN))(in_batches_us)
    echo_costs, added = _total(echo_server, echo_driver), _total(decision, redis)
    if echo_rate is None or not echo_rate > 0 or echo_costs is None or added is None:
        return (
            f"{head} Not measured ({runs.missing(run, 'batch', RUN)}): the {CORES} cores' CPU "
            f"per event at the target's rate, less the echo's own (section {section}), against "
            f"an event's whole decision in DecideBatch calls of 200 ({shown(decision, 'µs')})."
        )
    rate = target.bound * echo_rate
    budget = CORES * 1e6 / rate
    left = budget - echo_costs
    said = (
        f"{head} At the target ({target.shown}: {shown(rate, 'events/s')}) the {CORES} cores "
        f"have {shown(budget, 'µs')} per event for everything. The echo's own costs at its rate "
        f"(section {section}: its server's {shown(echo_server, 'µs')} and the driver's "
        f"{shown(echo_driver, 'µs')}) take {shown(echo_costs, 'µs')} of it, leaving "
        f"{shown(left, 'µs')} for what a decision adds. The cheapest decision measured, an "
        f"event's whole decision in DecideBatch calls of 200 (above: {shown(decision, 'µs')}) "
        f"and Redis's CPU per event there (section {BATCH_SECTION}: {shown(redis, 'µs')}), "
        f"takes {shown(added, 'µs')}: "
    )
    if added > left:
        said += (
            f"out of reach on {CORES} cores shared with the driver until these get cheaper, "
            "whatever else the service costs."
        )
    else:
        said += (
            f"{shown(left - added, 'µs')} an event is left for the calls' smaller batches, "
            "gRPC beyond the echo's and the rest."
        )
    server = per_event_cpu(decide, Reader(decide)(lambda r: r["server_cpu_us_per_call"]))
    driver = per_event_cpu(decide, Reader(decide)(lambda r: r["client_cpu_us_per_call"]))
    if server is not None and driver is not None and echo_server is not None:
        said += (
            f" Section {section} measured {shown(server, 'µs')} of server CPU per event (Redis's "
            f"included), {shown(server - echo_server - added, 'µs')} above the echo's server and "
            f"the cheapest decision together, and {shown(driver, 'µs')} of the driver's."
        )
    return said


def batch_floor(runs: Runs) -> str:
    """DecideBatch: the cores at an event's whole decision in calls of 200, plus what its Redis
    and the driver spent per event in section 3, give at most this many events a second; one
    server process, on one thread, at most what its own CPU per event allows; and the stack
    alone (Redis through redis-py, the driver) leaves the target's per-event budget this much."""
    result = Reader(runs.figures.get("batch"))(lambda f: f["decide_batch"])
    get = Reader(result)
    redis = per_event_cpu(
        result, get(lambda r: r["server_cpu_by_process_us_per_call"]["redis-server"])
    )
    driver = per_event_cpu(result, get(lambda r: r["client_cpu_us_per_call"]))
    event = Reader(runs.figures.get(RUN))(in_batches_us)
    each = _total(event, redis, driver)
    head = "**The floor of DecideBatch.**"
    if each is None or each <= 0:
        return (
            f"{head} Not measured ({runs.missing('batch', RUN)}): {CORES} cores at an event's "
            f"whole decision in calls of 200 ({shown(event, 'µs')}) plus Redis's and the "
            f"driver's CPU per event in section {BATCH_SECTION}."
        )
    bound = CORES * 1e6 / each
    reach = (
        "within reach of the target: gRPC and the calls' own work beyond the in-process "
        "decision decide whether it is met"
        if t.BATCH_EVENTS_PER_S.holds(bound)
        else "the target is out of reach until these get cheaper"
    )
    said = (
        f"{head} {CORES} cores at {shown(each, 'µs')} per event (its whole decision in calls of "
        f"200 above, validation included: {shown(event, 'µs')}; Redis's CPU per event in "
        f"section {BATCH_SECTION}: {shown(redis, 'µs')}; the driver's: {shown(driver, 'µs')}) "
        f"give at most {shown(bound, 'events/s')}, against the target "
        f"{t.BATCH_EVENTS_PER_S.shown}: {reach}. Section {BATCH_SECTION} measured "
        f"{shown(get(lambda r: r['events_per_s']), 'events/s')}."
    )
    own = per_event_cpu(result, get(lambda r: r["server_cpu_by_process_us_per_call"]["journeyman"]))
    if own is not None and own > 0:
        said += (
            f" One server process decides on one thread: at its {shown(own, 'µs')} of CPU per "
            f"event there it commits at most {shown(1e6 / own, 'events/s')}."
        )
    return said + _stack_floor(runs, driver)


def _stack_floor(runs: Runs, driver: float | None) -> str:
    """What the target leaves per event once Redis, reached through redis-py at its best (64
    events a pipeline, section 4), and the driver have had theirs, against the least an event's
    own work in DecideBatch takes (`_batched_work`)."""
    client = redis_py_figure(runs, REDIS_PIPELINED, lambda r: r["client_cpu_us_per_event"])
    redis = redis_py_figure(runs, REDIS_PIPELINED, lambda r: r["redis_cpu_us_per_event"])
    stack = _total(client, redis, driver)
    if stack is None:
        return ""
    budget = CORES * 1e6 / t.BATCH_EVENTS_PER_S.bound
    left = budget - stack
    said = (
        f" At the target's rate the {CORES} cores have {shown(budget, 'µs')} per event for "
        f"everything; Redis alone through redis-py, 64 events a pipeline and nothing else "
        f"(section {REDIS_SECTION}: the client's {shown(client, 'µs')} and Redis's "
        f"{shown(redis, 'µs')} per event), and the driver's {shown(driver, 'µs')} take "
        f"{shown(stack, 'µs')} of it"
    )
    if left <= 0:
        return said + ": the target is beyond this machine before any work of the service."
    work = _batched_work(runs)
    if work is not None and left < work[0]:
        return (
            f"{said}, leaving {shown(left, 'µs')} for gRPC, validation, the engine and the "
            f"answer, where {work[1]} alone take {shown(work[0], 'µs')}: out of reach on {CORES} "
            "cores shared with the driver, whatever the rest of the service costs."
        )
    return f"{said}, leaving {shown(left, 'µs')} for gRPC, validation, the engine and the answer."


def _batched_work(runs: Runs) -> tuple[float, str] | None:
    """The least CPU an event's own work takes in DecideBatch, and what it sums: its validation,
    the batched kernel with the events' encoding (section 5: DecideBatch decides a call's new
    events in one kernel call), its answer and its state's encoding (the parts, this section);
    None unless all were measured."""
    per_s = Reader(runs.figures.get("engine"))(lambda f: f["many"]["retail_encode_and_many_per_s"])
    parts = Reader(runs.figures.get(RUN))(lambda f: f["parts_us"])
    if per_s is None or not known(per_s) or per_s <= 0 or parts is None:
        return None
    kernel = 1e6 / per_s
    validation, answer, state = parts["validation"], parts["answer"], parts["state"]
    work = _total(validation, kernel, answer, state)
    if work is None:
        return None
    return work, (
        f"validation ({shown(validation, 'µs')}), the batched kernel with the events' encoding "
        f"(section {ENGINE_SECTION}: {shown(kernel, 'µs')}), the answer ({shown(answer, 'µs')}) "
        f"and the state's encoding ({shown(state, 'µs')}, the parts above)"
    )


# --- the section ---------------------------------------------------------------------------------


def _round_trips(get: Reader[PartsFigures]) -> list[Figure]:
    bare = get(lambda f: f["round_trip_us"]["bare_us"])
    return [
        Figure("a Redis round trip's client CPU, no client library (asyncio + hiredis): one "
               "HSET of 1,200 B", bare, "µs"),
        Figure("the same through the service's `Pipeliner.send`",
               get(lambda f: f["round_trip_us"]["pipeliner_us"]), "µs", bare, NO_CLIENT),
        Figure("the same through redis-py's pipeline and pool (`execute()`: how the Pipeliner "
               "sent before it kept its connections)",
               get(lambda f: f["round_trip_us"]["redis_py_us"]), "µs", bare, NO_CLIENT),
    ]  # fmt: skip


def _wholes(get: Reader[PartsFigures]) -> list[Figure]:
    """The whole decision against its parts, and what running them together adds."""
    summed = get(lambda f: parts_sum(f["parts_us"]))
    no_commit = get(lambda f: parts_sum(f["parts_us"]) - f["parts_us"]["commit"])
    return [
        Figure("a decision, one event at a time: `Decider.decide` + validation",
               get(one_at_a_time_us), "µs", summed, "the parts' sum"),
        Figure("a decision in DecideBatch calls of 200: `Decider.decide_batch` + validation, per "
               "event", get(in_batches_us), "µs", no_commit, "the parts but the commit"),
        Figure("the parts' sum (the commit's record counted once)", summed, "µs"),
        Figure("running the parts together, one event at a time (the whole less the parts' sum):"
               " event-loop turns, coalescing, bookkeeping, cold caches", get(together_us), "µs"),
        Figure("the same in DecideBatch calls of 200 (the whole less the parts but the commit): "
               "each event's share of its call's load and commit pipelines, bookkeeping",
               get(lambda f: in_batches_us(f) - parts_sum(f["parts_us"]) + f["parts_us"]["commit"]),
               "µs"),
    ]  # fmt: skip


def _calls(get: Reader[PartsFigures]) -> list[Figure]:
    """How much code a lone decision runs (`benchmarks.calls`), and the engine's share of it."""

    def count(pick: Callable[[CallCounts], float]) -> float | None:
        return get(lambda f: pick(f["calls_per_event"]))

    python, c_calls = count(lambda c: c["python"]), count(lambda c: c["c"])
    return [
        Figure("Python function calls per event, one at a time: `Decider.decide` + validation "
               "(counted, not timed)", python),
        Figure("of them in the engine (code under engine/)", count(lambda c: c["engine_python"]),
               "", python, "all of them"),
        Figure("C function calls per event, the same (builtins, numpy, the compiled kernels)",
               c_calls),
        Figure("of them called from the engine", count(lambda c: c["engine_c"]), "", c_calls,
               "all of them"),
    ]  # fmt: skip


def _parts(get: Reader[PartsFigures]) -> list[Figure]:
    def part(name: str, pick: Callable[[DecisionPartsUs], float]) -> Figure:
        return Figure(f"part: {name}", get(lambda f: pick(f["parts_us"])), "µs")

    return [
        part("validation (`decide_input`)", lambda p: p["validation"]),
        part("the engine (`engine.decide.decide`)", lambda p: p["engine"]),
        part("the answer and its ring entry (`decision_to_pb` + `kept_decision`)",
             lambda p: p["answer"]),
        part("the state's encoding (`engine.codec.encode_state`)", lambda p: p["state"]),
        part("the timer and outbox write (`event_timer_write`)", lambda p: p["timer"]),
        part("the record: msgpack + zstd of the state and the ring (`encode_record`)",
             lambda p: p["record"]),
        Figure("part: one commit less its record (`Store.commit_many` of one ToCommit: the "
               "ring, commit.lua's EVALSHA through the Pipeliner, the state cache)",
               get(lambda f: f["parts_us"]["commit"] - f["parts_us"]["record"]), "µs",
               get(lambda f: f["round_trip_us"]["pipeliner_us"]),
               "one HSET through the Pipeliner"),
    ]  # fmt: skip


def _in_a_server(get: Reader[PartsFigures], transport: Reader[TransportFigures]) -> list[Figure]:
    """The parts as a server runs them, one call at a time (the bare Decide of section 1, which
    times them on its thread), each against the same part alone in a loop."""
    served = transport(lambda f: f["bare_parts_us"])

    def part(name: str, key: str, alone: Callable[[DecisionPartsUs], float] | None) -> Figure:
        return Figure(
            f"in a server, one call at a time (the bare Decide): {name}",
            served[key] if served else None, "µs",
            None if alone is None else get(lambda f: alone(f["parts_us"])),
            "" if alone is None else "the part alone in a loop",
        )  # fmt: skip

    in_server = sum(served[key] for key in SERVED_PARTS) if served else None
    loop = transport(lambda f: f["bare_lockstep"]["server_loop_cpu_us_per_call"])
    return [
        part("validation", "validation", lambda p: p["validation"]),
        part("the engine", "engine", lambda p: p["engine"]),
        part("the answer and its ring entry", "answer", lambda p: p["answer"]),
        part("the state's encoding", "state", lambda p: p["state"]),
        part("the timer write, the record and commit.lua's arguments", "commit_args",
             lambda p: p["timer"] + p["record"]),
        part("the commit's round trip: its EVALSHA sent and its reply read", "round_trip",
             lambda p: p["commit"] - p["record"]),
        part("a customer's state loaded (their first event), per call", "load", None),
        Figure("in a server, one call at a time: the parts' sum", in_server, "µs",
               get(lambda f: parts_sum(f["parts_us"])), "the parts' sum alone"),
        Figure("the bare Decide's event loop thread besides its parts: gRPC, the event loop",
               None if in_server is None or loop is None else loop - in_server, "µs",
               transport(lambda f: f["echo_lockstep"]["server_loop_cpu_us_per_call"]),
               "echo's loop thread"),
    ]  # fmt: skip


def _how(get: Reader[PartsFigures]) -> str:
    plan = Reader(get(lambda f: f["plan"]))
    events = shown(plan(lambda p: p["events"]))
    return (
        "`benchmarks.decision_parts`, in one process on uvloop against a redis-server of its own "
        f"(Redis {get(lambda f: f['redis_version']) or '?'}, over its unix socket, configured as "
        f"the embedded one), on the retail rules: {shown(plan(lambda p: p['customers']))} "
        "shoppers of `benchmarks.load.drive`, each decided once first so that every event finds "
        "its customer in the store's state cache. The whole: the service's `Decider` built as "
        f"`create_server` builds it, no gRPC; {events} events one at a time (`decide`, each "
        f"awaited before the next is sent) and {shown(plan(lambda p: p['batches']))} DecideBatch "
        f"calls of {shown(plan(lambda p: p['batch']))} (`decide_batch`), the requests validated "
        "before each timed run (validation is a part). The parts: the calls "
        f"`server.decisions.round` makes for an event, each alone in a loop over {events} events "
        "of the same shoppers on their cached states, with the round's arguments; the commit's "
        "record is a part of its own, so the commit is shown without it. Round trips: "
        f"{shown(plan(lambda p: p['round_trips']))} HSETs one after the other, each client to a "
        "key of its own (`benchmarks.redis.round_trip`). CPU of the process "
        "(`time.process_time`) per event or round trip, the least of "
        f"{shown(plan(lambda p: p['repeats']))} timed runs after an untimed one, the collector "
        "paused. Calls: the Python and C function calls of validation and `Decider.decide` on "
        f"{shown(plan(lambda p: p['counted_events']))} more events one at a time, each sent 1 ms "
        "after the last was answered as a lone caller sends it, counted with `sys.setprofile` "
        "(`benchmarks.calls`): how much code a decision runs, about the same on any host where its "
        "CPU time moves with the neighbours (work batched on a timer, the metrics and the journey "
        "statistics, counts where it lands). In a server: the same parts as the bare Decide of "
        "section "
        f"{TRANSPORT_SECTION} (`benchmarks.load.bare`) runs them, one call at a time, each timed "
        "on its thread (`time.thread_time_ns` between them) over every call of its run, against "
        "the part alone in a loop; what its event loop's thread spends besides them is gRPC's "
        "and the event loop's share, against the echo's whole thread."
    )


def decision_parts(runs: Runs) -> Section:
    get = Reader(runs.figures.get(RUN))
    after: list[str | Table] = [
        lone_call_floor(runs), lone_latency_floor(runs), loop_thread_floor(runs),
        concurrent_floor(runs, streams=False), concurrent_floor(runs, streams=True),
        batch_floor(runs),
    ]  # fmt: skip
    transport = Reader(runs.figures.get("transport"))
    figures = [
        *_round_trips(get), *_wholes(get), *_calls(get), *_parts(get),
        *_in_a_server(get, transport),
    ]  # fmt: skip
    return Section("Where a decision's CPU goes (issue 16)", _how(get), figures, after,
                   runs.errors_of(RUN))  # fmt: skip
