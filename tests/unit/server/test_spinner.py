"""The event loop's spinner (`server.core.spinner`): it keeps the loop turning for its linger
after each touch while the server is not crowded, lets other work run all along, and sleeps
(no turns at all) otherwise. Real asyncio loops; the clock is the test's."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from server.core.spinner import Spinner
from server.core.tasks import stop_task


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def _spun_s() -> float:
    return REGISTRY.get_sample_value("journeyman_event_loop_spin_seconds_total") or 0.0


async def test_a_touch_spins_the_loop_for_its_linger_then_it_sleeps() -> None:
    clock, spun_before = Clock(), _spun_s()
    spinner = Spinner(0.003, clock=clock)
    task = asyncio.create_task(spinner.run())
    try:
        await _turns(5)
        assert spinner.turns == 0 and not spinner.spinning  # never touched: asleep
        spinner.touch()
        await _turns(20)  # other work goes on while it spins
        assert spinner.spinning and spinner.turns >= 15
        clock.now += 0.002
        await _turns(5)
        assert spinner.spinning  # within the linger
        spinner.touch()  # a call went: the linger starts again
        clock.now += 0.002
        await _turns(5)
        assert spinner.spinning
        clock.now += 0.0011  # the linger past the last touch
        await _turns(3)
        assert not spinner.spinning
        assert _spun_s() - spun_before == pytest.approx(0.0051)  # its clock's, while spinning
        asleep = spinner.turns
        await _turns(50)
        assert spinner.turns == asleep  # no turn while asleep
        spinner.touch()
        await _turns(3)
        assert spinner.spinning and spinner.turns > asleep  # woken by the next call
    finally:
        await stop_task(task)


async def test_a_crowded_server_is_not_spun_for() -> None:
    clock, crowded = Clock(), [True]
    spinner = Spinner(0.003, crowded=lambda: crowded[0], clock=clock)
    task = asyncio.create_task(spinner.run())
    try:
        spinner.touch()
        await _turns(20)
        assert spinner.turns == 0  # calls in company: the loop has their work to turn on
        crowded[0] = False
        spinner.touch()  # the call left alone came or went
        await _turns(5)
        assert spinner.spinning
        crowded[0] = True  # company came meanwhile: it stops at once
        await _turns(3)
        assert not spinner.spinning
    finally:
        await stop_task(task)
