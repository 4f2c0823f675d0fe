"""One event through the store and the engine: load, decide, commit, retry on conflict, degrade.

This is the data flow of DESIGN.md; the servicer only validates, calls it and answers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.codec import decode_state, encode_state
from engine.compile import Ruleset
from engine.decide import decide
from engine.errors import StateDecodeError
from engine.state import CustomerState, new_state
from journeyman.v1 import journeyman_pb2 as pb
from server.breaker import CircuitBreaker
from server.convert import DecideInput, ResponseTables, decision_to_pb
from server.errors import Conflicted, EventIdReused
from server.metrics import CONFLICTS, DECISIONS, DEGRADED, KERNEL_SECONDS, REDIS_SECONDS, timed
from server.store import CommitOutcome, StageChange, Store, StoreUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActiveRules:
    """The ruleset in force and what answers need from it; swapped whole on reload."""

    ruleset: Ruleset
    tables: ResponseTables

    @classmethod
    def of(cls, ruleset: Ruleset) -> ActiveRules:
        return cls(ruleset, ResponseTables.of(ruleset))


def decode_or_new(ruleset: Ruleset, data: bytes | None) -> CustomerState:
    """The stored state, or a new one when there is none or it cannot be read at all."""
    if data is None:
        return new_state(ruleset)
    try:
        return decode_state(data, ruleset)
    except StateDecodeError:
        # Unreadable bytes would fail every event of this customer forever; start afresh and
        # say so (the id is not logged: it is personal data).
        log.warning("stored state unreadable; the customer starts afresh", exc_info=True)
        return new_state(ruleset)


class Decider:
    """Decides events against the store, with the retry and degradation policy of the service."""

    def __init__(
        self,
        rules: Callable[[], ActiveRules],
        store: Store,
        *,
        conflict_retries: int,
        redis_timeout_s: float,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._rules = rules
        self._store = store
        self._retries = conflict_retries
        self._redis_timeout_s = redis_timeout_s
        self._clock_ms = clock_ms
        self._background: set[asyncio.Task[None]] = set()
        self._breaker = breaker or CircuitBreaker()

    def now_ms(self) -> int:
        return self._clock_ms()

    async def decide(
        self, request: DecideInput, deadline_s: float | None, *, use_store: bool = True
    ) -> pb.Decision:
        """The decision for one validated event: stored, or degraded when Redis fails or is slow
        (or `use_store` is false: the caller already saw it fail).

        `deadline_s` is the time the caller has left; Redis gets at most that (minus a margin
        to answer in) and at most the configured timeout.
        """
        active = self._rules()
        budget_s = self._redis_timeout_s
        if deadline_s is not None:
            budget_s = max(0.0, min(budget_s, deadline_s * 0.8))
        if not use_store or not self._breaker.allow():
            budget_s = 0.0
        try:
            if budget_s <= 0:
                raise TimeoutError
            async with asyncio.timeout(budget_s):
                answer = await self._decide_stored(request, active)
            self._breaker.succeeded()
        except (StoreUnavailable, TimeoutError):
            if budget_s > 0:
                self._breaker.failed()
            DEGRADED.inc()
            answer = self._decide_degraded(request, active)
        finally:
            self._breaker.settle()
        _count_decision(answer)
        return answer

    async def _decide_stored(self, request: DecideInput, active: ActiveRules) -> pb.Decision:
        event = request.event
        customer = event.customer_id  # or the anonymous id: `anonymous=` picks the key space
        for attempt in range(self._retries + 1):
            if attempt:
                # Spread the retries of events racing for one customer, so they stop colliding.
                await asyncio.sleep(random.uniform(0, CONFLICT_BACKOFF_S * attempt))
            with timed(LOAD_SECONDS):
                loaded = await self._store.load(
                    customer, event.event_id, anonymous=request.anonymous
                )
            if loaded.decision is not None:
                return _replayed(loaded.decision, request)
            state = decode_or_new(active.ruleset, loaded.state)
            with timed(KERNEL_SECONDS):
                decision, new = decide(
                    active.ruleset, state, event, request.timestamp_ms,
                    top_k=request.top_k, explain=request.explain,
                )  # fmt: skip
            answer = decision_to_pb(
                decision, active.tables, customer_id=customer, event_id=event.event_id,
                decided_at_ms=request.timestamp_ms, degraded=False,
            )  # fmt: skip
            with timed(COMMIT_SECONDS):
                result = await self._store.commit(
                    customer, loaded.version, encode_state(active.ruleset, new), event.event_id,
                    request.fingerprint + answer.SerializeToString(), anonymous=request.anonymous,
                )  # fmt: skip
            if result.outcome is CommitOutcome.COMMITTED:
                self._count(answer, is_new=loaded.state is None)
                return answer
            if result.outcome is CommitOutcome.DUPLICATE and result.decision is not None:
                return _replayed(result.decision, request)
            CONFLICTS.inc()
        raise Conflicted(f"customer updated concurrently {self._retries + 1} times")

    def _decide_degraded(self, request: DecideInput, active: ActiveRules) -> pb.Decision:
        """From the rules alone, as for a new customer; nothing is written."""
        decision, _ = decide(
            active.ruleset, new_state(active.ruleset), request.event, request.timestamp_ms,
            top_k=request.top_k, explain=request.explain,
        )  # fmt: skip
        return decision_to_pb(
            decision, active.tables, customer_id=request.event.customer_id,
            event_id=request.event.event_id, decided_at_ms=request.timestamp_ms, degraded=True,
        )  # fmt: skip

    def _count(self, answer: pb.Decision, *, is_new: bool) -> None:
        """Bump the journey statistics off the hot path: they are analytics, not state."""
        changes = [
            StageChange(
                journey=j.journey,
                from_stage=None if is_new else j.previous_stage,
                to_stage=j.stage,
                transition=j.transition or None,
            )
            for j in answer.journeys
            if is_new or j.changed
        ]
        if not changes:
            return
        day = time.strftime("%Y%m%d", time.gmtime(answer.decided_at_ms / 1000))
        task = asyncio.get_running_loop().create_task(self._bump(changes, day))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _bump(self, changes: list[StageChange], day: str) -> None:
        try:
            await self._store.bump_stats(changes, day)
        except StoreUnavailable:
            log.debug("journey statistics not counted: store unavailable")

    async def drain(self) -> None:
        """Wait for the statistics still being written (on shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


CONFLICT_BACKOFF_S = 0.002
FINGERPRINT_BYTES = 16
LOAD_SECONDS = REDIS_SECONDS.labels(operation="load")
COMMIT_SECONDS = REDIS_SECONDS.labels(operation="commit")


def _count_decision(answer: pb.Decision) -> None:
    outcome = "degraded" if answer.degraded else "duplicate" if answer.duplicate else "stored"
    for journey in answer.journeys:
        DECISIONS.labels(journey=journey.journey, stage=journey.stage, outcome=outcome).inc()


def _replayed(stored: bytes, request: DecideInput) -> pb.Decision:
    """The original decision for a repeated event id, if the event is the same one.

    Stored as the event's fingerprint followed by the decision, so that an event id reused for
    a different event is refused rather than answered with another event's decision.
    """
    fingerprint, original = stored[:FINGERPRINT_BYTES], stored[FINGERPRINT_BYTES:]
    if fingerprint != request.fingerprint:
        raise EventIdReused(
            f"event_id {request.event.event_id!r} was already used for a different event of "
            "this customer; send a new event_id (a retry must resend the same event)"
        )
    decision = pb.Decision.FromString(original)
    decision.duplicate = True
    return decision
