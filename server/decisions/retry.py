"""The retry policy of every compare-and-set loop: a decision round, Identify's merge, the take
of a visitor and its give-back. One policy, so they all behave (and are configured) alike."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from server.protocol.errors import Conflicted


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`retries` tries after the first (JOURNEYMAN_CONFLICT_RETRIES); before try n, a pause
    drawn from [0, n * backoff_s) so that writers racing for one customer stop colliding."""

    retries: int
    backoff_s: float = 0.002

    def attempts(self) -> range:
        """The tries: 0 (the first), then 1 ... retries; call `pause(attempt)` first in each."""
        return range(self.retries + 1)

    async def pause(self, attempt: int) -> None:
        """Before a retry, a random pause that grows with the attempt; none before the first."""
        if attempt:
            await asyncio.sleep(random.uniform(0, self.backoff_s * attempt))

    def exhausted(self, what: str) -> Conflicted:
        """The error for a loop that never got its write in (ABORTED to the caller)."""
        return Conflicted(f"{what} updated concurrently {self.retries + 1} times")
