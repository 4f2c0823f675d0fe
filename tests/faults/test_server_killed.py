"""The server SIGKILLed mid-load and started again: clients that retry with the same event id
end with exactly the state they would have had if nothing had happened."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.runtime.embedded_redis import EmbeddedRedis, start_embedded_redis
from tests.rulesets import RULES_DIR
from tests.service.test_process import JOURNEYMAN, Served, _environment, _free_port
from tests.service.test_process import _wait_until_serving as wait_until_serving

pytestmark = pytest.mark.service

CUSTOMERS = 6
EVENTS_PER_CUSTOMER = 40
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.ABORTED)  # fmt: skip


@pytest.fixture
def redis() -> Iterator[EmbeddedRedis]:
    with tempfile.TemporaryDirectory(prefix="jm-srv-") as folder:
        server = start_embedded_redis(Path(folder), appendfsync="always")
        try:
            yield server
        finally:
            server.stop()


def _serve(folder: Path, port: int, redis_url: str) -> Served:
    log_path = folder / f"serve-{port}.log"
    command = [
        str(JOURNEYMAN), "serve", "--host", "127.0.0.1", "--port", str(port), "--metrics-port",
        "0", "--redis-url", redis_url, "--rules", str(RULES_DIR / "retail.yaml"),
    ]  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=folder, env=_environment(key_prefix="jmkill:"),
        )  # fmt: skip
    return Served(process, port, folder / "data", log_path)


async def _send_all(
    address: str, customer: str, acknowledged: list[str], calls: Counter[tuple[str, str]]
) -> None:
    """Every event of `customer`, in order, each retried with its own id until answered and
    stored (a degraded answer is retried too: it stored nothing). `calls` counts each call's
    outcome by (customer, outcome)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.JourneyServiceStub(channel)
        for number in range(EVENTS_PER_CUSTOMER):
            event = pb.Event(event_id=f"{customer}-{number}", customer_id=customer,
                             type="product_view")  # fmt: skip
            calls[customer, "sent"] += 1
            while True:
                try:
                    reply = await stub.Decide(pb.DecideRequest(event=event), timeout=1)
                    if not reply.decision.degraded:
                        calls[customer, "duplicate"] += reply.decision.duplicate
                        break
                    calls[customer, "degraded"] += 1
                except grpc.aio.AioRpcError as error:
                    assert error.code() in RETRYABLE, error
                    calls[customer, error.code().name] += 1
                await asyncio.sleep(0.02)
            calls[customer, "acknowledged"] += 1
            acknowledged.append(event.event_id)


def _print_table(
    customers: Sequence[str], calls: Counter[tuple[str, str]], counts: dict[str, float]
) -> None:
    outcomes = ("sent", "acknowledged", "duplicate", "degraded", *(c.name for c in RETRYABLE))
    columns = ("customer", "sent", "acked", "acked dup", "degraded", "unavailable", "deadline",
               "aborted", "counted")  # fmt: skip
    print("\n" + " ".join(f"{c:>11}" for c in columns))
    for customer in customers:
        row = (customer, *(calls[customer, o] for o in outcomes), f"{counts[customer]:g}")
        print(" ".join(f"{value:>11}" for value in row))
    print(
        "invariant: counted == sent for every customer (each event exactly once, whether the "
        "server died before, during or after storing it); acked dup: answered duplicate, stored "
        "by an attempt the kill cut off"
    )


async def test_retrying_clients_end_as_if_the_server_had_never_died(redis: EmbeddedRedis) -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="jm-srv-run-") as folder:
        served = _serve(Path(folder), port, redis.url)
        try:
            wait_until_serving(served)
            acknowledged: list[str] = []
            calls: Counter[tuple[str, str]] = Counter()
            customers = [f"s{i}" for i in range(CUSTOMERS)]
            load = asyncio.gather(
                *(_send_all(served.address, c, acknowledged, calls) for c in customers)
            )
            while len(acknowledged) < CUSTOMERS * EVENTS_PER_CUSTOMER // 3:
                await asyncio.sleep(0.005)
            os.kill(served.process.pid, signal.SIGKILL)
            served.process.wait()
            killed_at = len(acknowledged)
            served = _serve(Path(folder), port, redis.url)
            await asyncio.to_thread(wait_until_serving, served)
            await load
            async with grpc.aio.insecure_channel(served.address) as channel:
                stub = pb_grpc.JourneyServiceStub(channel)
                counts = {}
                for customer in customers:
                    view = await stub.GetCustomer(pb.GetCustomerRequest(customer_id=customer))
                    counts[customer] = view.customer.journeys[0].counters["product_views_7d"]
        finally:
            served.kill()
    _print_table(customers, calls, counts)
    print(f"acknowledged before the kill: {killed_at}; after: {len(acknowledged)}")
    assert 0 < killed_at < CUSTOMERS * EVENTS_PER_CUSTOMER, "the kill did not land mid-load"
    assert len(acknowledged) == CUSTOMERS * EVENTS_PER_CUSTOMER
    assert counts == dict.fromkeys(customers, float(EVENTS_PER_CUSTOMER))  # each exactly once
