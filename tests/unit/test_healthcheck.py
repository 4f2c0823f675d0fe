"""`python -m server.healthcheck`: the container's HEALTHCHECK, run as Docker runs it (a process),
against a real grpc.aio health servicer on a loopback port."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from server.healthcheck import EXIT_NOT_SERVING, EXIT_SERVING

REPO = Path(__file__).resolve().parents[2]
# A refused connection must fail at once, not after the timeout: generous for a slow CI machine
# (interpreter and grpc start-up included), far below the Dockerfile's HEALTHCHECK --timeout.
QUICK_S = 4.0


@dataclass
class Checked:
    code: int
    out: str
    err: str
    elapsed_s: float


async def run_healthcheck(*args: str) -> Checked:
    """The check as a child process; awaited, so this event loop's server keeps answering."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.healthcheck", *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return Checked(process.returncode, out.decode(), err.decode(), time.monotonic() - started)


@dataclass
class HealthServer:
    address: str
    servicer: health.aio.HealthServicer


@pytest.fixture
async def health_server() -> AsyncIterator[HealthServer]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield HealthServer(f"127.0.0.1:{port}", servicer)
    finally:
        await server.stop(None)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) but never speaks HTTP/2."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting is refused, and no other test can take it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


async def test_serving_exits_0(health_server: HealthServer) -> None:
    await health_server.servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    checked = await run_healthcheck(health_server.address)
    assert checked.code == EXIT_SERVING, checked.err
    assert checked.out.strip() == f"{health_server.address}: SERVING"


async def test_not_serving_exits_1(health_server: HealthServer) -> None:
    await health_server.servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    checked = await run_healthcheck(health_server.address)
    assert checked.code == EXIT_NOT_SERVING
    assert checked.out.strip() == f"{health_server.address}: NOT_SERVING"


async def test_graceful_shutdown_exits_1(health_server: HealthServer) -> None:
    """What a stopping server says: the container is unhealthy while it drains."""
    await health_server.servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_server.servicer.enter_graceful_shutdown()
    assert (await run_healthcheck(health_server.address)).code == EXIT_NOT_SERVING


async def test_one_service_can_be_asked_about(health_server: HealthServer) -> None:
    await health_server.servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    service = "journeyman.v1.JourneyService"
    await health_server.servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    asked = await run_healthcheck(health_server.address, "--service", service)
    assert asked.code == EXIT_NOT_SERVING
    unknown = await run_healthcheck(health_server.address, "--service", "no.such.Service")
    assert unknown.code == EXIT_NOT_SERVING
    assert "NOT_FOUND" in unknown.err


async def test_nothing_listening_exits_1_at_once(closed_port: int) -> None:
    address = f"127.0.0.1:{closed_port}"
    checked = await run_healthcheck(address, "--timeout", "10")
    assert checked.code == EXIT_NOT_SERVING
    assert checked.err.startswith(f"{address}: UNAVAILABLE")
    assert checked.elapsed_s < QUICK_S, "a refused connection should not wait for the timeout"


async def test_a_server_that_never_answers_exits_1_after_the_timeout(silent_port: int) -> None:
    checked = await run_healthcheck(f"127.0.0.1:{silent_port}", "--timeout", "0.5")
    assert checked.code == EXIT_NOT_SERVING
    assert "DEADLINE_EXCEEDED" in checked.err
    assert 0.5 <= checked.elapsed_s < 0.5 + QUICK_S


async def test_default_address_is_the_configured_port_on_loopback(
    health_server: HealthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await health_server.servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = health_server.address.rsplit(":", 1)[1]
    monkeypatch.setenv("JOURNEYMAN_PORT", port)  # the child process inherits it
    checked = await run_healthcheck()
    assert checked.code == EXIT_SERVING, checked.err
    assert checked.out.strip() == f"127.0.0.1:{port}: SERVING"


async def test_a_bad_port_setting_exits_1_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYMAN_PORT", "fifty")
    checked = await run_healthcheck()
    assert checked.code == EXIT_NOT_SERVING
    assert "JOURNEYMAN_PORT='fifty'" in checked.err
