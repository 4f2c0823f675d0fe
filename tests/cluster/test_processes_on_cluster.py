"""Two `journeyman serve --workers 2` replicas on one Redis Cluster URL: events for the same
customers sent to both at once lose no update and are applied once. Every process is stopped by
its pid (the workers die with their supervisor)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from tests.cluster.conftest import REDIS_TIMEOUT_S
from tests.rulesets import RULES_DIR

pytestmark = pytest.mark.service

JOURNEYMAN = Path(sys.executable).parent / "journeyman"
START_TIMEOUT_S = 60.0  # a cold numba cache compiles the kernels first (about 10 s)
CLIENT_RETRIES = 50


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """SIGTERM by pid, then SIGKILL if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(folder: Path, cluster_url: str, key_prefix: str) -> Served:
    port = _free_port()
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")}
    env["JOURNEYMAN_KEY_PREFIX"] = key_prefix
    env["JOURNEYMAN_REDIS_TIMEOUT_MS"] = str(int(REDIS_TIMEOUT_S * 1000))
    command = [
        str(JOURNEYMAN), "serve", "--host", "127.0.0.1", "--port", str(port),
        "--redis-url", cluster_url, "--rules", str(RULES_DIR / "retail.yaml"),
        "--data-dir", str(folder / "data"), "--metrics-port", "0", "--workers", "2",
    ]  # fmt: skip
    log_path = folder / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=folder, env=env,
        )  # fmt: skip
    return Served(process, f"127.0.0.1:{port}", log_path)


def _wait_until_serving(served: Served, deadline: float) -> None:
    with grpc.insecure_channel(served.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            assert served.process.poll() is None, f"exited:\n{served.log()}"
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass  # not listening yet
            assert time.monotonic() < deadline, f"not SERVING in time:\n{served.log()}"
            time.sleep(0.05)


@pytest.fixture
def two_processes(tmp_path: Path, cluster_url: str, key_prefix: str) -> Iterator[list[Served]]:
    served = [_start(tmp_path / f"server-{i}", cluster_url, key_prefix) for i in range(2)]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        for each in served:
            _wait_until_serving(each, deadline)
        yield served
    finally:
        for each in served:
            each.stop()


async def _until_applied(
    stub: pb_grpc.JourneyServiceStub, request: pb.DecideRequest
) -> pb.Decision:
    for _ in range(CLIENT_RETRIES):
        try:
            return (await stub.Decide(request, timeout=10)).decision
        except grpc.aio.AioRpcError as error:
            assert error.code() is grpc.StatusCode.ABORTED, error
    raise AssertionError(f"{request.event.event_id} still ABORTED after {CLIENT_RETRIES} tries")


def _request(event_id: str, customer: str, type_: str = "product_view") -> pb.DecideRequest:
    event = pb.Event(event_id=event_id, customer_id=customer, type=type_, channel="web")
    return pb.DecideRequest(event=event)


async def test_two_processes_on_one_cluster_lose_no_update(two_processes: list[Served]) -> None:
    channels = [grpc.aio.insecure_channel(served.address) for served in two_processes]
    stubs = [pb_grpc.JourneyServiceStub(channel) for channel in channels]
    customers = [f"proc-{i}" for i in range(4)]
    try:
        calls = [
            _until_applied(stubs[(n + i) % 2], _request(f"{customer}-view-{n}", customer))
            for n in range(12)
            for i, customer in enumerate(customers)
        ]
        calls += [
            _until_applied(stub, _request(f"{customer}-cart", customer, "add_to_cart"))
            for customer in customers
            for stub in stubs
        ]
        decisions = await asyncio.gather(*calls)
        assert not any(d.degraded for d in decisions)
        assert sum(d.duplicate for d in decisions) == len(customers)  # one of each cart pair
        for customer in customers:
            for stub in stubs:
                reply = await stub.GetCustomer(pb.GetCustomerRequest(customer_id=customer))
                (journey,) = reply.customer.journeys
                assert journey.counters["product_views_7d"] == 12, customer
                assert journey.counters["cart_adds_7d"] == 1, customer
    finally:
        for channel in channels:
            await channel.close()
