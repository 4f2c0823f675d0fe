"""Stopping background tasks for certain.

On Python 3.11 a task's cancellation can be lost: `asyncio.wait_for`, which redis-py puts around
socket writes, returns the inner result instead of raising when the inner call finishes at the
moment the cancellation comes (CPython gh-86296, fixed in 3.12). A loop that then goes round
again never ends, and neither does the process: a worker SIGTERMed while its timer loop was
talking to Redis waited for it for ever. So a background task is cancelled again until it ends.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)

RECANCEL_S = 0.1  # how long a cancelled task is given before it is cancelled again


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has ended, cancelling again while a cancellation was
    lost. An exception it had ended with before is logged: stopping goes on."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_S)
    if not task.cancelled() and task.exception() is not None:
        log.error("%s had failed", task.get_name(), exc_info=task.exception())


# Exit status of a process that did not stop in time (`exit_if_still_running`).
EXIT_STUCK = 70


def exit_if_still_running(after_s: float, loop: asyncio.AbstractEventLoop) -> None:
    """From now on, a process still running `after_s` seconds later logs where it is stuck (each
    thread, and what each of the loop's tasks awaits) and exits with EXIT_STUCK: a stop that
    hangs would otherwise hold its supervisor, or an orchestrator, until it kills it blind."""

    def stuck() -> None:
        log.error("still stopping %.0f s after the stop signal: exiting now; the tasks left:\n%s",
                  after_s, _awaiting(loop))  # fmt: skip
        faulthandler.dump_traceback(all_threads=True)
        os._exit(EXIT_STUCK)

    timer = threading.Timer(after_s, stuck)
    timer.daemon = True
    timer.start()


def _awaiting(loop: asyncio.AbstractEventLoop) -> str:
    """Each task of `loop` as the chain of coroutines it awaits (read from another thread, so
    best effort: the set may change while it is read)."""
    for _ in range(3):
        try:
            tasks = list(asyncio.all_tasks(loop))
            break
        except RuntimeError:  # the set changed while it was copied
            continue
    else:
        return "(not readable)"
    lines: list[str] = []
    for task in tasks:
        chain: list[str] = []
        coroutine: Any = task.get_coro()
        while coroutine is not None:
            frame = getattr(coroutine, "cr_frame", None)
            line = frame.f_lineno if frame is not None else "?"
            chain.append(f"{getattr(coroutine, '__qualname__', coroutine)}:{line}")
            coroutine = getattr(coroutine, "cr_await", None)
        lines.append(" -> ".join(chain))
    return "\n".join(lines)
