"""How much code a step runs: the Python and C function calls it makes, counted with
`sys.setprofile` (issue 16).

One call at a time, a server runs each decision with cold caches, and what a part costs there
grows with how much code it touches (RESULTS.md section 14: the parts cost 2-9x in a server what
they cost alone in a loop, every step alike). Timing that on a shared machine moves with its
neighbours; counting calls barely does: the same code and events give the same count but for
work an event loop's timers run inside or outside the count (the batched flushes of the metrics
and the journey statistics, counted when they land inside), so a change that trims the path
shows as a smaller number on any host. Work moved into such a batch still counts its calls
there: what batching saves, running them warm and together, only CPU time can show. A resumed
coroutine or generator counts as a call (it runs its frame again), as the profiler reports it.
"""

from __future__ import annotations

import sys
from types import FrameType, TracebackType
from typing import Any, TypedDict

from benchmarks import ROOT

ENGINE_DIR = str(ROOT / "engine") + "/"


class CallCounts(TypedDict):
    """Calls per event: every Python and C function call, and those of them made by the
    engine's own code (files under engine/: its Python functions, and the C functions and
    compiled kernels they call)."""

    python: float
    c: float
    engine_python: float
    engine_c: float


class CallCounter:
    """Counts the calls made on this thread while it is entered (`with counter:`), over as many
    entries as the caller makes; `per_event(events)` divides them."""

    def __init__(self, engine_dir: str = ENGINE_DIR) -> None:
        self._engine_dir = engine_dir
        self.python = self.c = self.engine_python = self.engine_c = 0

    def _count(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            if frame.f_code is _OWN_EXIT:
                return
            self.python += 1
            if frame.f_code.co_filename.startswith(self._engine_dir):
                self.engine_python += 1
        elif event == "c_call":
            if arg is sys.setprofile:  # the counter's own, on its way out
                return
            self.c += 1
            if frame.f_code.co_filename.startswith(self._engine_dir):  # the caller's frame
                self.engine_c += 1

    def __enter__(self) -> CallCounter:
        if sys.getprofile() is not None:
            raise RuntimeError("a profiler is already set on this thread: counts would mix")
        sys.setprofile(self._count)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        sys.setprofile(None)

    def per_event(self, events: int) -> CallCounts:
        """The calls counted so far, per event of `events`."""
        if events <= 0:
            raise ValueError(f"events is {events}: count at least one")
        return CallCounts(
            python=self.python / events,
            c=self.c / events,
            engine_python=self.engine_python / events,
            engine_c=self.engine_c / events,
        )


_OWN_EXIT = CallCounter.__exit__.__code__
