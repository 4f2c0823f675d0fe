"""Background tasks stop for certain, a lost cancellation included."""

from __future__ import annotations

import asyncio
import logging

import pytest

from server.core.tasks import stop_task

STOPPED_WITHIN_S = 5.0


async def _loses_first_cancellation(lost: list[bool]) -> None:
    """Goes round like the timer loop, and loses its first cancellation, as a call through
    asyncio.wait_for on Python 3.11 can (CPython gh-86296)."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if lost:
                raise
            lost.append(True)
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()


async def test_a_task_that_lost_its_cancellation_is_cancelled_again_until_it_ends() -> None:
    lost: list[bool] = []
    task = asyncio.get_running_loop().create_task(_loses_first_cancellation(lost))
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task), STOPPED_WITHIN_S)
    assert lost == [True]
    assert task.cancelled()


async def test_a_task_that_had_failed_is_logged_and_stopping_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails() -> None:
        raise RuntimeError("watch failed")

    task = asyncio.get_running_loop().create_task(fails(), name="rules watch")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        await stop_task(task)
    assert "rules watch had failed" in caplog.text
    assert "watch failed" in caplog.text
