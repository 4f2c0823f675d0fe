"""A circuit breaker in front of Redis: stop piling calls on a Redis that keeps failing.

After `threshold` failures in a row the breaker opens: calls are answered degraded at once, with
no Redis attempt, for `open_s`. Then one call probes Redis (half-open); its success closes the
breaker, its failure opens it again. One per process; grpc.aio runs on one thread, so no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(
        self,
        *,
        threshold: int = 5,
        open_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._open_s = open_s
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._failures >= self._threshold

    @property
    def failing(self) -> bool:
        """Whether the last call that tried Redis failed (closed or not, Redis is in doubt)."""
        return self._failures > 0

    def allow(self) -> bool:
        """Whether this call may try Redis."""
        if not self.is_open:
            return True
        if self._probing or self._clock() < self._open_until:
            return False
        self._probing = True  # the one call that finds out whether Redis is back
        return True

    def succeeded(self) -> None:
        self._failures = 0
        self._probing = False

    def settle(self) -> None:
        """End of a call: a probe that ended otherwise (a conflict, a cancelled call) lets the
        next call probe instead of holding the breaker open."""
        self._probing = False

    def failed(self) -> None:
        self._failures += 1
        self._probing = False
        if self.is_open:
            self._open_until = self._clock() + self._open_s
