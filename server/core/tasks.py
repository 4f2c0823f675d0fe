"""Stopping background tasks for certain.

On Python 3.11 a task's cancellation can be lost: `asyncio.wait_for`, which redis-py puts around
socket writes, returns the inner result instead of raising when the inner call finishes at the
moment the cancellation comes (CPython gh-86296, fixed in 3.12). A loop that then goes round
again never ends, and neither does the process: a worker SIGTERMed while its timer loop was
talking to Redis waited for it for ever. So a background task is cancelled again until it ends.
"""

from __future__ import annotations

import asyncio
import logging
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
