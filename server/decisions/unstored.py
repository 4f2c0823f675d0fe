"""Answers that stored nothing, by reason: counted on /metrics and said in the log, never silent.

A degraded answer means Redis could not be used (`Degraded`); a busy one that the server's own
queue kept the event from Redis before the caller's deadline (`NOT_STORED_BUSY`). Both are
counted per answer; the log gets one line per reason at most every `LOG_INTERVAL_S` with how many
answers it covers, so an outage or an overload is visible without flooding the log.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from enum import StrEnum

from server.core.metrics import DEGRADED, NOT_STORED

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 10.0


class Degraded(StrEnum):
    """Why an answer was decided from the rules alone (the `reason` label of the metric)."""

    REDIS_UNAVAILABLE = "redis_unavailable"  # refused, timed out, down, or too slow to answer
    BREAKER_OPEN = "breaker_open"  # failed repeatedly just now: not tried for a moment
    REDIS_REFUSED = "redis_refused"  # credentials or ACL: does not fix itself


_DEGRADED_SAYS = {
    Degraded.REDIS_UNAVAILABLE: "Redis could not be reached or did not answer in time",
    Degraded.BREAKER_OPEN: "Redis failed repeatedly; the circuit breaker is open",
    Degraded.REDIS_REFUSED: "Redis refused journeyman (credentials or ACL)",
}
NOT_STORED_BUSY = "busy"


class UnstoredAnswers:
    """Counts answers that stored nothing and logs them, rate-limited, per reason."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since_said: Counter[str] = Counter()
        self._said_at: dict[str, float] = {}
        self._degraded = {reason: DEGRADED.labels(reason=reason.value) for reason in Degraded}
        self._busy = NOT_STORED.labels(reason=NOT_STORED_BUSY)

    def degraded(self, reason: Degraded, count: int = 1) -> None:
        """`count` answers decided from the rules alone, for `reason`."""
        self._degraded[reason].inc(count)
        self._say(
            reason.value,
            count,
            f"answered {{count}} event(s) degraded (decided from the rules alone, not stored):"
            f" {_DEGRADED_SAYS[reason]}",
        )

    def busy(self, count: int = 1) -> None:
        """`count` events refused with RESOURCE_EXHAUSTED: not stored before their deadline."""
        self._busy.inc(count)
        self._say(
            NOT_STORED_BUSY,
            count,
            "refused {count} event(s) with RESOURCE_EXHAUSTED: the server could not store them"
            " before their callers' deadlines (overloaded; callers retry after the hint)",
        )

    def _say(self, reason: str, count: int, message: str) -> None:
        self._since_said[reason] += count
        now = self._clock()
        if now - self._said_at.get(reason, -LOG_INTERVAL_S) < LOG_INTERVAL_S:
            return
        self._said_at[reason] = now
        log.warning(message.format(count=self._since_said.pop(reason)))
