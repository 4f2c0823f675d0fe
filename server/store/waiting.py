"""How long Redis itself has kept a round trip waiting, apart from this server's own work.

A round trip's wall time since it went out is not Redis's alone: while the event loop runs
this server's own work (deciding another batch, packing a large pipeline, building a big answer)
Redis's reply sits unread, however fast it came. Counting that time as Redis's made a busy server
answer "degraded: Redis is slow" with Redis idle (issue 10). So what Redis is charged with is the
wall time less the CPU time the event loop's thread spent meanwhile: its own work, during which
no reply could have been read. Both clocks are read in the event loop's thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SentAt:
    """When a round trip went out, on the wall clock and on this thread's CPU clock."""

    wall_s: float
    cpu_s: float

    @classmethod
    def now(cls) -> SentAt:
        return cls(time.monotonic(), time.thread_time())

    def redis_s(self) -> float:
        """Seconds since it went out that this thread was not running: Redis's share, at most."""
        wall = time.monotonic() - self.wall_s
        own = time.thread_time() - self.cpu_s
        return max(0.0, wall - own)


class Abandoned:
    """The oldest round trip abandoned unanswered (its caller's deadline cut it, a timeout) since
    Redis last answered one. For one reply budget after, it still counts as waiting: the round
    trips sent right behind it wait on a Redis that has not answered for that long, and their
    callers must see Redis, not this server's queue, holding them."""

    def __init__(self, budget_s: float | None) -> None:
        self._budget_s = budget_s or 0.0
        self._sent: SentAt | None = None
        self._at = 0.0  # when it was abandoned (monotonic)

    def add(self, sent: SentAt) -> None:
        if self._sent is None or self._stale() or sent.wall_s < self._sent.wall_s:
            self._sent = sent
        self._at = time.monotonic()

    def answered(self) -> None:
        self._sent = None

    def oldest(self, out: SentAt | None) -> SentAt | None:
        """The older of `out` (a round trip now out, if one is) and the one abandoned, if still
        counted. With none out, the one abandoned still counts: the calls that queued behind it
        and are not sent yet have waited on Redis too."""
        if self._sent is None or self._stale():
            return out
        if out is not None and out.wall_s <= self._sent.wall_s:
            return out
        return self._sent

    def _stale(self) -> bool:
        return time.monotonic() - self._at > self._budget_s
