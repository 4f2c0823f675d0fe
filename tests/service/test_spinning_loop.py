"""`JOURNEYMAN_SPIN_US`: after a lone call the server's event loop keeps turning for the linger
instead of sleeping, then sleeps until the next call. The server runs in this test's event loop,
so its spinning is this thread's CPU time; a real server, gRPC and Redis."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from server.core.config import Settings
from tests.conftest import Service
from tests.service.clients import decide_request

pytestmark = pytest.mark.service

LINGER_S = 0.3  # long enough to be seen on the thread's CPU clock


@pytest.fixture
def service_settings(service_settings: Settings) -> Settings:
    return replace(service_settings, spin_us=int(LINGER_S * 1e6))


async def _thread_cpu_over(seconds: float) -> float:
    """This thread's CPU seconds while the loop waits `seconds`."""
    started = time.thread_time()
    await asyncio.sleep(seconds)
    return time.thread_time() - started


async def test_the_loop_spins_after_a_lone_call_then_sleeps_until_the_next(
    service: Service,
) -> None:
    await service.stub.Decide(decide_request("spin-1", "spinner"), timeout=10)
    assert await _thread_cpu_over(0.1) >= 0.05  # turning, though nothing is left to do
    await asyncio.sleep(LINGER_S)
    assert await _thread_cpu_over(0.1) < 0.03  # the linger is over: asleep
    await service.stub.Decide(decide_request("spin-2", "spinner"), timeout=10)
    assert await _thread_cpu_over(0.1) >= 0.05  # woken by the next call
    spinner = service.running.spinner
    assert spinner is not None and not spinner.done()


async def test_a_stopped_server_stops_its_spinner(service: Service) -> None:
    await service.stub.Decide(decide_request("spin-3", "spinner"), timeout=10)
    await service.running.stop(0.5)
    spinner = service.running.spinner
    assert spinner is not None and spinner.done()
    assert await _thread_cpu_over(0.1) < 0.03
