"""Background tasks stop for certain, a lost cancellation included."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from server.core.tasks import EXIT_STUCK, stop_task

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


STUCK_PROGRAM = """
import asyncio, logging
from server.core.tasks import exit_if_still_running

async def stuck_for_ever():
    await asyncio.Event().wait()

async def main():
    exit_if_still_running(0.3, asyncio.get_running_loop())
    await stuck_for_ever()

logging.basicConfig()
asyncio.run(main())
"""


def test_a_process_stuck_stopping_says_where_and_exits() -> None:
    done = subprocess.run(
        [sys.executable, "-c", STUCK_PROGRAM], capture_output=True, text=True, timeout=30,
        cwd=Path(__file__).parents[3],
    )  # fmt: skip
    assert done.returncode == EXIT_STUCK
    assert "still stopping 0 s after the stop signal" in done.stderr
    assert "main:10 -> stuck_for_ever:6" in done.stderr  # the task, and what it awaits
