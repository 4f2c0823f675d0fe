"""Deciding events for callers: who waits, for what, and what an unstored event is answered.

The servicer hands validated events here. Concurrent Decide calls (and stream messages) gather
into batches (`server.core.coalescer`); DecideBatch calls take turns, two at a time. Each batch goes
through one decision round (`server.decisions.round`: load, decide, commit, retry on conflict)
behind a circuit breaker. An event the round could not store is answered degraded when Redis is
why, or Busy (RESOURCE_EXHAUSTED with a retry hint) when this server's own queue is: "degraded"
means Redis trouble only.

This is the data flow of DESIGN.md; the servicer only validates, calls it and answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from prometheus_client import Counter as MetricCounter

from engine.errors import JourneymanError
from journeyman.v1 import journeyman_pb2 as pb
from server.core.coalescer import QUIET_S, Coalescer, Hold
from server.core.metrics import BATCHES, BREAKER_OPEN, DECISIONS
from server.decisions.active import ActiveRules
from server.decisions.breaker import CircuitBreaker
from server.decisions.journey_stats import JourneyStats
from server.decisions.learned_rates import LearnedRates
from server.decisions.retry import RetryPolicy
from server.decisions.round import DecisionRound, Outcome, decide_degraded
from server.decisions.unstored import Degraded, UnstoredAnswers
from server.protocol.convert import DecideInput
from server.protocol.errors import Busy
from server.store.redis_store import Store

# DecideBatch calls decided at once: two keep Redis and the CPU both busy (one batch's round
# trip overlaps the other's decisions); more only add to every batch's wait.
BULK_BATCHES_AT_ONCE = 2
# Batches of concurrent Decide calls out at once: while one is, new calls gather into the next,
# which so grows with the load (a lone call is decided at once, in its own task). One: the event
# loop's thread is what concurrent calls wait for, and a larger batch shares its round trip and
# bookkeeping among more calls, where a second batch out only interleaved its CPU with the
# first's (concurrency 64 here: 12-20% more calls answered, DecideStream 8-28% more events).
MAX_BATCHES_OUT = 1
# Turns of the event loop a batch of concurrent Decide calls waits for more while other calls are
# in the server: gRPC hands the loop its calls a turn or two apart, so without this wait (and the
# pipeliner's, `server.store.pipelining`) a batch took 1.4 calls at concurrency 64, with both 3,
# and about 20 % more calls were answered on 2 cores. A lone call does not wait.
LINGER_TURNS = 4
# A saturated server's small batch of concurrent Decide calls waits for more while they keep
# coming (`server.core.coalescer.Hold`). At concurrency 64 (in turns with the same server not
# holding, 4 runs each): rounds of 3.0 calls became rounds of 17, the server's CPU per call went
# 541 -> 433 us and 17 % more calls were answered (2,192 -> 2,572 a second); holding to 16 calls
# gave +10 %, 8 ms or steps of one call +20-21 % but longer holds. DecideStream's rounds (31
# messages, 33 holding) and an open loop at half the closed loop's rate (rounds of 1: never
# saturated) were unchanged within the runs' spread.
HOLD = Hold(until=32, max_s=0.005)
# A caller stops waiting at this share of its deadline; the rest is for answering.
PATIENCE = 0.8
SLOW_ROUND_TRIP_S = 0.1
MIN_RETRY_AFTER_S = 0.05
MAX_RETRY_AFTER_S = 5.0


class Decider:
    """Decides events against the store, with the batching, backpressure and degradation
    policy of the service."""

    def __init__(
        self,
        rules: Callable[[], ActiveRules],
        store: Store,
        *,
        conflict_retries: int,
        redis_timeout_s: float,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        breaker: CircuitBreaker | None = None,
        company: Callable[[], bool] = lambda: False,
    ) -> None:
        """`company()`: whether the server has other calls than the one asking (the call
        gate's count); while it has, a batch waits LINGER_TURNS for more."""
        self._rules = rules
        self._store = store
        self._clock_ms = clock_ms
        self.stats = JourneyStats(store, clock_ms)
        self.retry_policy = RetryPolicy(conflict_retries)
        self.learned_rates = LearnedRates(store, clock_ms)
        self._round = DecisionRound(store, self.stats, self.retry_policy, self.learned_rates)
        self._breaker = breaker or CircuitBreaker()
        self._unstored = UnstoredAnswers()
        # A round trip out this long means Redis (not this server) is slow: a local Redis
        # answers a full pipeline in a few ms, and the socket timeout ends it at the budget.
        self._slow_redis_s = min(SLOW_ROUND_TRIP_S, redis_timeout_s / 2)
        self._calls: Coalescer[DecideInput, Outcome] = Coalescer(
            self._decide_together,
            max_in_flight=MAX_BATCHES_OUT,
            linger_turns=LINGER_TURNS,
            company=company,
            quiet_s=QUIET_S,
            hold=HOLD,
        )
        # DecideBatch calls decided at once; the others wait their turn (backpressure).
        self._bulk_slots = asyncio.Semaphore(BULK_BATCHES_AT_ONCE)
        self._bulk_waiting = 0  # DecideBatch calls waiting for a slot
        self._round_s = 0.0  # how long the last round through the store took

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    def now_ms(self) -> int:
        return self._clock_ms()

    async def decide(self, request: DecideInput, deadline_s: float | None) -> pb.Decision:
        """The decision for one validated event: stored, or degraded when Redis fails or is
        slow. Raises Busy, Conflicted or EventIdReused.

        Calls made while a batch is out are decided together as the next one: one Redis round
        trip to load them all and one to commit, and concurrent events of one customer decided
        in order in one lane instead of racing each other's commits. A call queued behind a
        batch stuck on Redis still answers within its own deadline (`deadline_s`, the time
        the caller has left): it stops waiting at PATIENCE of it.
        """
        patience_s = None if deadline_s is None else deadline_s * PATIENCE

        async def alone(request: DecideInput) -> Outcome:
            # Its patience is decide_many's budget then: PATIENCE of the deadline.
            return (await self.decide_many((request,), deadline_s))[0]

        outcome = await self._calls.submit(request, patience_s=patience_s, alone=alone)
        if outcome is None:
            outcome = self._not_stored(request, self._not_stored_in_time(), self._rules())
        if isinstance(outcome, JourneymanError):
            raise outcome
        return outcome

    async def _decide_together(
        self, requests: Sequence[DecideInput], waiting: Callable[[int], bool]
    ) -> list[Outcome]:
        # No deadline for the batch as a whole: each caller stops waiting at its own, so an
        # impatient caller never degrades the others.
        return await self.decide_many(requests, None, wanted=waiting)

    async def decide_batch(
        self, requests: Sequence[DecideInput], deadline_s: float | None
    ) -> list[Outcome]:
        """`decide_many` for a DecideBatch call. At most BULK_BATCHES_AT_ONCE are decided at
        once; the others wait for their turn within their deadline (backpressure), or are
        answered Busy, untouched, when it passes first."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._bulk_waiting += 1
        try:
            async with asyncio.timeout(None if deadline_s is None else deadline_s * PATIENCE):
                await self._bulk_slots.acquire()
        except TimeoutError:
            self._unstored.busy(len(requests))
            return [Busy(self._retry_after_s())] * len(requests)
        finally:
            self._bulk_waiting -= 1
        try:
            left_s = None if deadline_s is None else deadline_s - (loop.time() - started)
            return await self.decide_many(requests, left_s)
        finally:
            self._bulk_slots.release()

    async def decide_many(
        self,
        requests: Sequence[DecideInput],
        deadline_s: float | None,
        *,
        wanted: Callable[[int], bool] = lambda index: True,
    ) -> list[Outcome]:
        """Decisions for many validated events, in their order (`DecisionRound.decide`).

        An event is answered with its decision, or with the error it met (Conflicted: its
        customer kept changing under it; EventIdReused). When Redis fails, the events not yet
        stored are answered degraded. When the caller's deadline comes first, they are
        answered degraded if Redis is what held them (a round trip out too long, the breaker
        open), else Busy. An event whose caller stopped waiting (`wanted(index)` false) is not
        written, nor are that customer's later events in the batch.
        """
        active = self._rules()
        outcomes: dict[int, Outcome] = {}
        budget_s = None if deadline_s is None else deadline_s * PATIENCE
        if budget_s is not None and budget_s <= 0:
            left: Degraded | Busy = self._not_stored_in_time()
        elif not self._breaker.allow():
            left = Degraded.BREAKER_OPEN
        else:
            try:
                left = await self._through_store(requests, budget_s, active, outcomes, wanted)
            finally:
                # Also when its caller is cancelled: a probe that never ended would hold the
                # breaker open for good.
                self._breaker.settle()
        answers: list[Outcome] = []
        for index, request in enumerate(requests):
            outcome = outcomes.get(index)
            if outcome is None:
                # The caller who left was answered already; nothing is counted for it here.
                outcome = self._not_stored(request, left, active) if wanted(index) else _CALLER_LEFT
            elif isinstance(outcome, pb.Decision):
                _count_decision(outcome)
            answers.append(outcome)
        return answers

    async def _through_store(
        self,
        requests: Sequence[DecideInput],
        budget_s: float | None,
        active: ActiveRules,
        outcomes: dict[int, Outcome],
        wanted: Callable[[int], bool],
    ) -> Degraded | Busy:
        """One decision round within `budget_s`, filling `outcomes`; returns what the events
        left without one are answered with. Tells the breaker how Redis did."""
        started = time.monotonic()
        failure = None
        # Why the events were not stored in time is judged when the budget runs out, while the
        # round trip that held them is still out: once cut, no round trip is out to tell.
        held: list[Degraded | Busy] = []
        judge = None
        if budget_s is not None:
            judge = asyncio.get_running_loop().call_later(
                budget_s, lambda: held.append(self._not_stored_in_time())
            )
        deadline = None if budget_s is None else started + budget_s
        try:
            async with asyncio.timeout(budget_s):
                failure = await self._round.decide(
                    requests, active, outcomes, wanted, deadline=deadline
                )
        except TimeoutError:
            failure = None  # the caller's deadline, not a Redis failure: not for the breaker
            left: Degraded | Busy = held[0] if held else self._not_stored_in_time()
        else:
            left = failure or Degraded.REDIS_UNAVAILABLE  # no event is left when Redis worked
            self._round_s = time.monotonic() - started
        finally:
            if judge is not None:
                judge.cancel()
        if failure is not None:
            self._breaker.failed()
        else:
            self._breaker.succeeded()
        BREAKER_OPEN.set(self._breaker.is_open)
        return left

    def _not_stored_in_time(self) -> Degraded | Busy:
        """What an event that its caller's deadline caught before it was stored is answered
        with: degraded when Redis is what held it, Busy when this server's own queue did."""
        if self._breaker.is_open:
            return Degraded.BREAKER_OPEN
        if self._breaker.failing or self._store.redis_wait_s() >= self._slow_redis_s:
            return Degraded.REDIS_UNAVAILABLE
        return Busy(self._retry_after_s())

    def _retry_after_s(self) -> float:
        """When a refused caller may try again: once the batches now waiting had their turn
        (one round through the store each, BULK_BATCHES_AT_ONCE at a time)."""
        turns = 1 + self._bulk_waiting / BULK_BATCHES_AT_ONCE
        return min(MAX_RETRY_AFTER_S, max(MIN_RETRY_AFTER_S, self._round_s * turns))

    def _not_stored(
        self, request: DecideInput, why: Degraded | Busy, active: ActiveRules
    ) -> Outcome:
        """The answer to an event that was not stored: Busy, or decided from the rules alone
        (degraded), counted and logged by reason either way."""
        if isinstance(why, Busy):
            self._unstored.busy()
            return why
        self._unstored.degraded(why)
        answer = decide_degraded(request, active)
        _count_decision(answer)
        return answer

    async def drain(self) -> None:
        """Finish the batches still out and write the statistics counted so far (shutdown)."""
        await self._calls.drain()
        await self.stats.drain()
        await self.learned_rates.drain()


# The outcome of an event whose caller stopped waiting (and was answered then): never seen.
_CALLER_LEFT = Busy(MIN_RETRY_AFTER_S)


def _count_decision(answer: pb.Decision) -> None:
    outcome = "degraded" if answer.degraded else "duplicate" if answer.duplicate else "stored"
    for journey in answer.journeys:
        key = (journey.journey, journey.stage, outcome)
        counter = _DECISION_COUNTERS.get(key)
        if counter is None:  # labels() is a lookup under a lock: once per combination
            counter = _DECISION_COUNTERS[key] = DECISIONS.labels(*key)
        BATCHES.inc(counter)


_DECISION_COUNTERS: dict[tuple[str, str, str], MetricCounter] = {}
