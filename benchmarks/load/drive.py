"""A lean asyncio load driver for JourneyService: what locust on 2 cores cannot reach.

One process, a grpc.aio client over several channels. Closed loop: `--concurrency` workers each
send the next event as soon as the last was answered. Open loop (`--rate`): calls start on a fixed
schedule whatever the answers, and latency counts from the scheduled start, so a slow server is
not hidden by a client that waited for it (coordinated omission). Unary (`Decide`) or streaming
(`DecideStream`, each worker holding one stream with up to `--window` events in flight).

    python -m benchmarks.load.drive --target localhost:50051 --mode unary --concurrency 64 \\
        --duration 10 --warmup 2 [--rate 2000] [--server-pid PID] [--json]

It prints the achieved rate, p50/p90/p99/p99.9 latency in µs, errors by status code, and the
client's (and with `--server-pid`, the server process tree's) CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import statistics
import sys
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

import grpc

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc

MAX_DURATION_S = 120.0
MAX_WARMUP_S = 30.0
MAX_IN_FLIGHT_OPEN = 20_000  # open loop: beyond this many unanswered calls, count and skip
CONNECT_TIMEOUT_S = 10.0
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REDIS_PROCESS = "redis-server"
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}

# A small retail journey: what a shopper does next, given what they just did.
_NEXT: dict[str, tuple[str, ...]] = {
    "start": ("page_view",),
    "page_view": ("page_view", "product_view", "product_view", "product_view"),
    "product_view": ("product_view", "product_view", "add_to_cart", "page_view"),
    "add_to_cart": ("product_view", "payment_error", "purchase", "purchase"),
    "payment_error": ("payment_error", "purchase", "purchase", "page_view"),
    "purchase": ("page_view", "product_view"),
}
_TOUCHPOINT = {
    "page_view": "home", "product_view": "product_page", "add_to_cart": "cart",
    "payment_error": "checkout", "purchase": "checkout",
}  # fmt: skip
_CATEGORIES = ("shoes", "shirts", "bags", "watches", "toys")


# --- traffic -------------------------------------------------------------------------------------


def _properties(kind: str, rng: random.Random) -> dict[str, pb.Value]:
    """The properties a retail event of `kind` carries: category, price, load time, error code."""
    props = {"category": pb.Value(string_value=rng.choice(_CATEGORIES))}
    if kind in ("page_view", "product_view"):
        props["load_ms"] = pb.Value(number_value=round(rng.lognormvariate(6.0, 0.8), 1))
    if kind in ("product_view", "add_to_cart", "purchase", "payment_error"):
        props["amount"] = pb.Value(number_value=round(rng.uniform(5.0, 400.0), 2))
    if kind == "payment_error":
        props["code"] = pb.Value(string_value=rng.choice(("card_declined", "3ds_failed")))
    return props


def retail_requests(customers: int, seed: int = 0) -> Iterator[pb.DecideRequest]:
    """An endless stream of Decide requests from `customers` shoppers, each walking the journey.

    Event ids are unique across the stream (and across runs: they carry the start time), so the
    service's dedupe never short-cuts a call."""
    rng = random.Random(seed)
    last = ["start"] * customers
    run = f"{int(time.time() * 1000):x}"
    for number in itertools.count():
        who = rng.randrange(customers)
        kind = rng.choice(_NEXT[last[who]])
        last[who] = kind
        event = pb.Event(
            event_id=f"drv-{run}-{number}", customer_id=f"drv-customer-{who:06d}", type=kind,
            channel="web" if who % 3 else "app", touchpoint=_TOUCHPOINT[kind],
            properties=_properties(kind, rng),
        )  # fmt: skip
        yield pb.DecideRequest(event=event)


# --- measurement ---------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q ≤ 100) of values already sorted ascending."""
    if not sorted_values:
        return math.nan
    rank = math.ceil(q / 100.0 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


@dataclass
class Recorder:
    """Latencies (µs) and errors of the calls that *started* inside the measured window."""

    measure_from: float = math.inf  # perf_counter seconds; calls starting earlier are warm-up
    measure_until: float = math.inf
    latencies_us: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    events: int = 0  # events answered (a DecideBatch call answers many)
    degraded: int = 0  # events answered from the rules alone (Redis failed or was slow)

    def counts(self, started: float) -> bool:
        return self.measure_from <= started < self.measure_until

    def ok(self, started: float, decisions: Sequence[pb.Decision] = ()) -> None:
        if self.counts(started):
            self.latencies_us.append((time.perf_counter() - started) * 1e6)
            self.events += len(decisions)
            self.degraded += sum(d.degraded for d in decisions)

    def failed(self, started: float, code: str) -> None:
        if self.counts(started):
            self.errors[code] += 1


async def _timed(recorder: Recorder, started: float, call: Awaitable[Any]) -> None:
    """Await one call and record it as answered or failed, timed from `started`."""
    try:
        reply = await call
    except grpc.aio.AioRpcError as error:
        recorder.failed(started, error.code().name)
        return
    if isinstance(reply, pb.DecideBatchResponse):
        for result in reply.results:
            if result.error_code:
                recorder.failed(started, f"item {_CODE_NAMES.get(result.error_code, 'UNKNOWN')}")
        recorder.ok(started, [r.decision for r in reply.results if not r.error_code])
    else:
        recorder.ok(started, [reply.decision])


def _cpu_s(stat: str) -> tuple[str, int, float]:
    """(name, parent pid, user + system CPU seconds) from a /proc `stat` line."""
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _tree_cpu_s(pid: int) -> tuple[dict[str, float], float]:
    """CPU seconds (user + system) of process `pid` and its live descendants (`--workers`, the
    embedded Redis), from /proc, summed by process name; and those of their event loops' thread
    (each server process's main thread: the Redis's excluded), the one thread that runs Python,
    where gRPC's other threads run its own C core."""
    parents: dict[int, int] = {}
    cpu: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, parent, seconds = _cpu_s((entry / "stat").read_text())
        except OSError:
            continue  # exited while we looked
        parents[int(entry.name)] = parent
        cpu[int(entry.name)] = (name, seconds)
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    by_name: dict[str, float] = {}
    loop_thread_s = 0.0
    for process in tree:
        if process not in cpu:
            continue
        name, seconds = cpu[process]
        by_name[name] = by_name.get(name, 0.0) + seconds
        if name != REDIS_PROCESS:
            try:
                loop_thread_s += _cpu_s(Path(f"/proc/{process}/task/{process}/stat").read_text())[2]
            except OSError:
                pass  # exited while we looked
    return by_name, loop_thread_s


@dataclass(frozen=True)
class CpuMark:
    """Client process CPU and server tree CPU at one instant (by process name, and the event
    loops' threads)."""

    wall_s: float
    client_s: float
    server_s: dict[str, float] | None
    server_loop_s: float | None = None

    @staticmethod
    def now(server_pid: int | None) -> CpuMark:
        if server_pid is None:
            return CpuMark(time.perf_counter(), time.process_time(), None)
        server, loop = _tree_cpu_s(server_pid)
        return CpuMark(time.perf_counter(), time.process_time(), server, loop)


# --- load shapes ---------------------------------------------------------------------------------

Requests = Iterator[pb.DecideRequest]


@dataclass(frozen=True)
class Plan:
    """What to run: the shape of the load and how long."""

    mode: str  # "unary" or "stream"
    concurrency: int
    rate: float | None  # calls/s for an open loop; None for a closed loop
    window: int  # stream mode: events in flight per stream
    warmup_s: float
    duration_s: float
    batch: int = 100  # batch mode: events per DecideBatch call


async def _closed_unary(stub: Any, requests: Requests, recorder: Recorder, stop: float) -> None:
    """One closed-loop worker: Decide back to back until `stop`."""
    while (started := time.perf_counter()) < stop:
        await _timed(recorder, started, stub.Decide(next(requests)))


async def _closed_batch(
    stub: Any, requests: Requests, recorder: Recorder, stop: float, size: int
) -> None:
    """One closed-loop worker: DecideBatch calls of `size` events back to back until `stop`."""
    while (started := time.perf_counter()) < stop:
        batch = pb.DecideBatchRequest(requests=[next(requests) for _ in range(size)])
        await _timed(recorder, started, stub.DecideBatch(batch))


async def _open_unary(
    stubs: list[Any], requests: Requests, recorder: Recorder, rate: float, stop: float
) -> None:
    """Start a Decide every 1/rate s until `stop`, each timed from its scheduled start."""
    in_flight: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    for number in itertools.count():
        scheduled = start + number / rate
        if scheduled >= stop:
            break
        await _sleep_until(scheduled)
        if len(in_flight) >= MAX_IN_FLIGHT_OPEN:
            recorder.failed(scheduled, "CLIENT_OVERLOADED")
            continue
        call = stubs[number % len(stubs)].Decide(next(requests))
        task = asyncio.create_task(_timed(recorder, scheduled, call))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)


async def _sleep_until(moment: float) -> None:
    # Behind schedule, still yield: answers must be read while late calls are started.
    await asyncio.sleep(max(0.0, moment - time.perf_counter()))


async def _stream_worker(
    stub: Any,
    next_start: Callable[[], Awaitable[float | None]],
    requests: Requests,
    recorder: Recorder,
    window: int,
) -> None:
    """One DecideStream with up to `window` events in flight; answers come in request order."""
    call = stub.DecideStream()
    sent: deque[float] = deque()
    slots = asyncio.Semaphore(window)

    async def write() -> None:
        while (started := await next_start()) is not None:
            await slots.acquire()
            sent.append(started)
            await call.write(pb.DecideStreamRequest(request=next(requests)))
        await call.done_writing()

    async def read() -> None:
        async for reply in call:
            recorder.ok(sent.popleft(), [reply.decision])
            slots.release()

    try:
        async with asyncio.TaskGroup() as group:  # a failed stream stops its writer too
            group.create_task(write())
            group.create_task(read())
    except* grpc.aio.AioRpcError as failures:
        code = _first_code(failures)
        for started in sent:
            recorder.failed(started, code)


def _first_code(failures: BaseExceptionGroup[grpc.aio.AioRpcError]) -> str:
    first = failures.exceptions[0]
    return first.code().name if isinstance(first, grpc.aio.AioRpcError) else "UNKNOWN"


def _closed_starts(stop: float) -> Callable[[], Awaitable[float | None]]:
    async def next_start() -> float | None:
        started = time.perf_counter()
        return started if started < stop else None

    return next_start


def _open_starts(rate: float, stop: float) -> Callable[[], Awaitable[float | None]]:
    """Shared by all streams: the next scheduled start (after sleeping until it), or None."""
    numbers = itertools.count()
    start = time.perf_counter()

    async def next_start() -> float | None:
        scheduled = start + next(numbers) / rate
        if scheduled >= stop:
            return None
        await _sleep_until(scheduled)
        return scheduled

    return next_start


def _workers(
    plan: Plan, stubs: list[Any], requests: Requests, recorder: Recorder, stop: float
) -> list[Awaitable[None]]:
    """The coroutines that make up the load, spread over the channels."""
    stub_of = [stubs[i % len(stubs)] for i in range(plan.concurrency)]
    if plan.mode == "batch":
        return [_closed_batch(s, requests, recorder, stop, plan.batch) for s in stub_of]
    if plan.mode == "unary" and plan.rate is None:
        return [_closed_unary(s, requests, recorder, stop) for s in stub_of]
    if plan.mode == "unary":
        assert plan.rate is not None
        return [_open_unary(stubs, requests, recorder, plan.rate, stop)]
    starts = _closed_starts(stop) if plan.rate is None else _open_starts(plan.rate, stop)
    return [_stream_worker(s, starts, requests, recorder, plan.window) for s in stub_of]


# --- running and reporting -----------------------------------------------------------------------


class Turn(TypedDict):
    """One run of runs taken in turns with others (`pooled`): what each turn's ratio reads."""

    events_per_s: float
    p99_us: float


class Result(TypedDict):
    """What one run measured, JSON as it is (results.json keeps it as it comes)."""

    target: str
    mode: str
    concurrency: int
    rate_target: float | None
    duration_s: float
    calls: int
    rate: float
    events: int  # events answered (more than calls in batch mode)
    events_per_s: float
    degraded: int
    latency_us: dict[str, float]
    errors: dict[str, int]
    client_cpu_us_per_call: float
    server_cpu_us_per_call: float | None
    server_cpu_by_process_us_per_call: dict[str, float]
    # The server processes' event-loop threads (Redis's excluded: `_tree_cpu_s`); absent in
    # results written before it was measured.
    server_loop_cpu_us_per_call: NotRequired[float | None]
    # Pooled from runs taken in turns (`pooled`): each run's; absent for one run alone.
    turns: NotRequired[list[Turn]]


def summarise(target: str, plan: Plan, recorder: Recorder, begin: CpuMark, end: CpuMark) -> Result:
    """Rate, percentiles, errors and CPU per call from a finished run."""
    latencies = sorted(recorder.latencies_us)
    calls = len(latencies) + sum(recorder.errors.values())
    elapsed = end.wall_s - begin.wall_s
    by_process = _server_cpu_per_call(begin, end, calls)
    return Result(
        target=target, mode=plan.mode, concurrency=plan.concurrency, rate_target=plan.rate,
        duration_s=round(elapsed, 3), calls=calls, rate=calls / elapsed if elapsed else 0.0,
        events=recorder.events, events_per_s=recorder.events / elapsed if elapsed else 0.0,
        degraded=recorder.degraded,
        latency_us={f"p{q:g}": percentile(latencies, q) for q in PERCENTILES},
        errors=dict(recorder.errors),
        client_cpu_us_per_call=(end.client_s - begin.client_s) / calls * 1e6 if calls else math.nan,
        server_cpu_us_per_call=sum(by_process.values()) if by_process else None,
        server_cpu_by_process_us_per_call=by_process,
        server_loop_cpu_us_per_call=_server_loop_cpu_per_call(begin, end, calls),
    )  # fmt: skip


def pooled(results: Sequence[Result]) -> Result:
    """Runs of one plan against one target, taken in turns with runs against others, as one
    run: their calls, time and CPU added up (CPU per call over all their calls), and each
    latency percentile the median of the runs' (the runs' latencies are not kept); each run's
    rate and p99 kept as its turn."""
    first = results[0]
    calls = sum(r["calls"] for r in results)
    duration_s = sum(r["duration_s"] for r in results)
    events = sum(r["events"] for r in results)

    def per_call(value: Callable[[Result], float | None]) -> float | None:
        values = [(value(r), r["calls"]) for r in results]
        if not calls or any(v is None for v, _ in values):
            return None
        return sum(cast(float, v) * n for v, n in values) / calls

    errors: Counter[str] = Counter()
    for result in results:
        errors.update(result["errors"])
    processes = {name for r in results for name in r["server_cpu_by_process_us_per_call"]}
    client_us = per_call(lambda r: r["client_cpu_us_per_call"])
    return Result(
        target=first["target"], mode=first["mode"], concurrency=first["concurrency"],
        rate_target=first["rate_target"], duration_s=round(duration_s, 3), calls=calls,
        rate=calls / duration_s if duration_s else 0.0, events=events,
        events_per_s=events / duration_s if duration_s else 0.0,
        degraded=sum(r["degraded"] for r in results),
        latency_us={q: statistics.median(r["latency_us"][q] for r in results)
                    for q in first["latency_us"]},
        errors=dict(errors),
        client_cpu_us_per_call=math.nan if client_us is None else client_us,
        server_cpu_us_per_call=per_call(lambda r: r["server_cpu_us_per_call"]),
        server_cpu_by_process_us_per_call={
            name: sum(r["server_cpu_by_process_us_per_call"].get(name, 0.0) * r["calls"]
                      for r in results) / calls
            for name in processes
        } if calls else {},
        server_loop_cpu_us_per_call=per_call(lambda r: r.get("server_loop_cpu_us_per_call")),
        turns=[Turn(events_per_s=r["events_per_s"], p99_us=r["latency_us"]["p99"])
               for r in results],
    )  # fmt: skip


def _server_cpu_per_call(begin: CpuMark, end: CpuMark, calls: int) -> dict[str, float]:
    """µs of server CPU per call by process name; empty without `--server-pid` or calls."""
    if begin.server_s is None or end.server_s is None or not calls:
        return {}
    before = begin.server_s
    return {k: (v - before.get(k, 0.0)) / calls * 1e6 for k, v in end.server_s.items()}


def _server_loop_cpu_per_call(begin: CpuMark, end: CpuMark, calls: int) -> float | None:
    """µs of the server's event-loop threads' CPU per call; None without `--server-pid` or calls."""
    if begin.server_loop_s is None or end.server_loop_s is None or not calls:
        return None
    return (end.server_loop_s - begin.server_loop_s) / calls * 1e6


async def run(
    target: str,
    plan: Plan,
    customers: int = 1000,
    channels: int = 4,
    server_pid: int | None = None,
    *,
    spread: bool = False,
    watching: AbstractAsyncContextManager[object] | None = None,
) -> Result:
    """Drive `target` with `plan`: warm up, measure for the duration, let in-flight calls end.

    CPU is read around the measured window; calls still in flight at its end finish afterwards,
    so CPU per call is read against the calls that started within it. With `spread`, each
    channel has a connection of its own: gRPC otherwise shares one among the channels to one
    address, and one connection reaches one of the processes of `journeyman serve --workers`.
    `watching` is entered for the measured window alone (the driver's own loop lag, say)."""
    duration_s = min(plan.duration_s, MAX_DURATION_S)
    warmup_s = min(plan.warmup_s, MAX_WARMUP_S)
    options = [("grpc.use_local_subchannel_pool", 1)] if spread else None
    opened = [grpc.aio.insecure_channel(target, options=options) for _ in range(max(1, channels))]
    try:
        ready = asyncio.gather(*(c.channel_ready() for c in opened))
        await asyncio.wait_for(ready, CONNECT_TIMEOUT_S)
        stubs = [pb_grpc.JourneyServiceStub(c) for c in opened]
        now = time.perf_counter()
        recorder = Recorder(now + warmup_s, now + warmup_s + duration_s)
        load = asyncio.gather(*_workers(plan, stubs, retail_requests(customers), recorder,
                                        recorder.measure_until))  # fmt: skip
        await _sleep_until(recorder.measure_from)
        begin = CpuMark.now(server_pid)
        async with watching if watching is not None else contextlib.nullcontext():
            await _sleep_until(recorder.measure_until)
        end = CpuMark.now(server_pid)
        await load
    finally:
        await asyncio.gather(*(c.close() for c in opened))
    return summarise(target, plan, recorder, begin, end)


def format_table(result: Result) -> str:
    """The result as a small human-readable table."""
    shape = f"open loop {result['rate_target']:g}/s" if result["rate_target"] else "closed loop"
    server = result["server_cpu_us_per_call"]
    by_process = (
        result["server_cpu_by_process_us_per_call"]
        if len(result["server_cpu_by_process_us_per_call"]) > 1
        else {}
    )
    loop = result.get("server_loop_cpu_us_per_call")
    rows = [
        (
            "target",
            f"{result['target']} ({result['mode']}, {shape}, concurrency {result['concurrency']})",
        ),
        ("calls", f"{result['calls']} in {result['duration_s']:.2f} s"),
        ("rate", f"{result['rate']:,.0f} calls/s"),
        ("events", f"{result['events_per_s']:,.0f} events/s, {result['degraded']} degraded"),
        *((f"latency {k}", f"{v:,.0f} µs") for k, v in result["latency_us"].items()),
        ("errors", ", ".join(f"{k} {v}" for k, v in result["errors"].items()) or "none"),
        ("client CPU", f"{result['client_cpu_us_per_call']:,.0f} µs/call"),
        ("server CPU", "—" if server is None else f"{server:,.0f} µs/call (process tree)"),
        *((f"  of which {k}", f"{v:,.0f} µs/call") for k, v in by_process.items()),
        *([] if loop is None else [("  event loop", f"{loop:,.0f} µs/call (its thread alone)")]),
    ]
    return "\n".join(f"{name:<16} {value}" for name, value in rows)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="A lean asyncio load driver for JourneyService.")
    add = parser.add_argument
    add("--target", default="localhost:50051", help="host:port of the server")
    add("--mode", choices=("unary", "stream", "batch"), default="unary")
    add("--concurrency", type=int, default=64, help="workers (unary) or streams (stream)")
    add("--rate", type=float, help="open loop: calls started per second (default: closed loop)")
    add("--window", type=int, default=1, help="stream mode: events in flight per stream")
    add("--batch", type=int, default=100, help="batch mode: events per DecideBatch call")
    add("--duration", type=float, default=10.0, help=f"measured seconds (≤ {MAX_DURATION_S:g})")
    add("--warmup", type=float, default=2.0, help="seconds run before measuring")
    add("--customers", type=int, default=1000, help="size of the customer pool")
    add("--channels", type=int, default=4, help="gRPC channels the workers share")
    add(
        "--spread",
        action="store_true",
        help="each channel on a connection of its own (to reach every process of --workers)",
    )
    add("--server-pid", type=int, help="also report this process tree's CPU per call")
    add("--json", action="store_true", help="print one JSON object instead of the table")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.load.drive`: one bounded run, printed as a table or JSON."""
    args = _parser().parse_args(argv)
    if args.concurrency < 1 or args.window < 1 or (args.rate is not None and args.rate <= 0):
        print("error: --concurrency and --window must be ≥ 1, --rate > 0", file=sys.stderr)
        return 2
    plan = Plan(
        args.mode, args.concurrency, args.rate, args.window, args.warmup, args.duration,
        args.batch,
    )  # fmt: skip
    result = asyncio.run(
        run(args.target, plan, args.customers, args.channels, args.server_pid, spread=args.spread)
    )
    print(json.dumps(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
