"""Which asyncio event loop the server runs on: uvloop when installed, else asyncio's own.

uvloop's loop is written in Cython on libuv: every Redis socket wake-up and every callback the
gRPC server schedules costs less, which is most of what a decision's call spends outside the
kernels. `asyncio` is the fallback and a setting (`--event-loop asyncio`) for comparing the two.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

CHOICES = ("auto", "uvloop", "asyncio")
T = TypeVar("T")


def chosen(choice: str) -> str:
    """The loop `choice` ("auto", "uvloop" or "asyncio") means on this machine."""
    if choice == "auto":
        return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    return choice


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes a loop of `choice` (None: asyncio's default)."""
    if chosen(choice) != "uvloop":
        return None
    try:
        import uvloop
    except ImportError as error:
        raise RuntimeError(
            "--event-loop uvloop needs the uvloop package: pip install uvloop"
            " (or use --event-loop asyncio)"
        ) from error
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """`asyncio.run(main)` on the loop `choice` names."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
