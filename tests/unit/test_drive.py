"""The load driver against an in-process echo server: behaviour, never latency thresholds."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.load.drive import Plan, Result, percentile, pooled, retail_requests, run
from benchmarks.load.echo import start_echo


@pytest.fixture
async def echo_target() -> AsyncIterator[str]:
    server, port = await start_echo(0)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


def _naive_percentile(values: list[float], q: float) -> float:
    """Nearest rank, written out: the smallest value with at least q % of values at or below."""
    ordered = sorted(values)
    for value in ordered:
        if sum(v <= value for v in ordered) * 100 >= q * len(ordered):
            return value
    return ordered[-1]


@given(
    st.lists(st.integers(-1000, 1000).map(float), min_size=1, max_size=60),
    st.sampled_from([1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0]),
)
def test_percentile_matches_the_naive_nearest_rank(values: list[float], q: float) -> None:
    assert percentile(sorted(values), q) == _naive_percentile(values, q)


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 50.0))


def test_retail_requests_have_unique_event_ids_from_the_customer_pool() -> None:
    requests = [r for _, r in zip(range(500), retail_requests(customers=20), strict=False)]
    assert len({r.event.event_id for r in requests}) == 500
    assert len({r.event.customer_id for r in requests}) <= 20
    assert {r.event.type for r in requests} <= {
        "page_view", "product_view", "add_to_cart", "payment_error", "purchase"
    }  # fmt: skip


@pytest.mark.parametrize("mode", ["unary", "stream"])
async def test_closed_loop_completes_calls_without_errors(echo_target: str, mode: str) -> None:
    plan = Plan(mode, concurrency=4, rate=None, window=2, warmup_s=0.2, duration_s=1.0)
    result = await run(echo_target, plan, customers=50, channels=2, server_pid=os.getpid())
    assert result["calls"] > 0
    assert result["server_cpu_us_per_call"] is not None  # the server is this very process
    assert result["server_cpu_us_per_call"] > 0
    assert result["errors"] == {}
    latency = result["latency_us"]
    assert latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p99.9"]


async def test_open_loop_achieves_roughly_the_rate(echo_target: str) -> None:
    plan = Plan("unary", concurrency=4, rate=200.0, window=1, warmup_s=0.2, duration_s=1.0)
    result = await run(echo_target, plan, customers=50, channels=2)
    assert result["errors"] == {}
    assert 140 <= result["rate"] <= 260


async def test_errors_are_counted_by_status_code() -> None:
    server = grpc.aio.server()  # serves nothing: every Decide is UNIMPLEMENTED
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        plan = Plan("unary", concurrency=2, rate=None, window=1, warmup_s=0.0, duration_s=0.3)
        result = await run(f"127.0.0.1:{port}", plan, customers=5, channels=1)
    finally:
        await server.stop(grace=None)
    assert set(result["errors"]) == {"UNIMPLEMENTED"}
    assert result["errors"]["UNIMPLEMENTED"] == result["calls"] > 0


@pytest.mark.parametrize(("spread", "connections"), [(False, 1), (True, 3)])
async def test_spread_channels_each_open_a_connection_of_their_own(
    spread: bool, connections: int
) -> None:
    """gRPC shares one connection among the channels to one address unless told otherwise; a
    server of several processes on one port (`--workers`) gets each connection in one of them."""
    peers: set[str] = set()

    async def decide(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        peers.add(context.peer())  # the client's address: one port per connection
        return b""  # an empty DecideResponse

    handler = grpc.method_handlers_generic_handler(
        "journeyman.v1.JourneyService", {"Decide": grpc.unary_unary_rpc_method_handler(decide)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        plan = Plan("unary", concurrency=6, rate=None, window=1, warmup_s=0.0, duration_s=0.3)
        result = await run(f"127.0.0.1:{port}", plan, customers=10, channels=3, spread=spread)
    finally:
        await server.stop(grace=None)
    assert result["errors"] == {} and result["calls"] > 0
    assert len(peers) == connections


async def test_what_watches_a_run_watches_its_measured_window_alone(echo_target: str) -> None:
    """The overload run's loop-lag probe: the warm-up's calls and the connecting are not part of
    the schedule a verdict reads, nor are the calls still ending after the window."""
    seen: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def watch() -> AsyncIterator[None]:
        seen["entered"] = time.perf_counter()
        yield
        seen["left"] = time.perf_counter()

    plan = Plan("unary", concurrency=2, rate=None, window=1, warmup_s=0.5, duration_s=0.3)
    started = time.perf_counter()
    result = await run(echo_target, plan, customers=5, channels=1, watching=watch())
    returned = time.perf_counter()
    assert result["calls"] > 0
    # Bounds with room for a timer that fires a little early (the loop's clock resolution).
    assert seen["entered"] >= started + 0.45  # after the warm-up
    assert seen["left"] - seen["entered"] >= 0.25  # the window
    assert seen["left"] <= returned


def _run_result(calls: int, p50_us: float, server_us: float, loop_us: float | None) -> Result:
    return Result(
        target="127.0.0.1:1", mode="unary", concurrency=1, rate_target=None, duration_s=1.0,
        calls=calls, rate=float(calls), events=calls, events_per_s=float(calls), degraded=1,
        latency_us={"p50": p50_us, "p99": 3 * p50_us}, errors={"UNAVAILABLE": 1},
        client_cpu_us_per_call=100.0, server_cpu_us_per_call=server_us,
        server_cpu_by_process_us_per_call={"journeyman": server_us - 10, "redis-server": 10.0},
        server_loop_cpu_us_per_call=loop_us,
    )  # fmt: skip


def test_runs_taken_in_turns_pool_their_calls_cpu_and_latency() -> None:
    runs = [
        _run_result(100, 500.0, 200.0, 150.0),
        _run_result(300, 900.0, 400.0, 250.0),
        _run_result(100, 700.0, 300.0, 200.0),
    ]
    one = pooled(runs)
    assert (one["calls"], one["events"], one["degraded"], one["duration_s"]) == (500, 500, 3, 3.0)
    assert one["rate"] == 500 / 3.0
    # CPU per call over all the calls: (100 * 200 + 300 * 400 + 100 * 300) / 500.
    assert one["server_cpu_us_per_call"] == 340.0
    assert one["server_cpu_by_process_us_per_call"] == {"journeyman": 330.0, "redis-server": 10.0}
    assert one["server_loop_cpu_us_per_call"] == 220.0
    assert one["client_cpu_us_per_call"] == 100.0
    # Each percentile the median of the runs': not weighted by calls.
    assert one["latency_us"] == {"p50": 700.0, "p99": 2100.0}
    assert one["errors"] == {"UNAVAILABLE": 3}
    # Each run kept as its turn, in order: what each turn's ratio reads.
    assert [(turn["events_per_s"], turn["p99_us"]) for turn in one["turns"]] == [
        (100.0, 1500.0), (300.0, 2700.0), (100.0, 2100.0)
    ]  # fmt: skip


def test_cpu_a_run_did_not_measure_is_not_measured_pooled() -> None:
    one = pooled([_run_result(100, 500.0, 200.0, None), _run_result(100, 500.0, 200.0, 150.0)])
    assert one["server_loop_cpu_us_per_call"] is None
    assert one["server_cpu_us_per_call"] == 200.0
