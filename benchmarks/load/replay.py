"""The real BPIC 2012 loan log (262,200 events, 13,087 applications) through a running service.

Every application is one customer. Its events go in order over one `DecideStream`; the cases are
spread over several streams, and each stream keeps up to `window` events in flight, each of a
different case: one customer never has two events in flight at once, so no event can see its
customer's state before the previous one was committed, whatever the server does with a stream's
events. The engine replays the same log in-process (`server.tools.event_logs.decide_log`, as the
replay test does); the service must end with the same stage for every customer and the same
per-stage counts in Redis, with no errors.

    python -m benchmarks.load.replay [--quick] [--streams 16] [--window 4] [--cases N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import grpc
import redis.asyncio as redis

from benchmarks import ROOT
from benchmarks.load.drive import CpuMark
from benchmarks.load.service import journeyman
from benchmarks.report.run_figures import ReplayFigures
from engine.compile import compile_ruleset
from engine.rules.load import parse_journeys
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.store.keys import Keyspace
from server.tools.event_logs import (
    LoanEvent,
    bpic2012_csv,
    decide_log,
    loan_event,
    read_bpic2012,
)

RULES_FILE = ROOT / "rules" / "loan_application.yaml"
JOURNEY = "loan_application"
QUICK_CASES = 400  # about 8,000 events
STATS_SETTLE_S = 10.0  # the service bumps stage counts off the hot path; wait this long at most
LOOKUP_CONCURRENCY = 32  # GetCustomer calls in flight while reading every customer's stage

Item = TypeVar("Item")
Numbered = tuple[int, LoanEvent]  # (row number in the replayed log, the row)


# --- the log as requests --------------------------------------------------------------------------


def first_cases(rows: Iterable[LoanEvent], limit: int | None) -> list[LoanEvent]:
    """The rows of the first `limit` cases (in order of their first row), file order kept;
    every row when `limit` is None."""
    if limit is None:
        return list(rows)
    chosen: set[str] = set()
    kept = []
    for row in rows:
        if row.case_id not in chosen:
            if len(chosen) == limit:
                continue
            chosen.add(row.case_id)
        kept.append(row)
    return kept


def by_case(rows: Sequence[LoanEvent]) -> dict[str, list[Numbered]]:
    """Each case's rows in log order, numbered by their place in `rows` (the event id's number)."""
    cases: dict[str, list[Numbered]] = {}
    for number, row in enumerate(rows):
        cases.setdefault(row.case_id, []).append((number, row))
    return cases


def as_request(numbered: Numbered) -> pb.DecideRequest:
    """A log row as the DecideRequest a bank's systems would send: the very event the in-process
    replay decides (same id, type, channel, touchpoint, properties), at the row's own time."""
    number, row = numbered
    event = loan_event(number, row)
    properties = {}
    for name, value in event.properties.items():
        if isinstance(value, bool):
            properties[name] = pb.Value(bool_value=value)
        elif isinstance(value, str):
            properties[name] = pb.Value(string_value=value)
        else:
            properties[name] = pb.Value(number_value=float(value))
    return pb.DecideRequest(
        event=pb.Event(
            event_id=event.event_id, customer_id=event.customer_id, type=event.type,
            channel=event.channel, touchpoint=event.touchpoint, timestamp_ms=row.timestamp_ms,
            properties=properties,
        )
    )  # fmt: skip


def spread_over_streams(sizes: Sequence[int], streams: int) -> list[list[int]]:
    """Case indexes per stream, each case on exactly one stream, streams about equally loaded in
    events: the largest case goes to the least-loaded stream first (longest-processing-time)."""
    loads = [(0, stream) for stream in range(max(1, streams))]
    heapq.heapify(loads)
    assigned: list[list[int]] = [[] for _ in loads]
    for case in sorted(range(len(sizes)), key=lambda c: (-sizes[c], c)):
        load, stream = heapq.heappop(loads)
        assigned[stream].append(case)
        heapq.heappush(loads, (load + sizes[case], stream))
    return assigned


# --- one stream's cases ---------------------------------------------------------------------------


class StreamSchedule(Generic[Item]):
    """What one stream sends next: up to `window` events in flight, never two of one case.

    Each of up to `window` open cases has exactly one event in flight; its answer releases the
    case's next event, or, once the case is finished, the first event of the next waiting case.
    """

    def __init__(self, cases: Sequence[Sequence[Item]], window: int) -> None:
        self._waiting = deque(case for case in enumerate(cases) if case[1])
        self._next_of: dict[int, int] = {}  # open case -> index of its next unsent event
        self._cases = cases
        self._window = max(1, window)

    def start(self) -> list[tuple[int, Item]]:
        """The first events to send: one from each of the first `window` cases."""
        return [first for _ in range(self._window) if (first := self._open_next()) is not None]

    def answered(self, case: int) -> tuple[int, Item] | None:
        """`case`'s event was answered: the event to send in its place, if any is left."""
        position = self._next_of.pop(case)
        if position < len(self._cases[case]):
            self._next_of[case] = position + 1
            return case, self._cases[case][position]
        return self._open_next()

    @property
    def in_flight(self) -> int:
        return len(self._next_of)

    def _open_next(self) -> tuple[int, Item] | None:
        if not self._waiting:
            return None
        case, events = self._waiting.popleft()
        self._next_of[case] = 1
        return case, events[0]


@dataclass
class StreamReplay:
    """What the service answered while the cases went through it."""

    sent: int = 0
    answered: int = 0
    degraded: int = 0
    duplicates: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0  # sent or still to send when a stream failed
    final_stages: dict[str, dict[str, str]] = field(default_factory=dict)  # customer -> journey
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float | None = None


async def _replay_one_stream(
    stub: Any,
    cases: Sequence[Sequence[Item]],
    to_request: Callable[[Item], pb.DecideRequest],
    window: int,
    result: StreamReplay,
) -> None:
    schedule = StreamSchedule(cases, window)
    call = stub.DecideStream()
    # What the writer sends next; None once the last answer is in (then it closes the stream).
    ready: asyncio.Queue[tuple[int, Item] | None] = asyncio.Queue()
    case_of: dict[str, int] = {}  # event id in flight -> its case
    answered_here = 0

    async def write() -> None:
        while (next_event := await ready.get()) is not None:
            case, item = next_event
            request = to_request(item)
            case_of[request.event.event_id] = case
            result.sent += 1
            await call.write(pb.DecideStreamRequest(request=request))
        await call.done_writing()

    async def read() -> None:
        nonlocal answered_here
        async for response in call:
            answered_here += 1
            _record(result, response.decision)
            following = schedule.answered(case_of.pop(response.decision.event_id))
            if following is not None:
                ready.put_nowait(following)
            elif schedule.in_flight == 0:
                ready.put_nowait(None)

    for first in schedule.start():
        ready.put_nowait(first)
    if schedule.in_flight == 0:
        ready.put_nowait(None)
    try:
        async with asyncio.TaskGroup() as group:  # a failed stream stops its writer too
            group.create_task(write())
            group.create_task(read())
    except* grpc.aio.AioRpcError as failures:
        first_failure = failures.exceptions[0]
        code = (
            first_failure.code().name
            if isinstance(first_failure, grpc.aio.AioRpcError)
            else "UNKNOWN"
        )
        result.errors[code] += 1
        result.unanswered += sum(len(c) for c in cases) - answered_here


def _record(result: StreamReplay, decision: pb.Decision) -> None:
    result.answered += 1
    result.degraded += decision.degraded
    result.duplicates += decision.duplicate
    result.final_stages[decision.customer_id] = {j.journey: j.stage for j in decision.journeys}


async def stream_cases(
    address: str,
    cases: Sequence[Sequence[Item]],
    to_request: Callable[[Item], pb.DecideRequest],
    *,
    streams: int,
    window: int,
    server_pid: int | None = None,
) -> StreamReplay:
    """Send every case's events, in order, over `streams` DecideStreams of `address`."""
    result = StreamReplay()
    per_stream = spread_over_streams([len(c) for c in cases], streams)
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10.0)
        stub = pb_grpc.JourneyServiceStub(channel)
        begin = CpuMark.now(server_pid)
        await asyncio.gather(
            *(
                _replay_one_stream(stub, [cases[i] for i in chosen], to_request, window, result)
                for chosen in per_stream
                if chosen
            )
        )
        end = CpuMark.now(server_pid)
    result.wall_s = end.wall_s - begin.wall_s
    result.client_cpu_s = end.client_s - begin.client_s
    if begin.server_s is not None and end.server_s is not None:
        result.server_cpu_s = sum(end.server_s.values()) - sum(begin.server_s.values())
    return result


# --- what the service and the engine ended with ---------------------------------------------------


async def stats_stage_counts(redis_url: str, journey: str, customers: int) -> dict[str, int]:
    """The service's customers-per-stage counts for `journey`, read from its Redis once they add
    up to `customers` and stop moving (they are bumped off the hot path, a moment after the
    answers), or as they stand after `STATS_SETTLE_S`."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    key = Keyspace().stage_counts(journey)  # the service runs with the default key prefix
    deadline = time.monotonic() + STATS_SETTLE_S
    previous: dict[str, int] | None = None
    try:
        while True:
            raw = await client.hgetall(key)
            counts = {str(stage): int(n) for stage, n in raw.items() if int(n)}
            settled = counts == previous and sum(counts.values()) == customers
            if settled or time.monotonic() > deadline:
                return counts
            previous = counts
            await asyncio.sleep(0.2)
    finally:
        await client.aclose()


async def customer_stages(address: str, customers: Sequence[str], journey: str) -> dict[str, str]:
    """Each customer's stage in `journey` now, as GetCustomer reports it."""
    stages: dict[str, str] = {}
    slots = asyncio.Semaphore(LOOKUP_CONCURRENCY)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.JourneyServiceStub(channel)

        async def look_up(customer: str) -> None:
            async with slots:
                reply = await stub.GetCustomer(pb.GetCustomerRequest(customer_id=customer))
            for j in reply.customer.journeys:
                if j.journey == journey:
                    stages[customer] = j.stage

        await asyncio.gather(*(look_up(c) for c in customers))
    return stages


@dataclass(frozen=True)
class EngineReplay:
    """The in-process replay through `decide()`: each case's final stage, and its speed."""

    final_stage: dict[str, str]
    events_per_s: float


def engine_replay(rows: Sequence[LoanEvent]) -> EngineReplay:
    """`decide_log` over `rows`, as the replay test does, numbering events as the service does."""
    text = RULES_FILE.read_text(encoding="utf-8")
    ruleset = compile_ruleset(parse_journeys([(str(RULES_FILE), text)]))
    started = time.perf_counter()
    final_stage = {row.case_id: decision.stage for row, decision in decide_log(ruleset, rows)}
    elapsed = time.perf_counter() - started
    return EngineReplay(final_stage, len(rows) / elapsed if elapsed else 0.0)


def compare_stages(service: dict[str, str], engine: dict[str, str]) -> list[str]:
    """The customers whose stage differs (or is missing on one side), sorted."""
    return sorted(c for c in service.keys() | engine.keys() if service.get(c) != engine.get(c))


# --- the benchmark --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How much of the log, over how many streams, with how many events in flight per stream."""

    cases: int | None = None  # the first N cases; None: all 13,087
    streams: int = 16
    window: int = 4


QUICK = Plan(cases=QUICK_CASES)


def _per_event_us(seconds: float | None, events: int) -> float | None:
    return None if seconds is None or not events else round(seconds / events * 1e6, 1)


def summary(
    replayed: StreamReplay,
    engine: EngineReplay,
    stats: dict[str, int],
    looked_up: dict[str, str],
    *,
    streams: int,
    window: int,
) -> ReplayFigures:
    """The figures of one replay, JSON-serialisable, units in the key names."""
    answered_stages = {c: s[JOURNEY] for c, s in replayed.final_stages.items() if JOURNEY in s}
    engine_counts = Counter(engine.final_stage.values())
    mismatched = compare_stages(looked_up, engine.final_stage)
    events = replayed.answered
    return {
        "events": events,
        "cases": len(engine.final_stage),
        "streams": streams,
        "window": window,
        "wall_s": round(replayed.wall_s, 3),
        "events_per_s": round(events / replayed.wall_s, 1) if replayed.wall_s else 0.0,
        "errors": dict(replayed.errors),
        "errors_total": sum(replayed.errors.values()),
        "unanswered_events": replayed.unanswered,
        "degraded": replayed.degraded,
        "duplicates": replayed.duplicates,
        "client_cpu_us_per_event": _per_event_us(replayed.client_cpu_s, events),
        "server_cpu_us_per_event": _per_event_us(replayed.server_cpu_s, events),
        "stage_counts_service": dict(sorted(stats.items())),
        "stage_counts_engine": dict(sorted(engine_counts.items())),
        "stage_counts_match": stats == dict(engine_counts),
        "answers_match_engine": not compare_stages(answered_stages, engine.final_stage),
        "customers_checked": len(looked_up),
        "customers_mismatched": len(mismatched),
        "mismatched_examples": mismatched[:5],
        "engine_in_process_events_per_s": round(engine.events_per_s, 1),
    }


async def _replay_through(
    address: str, redis_url: str, server_pid: int, cases: dict[str, list[Numbered]], plan: Plan
) -> tuple[StreamReplay, dict[str, int], dict[str, str]]:
    replayed = await stream_cases(
        address, list(cases.values()), as_request,
        streams=plan.streams, window=plan.window, server_pid=server_pid,
    )  # fmt: skip
    stats = await stats_stage_counts(redis_url, JOURNEY, len(cases))
    looked_up = await customer_stages(address, list(cases), JOURNEY)
    return replayed, stats, looked_up


def measure(quick: bool = False, plan: Plan | None = None) -> ReplayFigures:
    """Replay the log (or its first cases) through a fresh service and the engine; the figures."""
    plan = plan or (QUICK if quick else Plan())
    path = bpic2012_csv()
    if not path.is_file():
        raise FileNotFoundError(
            f"the BPIC 2012 log is not at {path}; set JOURNEYMAN_EVENT_DATA_DIR to the folder"
            " holding bpic2012/events.csv.gz"
        )
    rows = first_cases(read_bpic2012(path), plan.cases)
    engine = engine_replay(rows)  # before the server starts: it would compete for the CPU
    cases = by_case(rows)
    with journeyman(rules=RULES_FILE) as running:
        replayed, stats, looked_up = asyncio.run(
            _replay_through(running.address, running.embedded_redis_url(), running.pid, cases, plan)
        )
    return summary(replayed, engine, stats, looked_up, streams=plan.streams, window=plan.window)


def format_table(figures: ReplayFigures) -> str:
    """The figures as a small table, and the stage distribution side by side."""
    rows = [
        ("events", f"{figures['events']:,} of {figures['cases']:,} cases"),
        ("streams", f"{figures['streams']} × window {figures['window']}"),
        ("rate", f"{figures['events_per_s']:,.0f} events/s ({figures['wall_s']:.1f} s)"),
        ("errors", f"{figures['errors_total']} {figures['errors'] or ''}".strip()),
        ("unanswered", str(figures["unanswered_events"])),
        ("degraded", str(figures["degraded"])),
        ("client CPU", f"{figures['client_cpu_us_per_event']} µs/event"),
        ("server CPU", f"{figures['server_cpu_us_per_event']} µs/event (process tree)"),
        ("engine alone", f"{figures['engine_in_process_events_per_s']:,.0f} events/s"),
        (
            "per customer",
            f"{figures['customers_mismatched']} of {figures['customers_checked']}"
            " differ from the engine (GetCustomer)",
        ),  # fmt: skip
        ("stage counts", "match" if figures["stage_counts_match"] else "DIFFER"),
    ]
    lines = [f"{name:<14} {value}" for name, value in rows]
    service, engine = figures["stage_counts_service"], figures["stage_counts_engine"]
    lines.append(f"\n{'stage':<14} {'service':>8} {'engine':>8}")
    for stage in sorted(service.keys() | engine.keys()):
        lines.append(f"{stage:<14} {service.get(stage, 0):>8} {engine.get(stage, 0):>8}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks.load.replay`: one replay, printed as a table or JSON; exit 1 when the
    service disagreed with the engine or any event failed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load.replay", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"the first {QUICK_CASES} cases")
    parser.add_argument("--cases", type=int, help="replay only the first N cases")
    parser.add_argument("--streams", type=int, default=Plan.streams, help="DecideStreams")
    parser.add_argument("--window", type=int, default=Plan.window, help="events in flight each")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.window < 1 or (args.cases is not None and args.cases < 1):
        parser.error("--streams, --window and --cases must be at least 1")
    cases = args.cases if args.cases is not None else (QUICK_CASES if args.quick else None)
    figures = measure(plan=Plan(cases, args.streams, args.window))
    print(json.dumps(figures) if args.json else format_table(figures))
    agrees = figures["stage_counts_match"] and not figures["customers_mismatched"]
    return 0 if agrees and not figures["errors_total"] and not figures["unanswered_events"] else 1


if __name__ == "__main__":
    sys.exit(main())
