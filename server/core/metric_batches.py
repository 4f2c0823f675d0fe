"""The hot path's counts and observations, added to their Prometheus metrics in batches.

A decision touches eight metrics (the call's and the commit's seconds, the engine's, the round's
size, the state cache, the pipeline and its commands, the decision itself). Each prometheus_client
`inc` or `observe` is three to five Python calls and a lock, a histogram's also a walk over its
buckets: about 35 of the ~360 Python calls of a lone decision, each paid with cold caches one
call at a time. Here a touch is one call that appends to a list; `flush` adds what was appended
to the metrics in one go (counters summed first): at most FLUSH_AFTER_S after the first touch, on
the event loop, and before every collection of the registry (a scrape of /metrics, or
`REGISTRY.get_sample_value`), so a scrape shows every decision made before it. With worker
processes (PROMETHEUS_MULTIPROC_DIR) the supervisor reads what the workers flushed: at most
FLUSH_AFTER_S behind.

Touches come from the event loop's thread; `flush` may also run on the HTTP port's (a scrape).
Appends and the flush's take of the list are each atomic, so nothing is counted twice or lost.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

FLUSH_AFTER_S = 0.1


class _Incremented(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Observed(Protocol):
    def observe(self, amount: float) -> None: ...


class MetricBatches:
    """Counts and observations waiting to be added to their metrics (see the module)."""

    def __init__(self, flush_after_s: float = FLUSH_AFTER_S) -> None:
        self._flush_after_s = flush_after_s
        self._pending: list[tuple[Callable[[float], None], float, bool]] = []
        # The event loop a flush is due on, None when none is: a loop closed before its flush
        # (a tool that runs several) is not waited for by the next one.
        self._due_on: asyncio.AbstractEventLoop | None = None
        self._flushing = threading.Lock()  # the loop's flush and a scrape's, one at a time

    def inc(self, counter: _Incremented, amount: float = 1) -> None:
        """`counter.inc(amount)`, in the next flush."""
        self._add((counter.inc, amount, True))

    def observe(self, histogram: _Observed, amount: float) -> None:
        """`histogram.observe(amount)`, in the next flush."""
        self._add((histogram.observe, amount, False))

    def _add(self, touch: tuple[Callable[[float], None], float, bool]) -> None:
        self._pending.append(touch)
        # Which loop runs is asked (~0.3 us under uvloop) only when no flush is due on a loop
        # still open: a touch 0.84 -> 0.63 us (medians of 3 alternations).
        if self._due_on is None or self._due_on.is_closed():
            self._flush_later()

    def _flush_later(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop (a tool, a test): no later to wait for
            self.flush()
            return
        self._due_on = loop
        loop.call_later(self._flush_after_s, self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._due_on = None
        self.flush()

    def flush(self) -> None:
        """Add everything appended so far to its metric: counters' amounts summed, each
        observation observed."""
        with self._flushing:
            taken = len(self._pending)
            if not taken:
                return
            batch = self._pending[:taken]
            del self._pending[:taken]  # what was appended meanwhile stays for the next flush
            _apply(batch)


def _apply(batch: Iterable[tuple[Callable[[float], None], float, bool]]) -> None:
    sums: dict[Callable[[float], None], float] = {}
    for apply, amount, summed in batch:
        if summed:
            sums[apply] = sums.get(apply, 0) + amount
        else:
            apply(amount)
    for apply, amount in sums.items():
        apply(amount)


class FlushFirst:
    """A collector that collects nothing and flushes `batches`: registered ahead of the metrics
    it feeds, it brings them up to date before the registry reads them."""

    def __init__(self, batches: MetricBatches) -> None:
        self._batches = batches

    def describe(self) -> Iterable[Any]:
        return ()

    def collect(self) -> Iterable[Any]:
        self._batches.flush()
        return ()
