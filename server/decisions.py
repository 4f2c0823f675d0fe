"""One event through the store and the engine: load, decide, commit, retry on conflict, degrade.

This is the data flow of DESIGN.md; the servicer only validates, calls it and answers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter as MetricCounter

from engine.codec import decode_state, encode_state
from engine.compile import Ruleset
from engine.decide import decide
from engine.errors import JourneymanError, StateDecodeError
from engine.state import CustomerState, new_state
from journeyman.v1 import journeyman_pb2 as pb
from server.breaker import CircuitBreaker
from server.convert import DecideInput, ResponseTables, decision_to_pb
from server.errors import Conflicted, EventIdReused
from server.keys import utc_day
from server.metrics import CONFLICTS, DECISIONS, DEGRADED, KERNEL_SECONDS, REDIS_SECONDS, timed
from server.store import (
    CommitOutcome,
    LoadedEvents,
    StageChange,
    StatIncrements,
    Store,
    StoreRefused,
    StoreUnavailable,
    ToCommit,
    ToLoad,
)

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


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A call waiting for the next batch."""

    request: DecideInput
    # None: the caller's deadline came first (answered degraded without waiting further).
    future: asyncio.Future[pb.Decision | JourneymanError | None]


@dataclass(slots=True)
class _Decided:
    """One customer's events decided from a loaded state, before the commit."""

    state: CustomerState
    commits: list[tuple[str, bytes]] = field(default_factory=list)  # (event id, kept decision)
    answers: list[tuple[int, pb.Decision]] = field(default_factory=list)  # (request index, ...)
    # Events repeated within the batch: (request index, what the first is stored with).
    repeats: list[tuple[int, bytes]] = field(default_factory=list)


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
        self._queued: list[_Waiting] = []  # calls for the next batch
        self._batch_scheduled = False
        self._batches_out = 0
        self._batches: set[asyncio.Task[None]] = set()
        self._stats: StatIncrements = Counter()
        self._refusal_said_at = -math.inf
        self._stats_writer: asyncio.Task[None] | None = None
        self._breaker = breaker or CircuitBreaker()

    def now_ms(self) -> int:
        return self._clock_ms()

    async def decide(self, request: DecideInput, deadline_s: float | None) -> pb.Decision:
        """The decision for one validated event: stored, or degraded when Redis fails or is slow.

        `deadline_s` is the time the caller has left; Redis gets at most that (minus a margin
        to answer in) and at most the configured timeout. Raises Conflicted or EventIdReused.

        Calls made while a batch is out are decided together as the next one (`decide_many`):
        one Redis round trip to load them all and one to commit, and concurrent events of one
        customer decided in order in one lane instead of racing each other's commits.
        """
        outcome = await self._decide_in_next_batch(request, deadline_s)
        if isinstance(outcome, JourneymanError):
            raise outcome
        return outcome

    async def _decide_in_next_batch(
        self, request: DecideInput, deadline_s: float | None
    ) -> pb.Decision | JourneymanError:
        loop = asyncio.get_running_loop()
        waiting = _Waiting(request, loop.create_future())
        self._queued.append(waiting)
        if not self._batch_scheduled and self._batches_out < MAX_BATCHES_OUT:
            self._batch_scheduled = True
            loop.call_soon(self._start_batch)
        # A call queued behind a batch stuck on Redis must still answer within its own
        # deadline: when its margin runs out it stops waiting and is answered degraded.
        timer = None
        if deadline_s is not None:
            timer = loop.call_at(loop.time() + deadline_s * 0.8, _give_up, waiting.future)
        try:
            outcome = await waiting.future
        finally:
            if timer is not None:
                timer.cancel()
        if outcome is None:
            DEGRADED.labels(reason="redis_unavailable").inc()
            outcome = self._decide_degraded(request, self._rules())
            _count_decision(outcome)
        return outcome

    def _start_batch(self) -> None:
        self._batch_scheduled = False
        if self._batches_out >= MAX_BATCHES_OUT:
            return
        batch = [w for w in self._queued if not w.future.done()]  # not callers who left
        self._queued = []
        if not batch:
            return
        self._batches_out += 1
        task = asyncio.get_running_loop().create_task(self._run_batch(batch))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _run_batch(self, batch: list[_Waiting]) -> None:
        try:
            # No deadline for the batch as a whole: each caller stops waiting at its own (see
            # _decide_in_next_batch), so an impatient caller never degrades the others.
            outcomes = await self.decide_many(
                [w.request for w in batch], None, wanted=lambda i: not batch[i].future.done()
            )
            for waiting, outcome in zip(batch, outcomes, strict=True):
                if not waiting.future.done():
                    waiting.future.set_result(outcome)
        except BaseException as error:
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(error)
            if not isinstance(error, Exception):
                raise
        finally:
            self._batches_out -= 1
            if self._queued and not self._batch_scheduled:
                self._batch_scheduled = True
                asyncio.get_running_loop().call_soon(self._start_batch)

    async def decide_many(
        self,
        requests: Sequence[DecideInput],
        deadline_s: float | None,
        *,
        wanted: Callable[[int], bool] = lambda index: True,
    ) -> list[pb.Decision | JourneymanError]:
        """Decisions for many validated events, in their order: each customer's events in
        order on the state the last one left, all customers' loads in one Redis round trip and
        their commits in another (the store pipelines concurrent calls).

        An event is answered with its decision, or with the error it met (Conflicted: its
        customer kept changing under it; EventIdReused). When Redis fails or the budget runs
        out, the events not yet stored are answered degraded. An event whose caller stopped
        waiting (`wanted(index)` false) is not written, nor are that customer's later events
        in the batch: its caller was answered degraded, and degraded answers write nothing.
        """
        active = self._rules()
        # Each Redis round trip gets the configured timeout; the whole, a margin short of the
        # caller's deadline (the rest is for answering, degraded if need be).
        budget_s = None if deadline_s is None else deadline_s * 0.8
        outcomes: dict[int, pb.Decision | JourneymanError] = {}
        use_store = (budget_s is None or budget_s > 0) and self._breaker.allow()
        if use_store:
            lanes: dict[tuple[str, bool], list[int]] = {}
            for index, request in enumerate(requests):
                key = (request.event.customer_id, request.anonymous)
                lanes.setdefault(key, []).append(index)
            try:
                async with asyncio.timeout(budget_s):
                    store_failed = await self._decide_lanes(
                        requests, list(lanes.values()), active, outcomes, wanted
                    )
            except TimeoutError:
                store_failed = False  # the caller's deadline, not Redis: not for the breaker
            if store_failed:
                self._breaker.failed()
            else:
                self._breaker.succeeded()
        self._breaker.settle()
        answers: list[pb.Decision | JourneymanError] = []
        for index, request in enumerate(requests):
            outcome = outcomes.get(index)
            if outcome is None:
                DEGRADED.labels(reason="redis_unavailable").inc()
                outcome = self._decide_degraded(request, active)
            if isinstance(outcome, pb.Decision):
                _count_decision(outcome)
            answers.append(outcome)
        return answers

    async def _decide_lanes(
        self,
        requests: Sequence[DecideInput],
        lanes: list[list[int]],
        active: ActiveRules,
        outcomes: dict[int, pb.Decision | JourneymanError],
        wanted: Callable[[int], bool],
    ) -> bool:
        """Decide each customer's events (a lane: their indexes, in order) against the store:
        every lane's load in one round trip, its events decided in order, every commit in
        another; the lanes whose commit met a concurrent update go round again. Returns whether
        Redis failed (the events not answered then are answered degraded by the caller)."""
        for attempt in range(self._retries + 1):
            if attempt:
                # Spread the retries of events racing for one customer, so they stop colliding.
                await asyncio.sleep(random.uniform(0, CONFLICT_BACKOFF_S * attempt))
            pending = [[i for i in lane if i not in outcomes] for lane in lanes]
            try:
                with timed(LOAD_SECONDS):
                    async with asyncio.timeout(self._redis_timeout_s):
                        loaded = await self._store.load_many(
                            [_to_load(requests, lane) for lane in pending]
                        )
                decided = [
                    self._decide_loaded(requests, lane, one, active, outcomes, wanted)
                    for lane, one in zip(pending, loaded, strict=True)
                ]
                commits = [
                    ToCommit(
                        requests[lane[0]].event.customer_id, requests[lane[0]].anonymous,
                        one.version, encode_state(active.ruleset, done.state), done.commits,
                    )
                    for lane, one, done in zip(pending, loaded, decided, strict=True)
                    if done.commits
                ]  # fmt: skip
                with timed(COMMIT_SECONDS):
                    async with asyncio.timeout(self._redis_timeout_s):
                        results = iter(await self._store.commit_many(commits))
            except StoreRefused as error:
                self._say_refused(error)
                return True
            except (StoreUnavailable, TimeoutError):
                return True
            lanes = []
            for lane, one, done in zip(pending, loaded, decided, strict=True):
                if not done.commits:
                    continue
                if next(results).outcome is not CommitOutcome.COMMITTED:
                    # CONFLICT, or DUPLICATE: a retry of one of these events landed first;
                    # the next round replays it from the store.
                    CONFLICTS.inc()
                    lanes.append(lane)
                    continue
                self._answer_stored(requests, done, outcomes, is_new=one.state is None)
            if not lanes:
                return False
        for lane in lanes:
            for index in lane:
                outcomes.setdefault(
                    index, Conflicted(f"customer updated concurrently {self._retries + 1} times")
                )
        return False

    def _answer_stored(
        self,
        requests: Sequence[DecideInput],
        done: _Decided,
        outcomes: dict[int, pb.Decision | JourneymanError],
        *,
        is_new: bool,
    ) -> None:
        """Answer a lane whose commit landed: its decisions, and its in-batch repeats with
        the decision now stored for them."""
        for index, answer in done.answers:
            outcomes[index] = answer
            self._count(answer, is_new=is_new)
            is_new = False
        for index, kept in done.repeats:
            outcomes[index] = _replayed_or_refused(kept, requests[index])

    def _decide_loaded(
        self,
        requests: Sequence[DecideInput],
        pending: list[int],
        loaded: LoadedEvents,
        active: ActiveRules,
        outcomes: dict[int, pb.Decision | JourneymanError],
        wanted: Callable[[int], bool],
    ) -> _Decided:
        """Decide `pending` events in order from the loaded state; events already stored (or
        repeated within the batch) are answered with their original decision at once."""
        state = decode_or_new(active.ruleset, loaded.state)
        decided = _Decided(state)
        kept: dict[str, bytes] = {}  # event id -> what this attempt will store for it
        for index, stored in zip(pending, loaded.decisions, strict=True):
            if not wanted(index):
                break
            request = requests[index]
            event = request.event
            if stored is not None:  # already stored: answered with it now
                outcomes[index] = _replayed_or_refused(stored, request)
                continue
            if event.event_id in kept:  # repeated in this batch: answered once it is stored
                decided.repeats.append((index, kept[event.event_id]))
                continue
            started = time.perf_counter()
            decision, decided.state = decide(
                active.ruleset, decided.state, event, request.timestamp_ms,
                top_k=request.top_k, explain=request.explain,
            )  # fmt: skip
            KERNEL_SECONDS.observe(time.perf_counter() - started)
            answer = decision_to_pb(
                decision, active.tables, customer_id=event.customer_id, event_id=event.event_id,
                decided_at_ms=request.timestamp_ms, degraded=False,
            )  # fmt: skip
            kept[event.event_id] = request.fingerprint + answer.SerializeToString()
            decided.commits.append((event.event_id, kept[event.event_id]))
            decided.answers.append((index, answer))
        return decided

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
        """Add the answer's stage moves to the journey statistics, written off the hot path
        every STATS_FLUSH_S, summed: they are analytics, not state."""
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
        day = _utc_day(answer.decided_at_ms // DAY_MS)
        self._stats.update(self._store.stat_increments(changes, day))
        if self._stats_writer is None:
            self._stats_writer = asyncio.get_running_loop().create_task(self._write_stats())

    async def _write_stats(self) -> None:
        try:
            await asyncio.sleep(STATS_FLUSH_S)
        finally:
            # Also when cancelled (shutdown): what was counted is written, not dropped.
            increments, self._stats = self._stats, Counter()
            self._stats_writer = None
            try:
                await self._store.add_to_stats(increments)
            except StoreUnavailable:
                log.debug("journey statistics not counted: store unavailable")

    def _say_refused(self, error: StoreRefused) -> None:
        """Log why Redis refuses us (an ACL without a command, a changed password) at most
        every REFUSAL_LOG_INTERVAL_S: it does not fix itself, but must not flood the log."""
        now = time.monotonic()
        if now - self._refusal_said_at >= REFUSAL_LOG_INTERVAL_S:
            self._refusal_said_at = now
            log.error("answering degraded: %s", error)

    async def drain(self) -> None:
        """Finish the batches still out and write the statistics counted so far (shutdown)."""
        if self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)
        if self._stats_writer is not None:
            await asyncio.gather(self._stats_writer, return_exceptions=True)


CONFLICT_BACKOFF_S = 0.002
DAY_MS = 86_400_000
REFUSAL_LOG_INTERVAL_S = 10.0
# Batches of calls out at once: while they are, new calls gather into the next one, which so
# grows with the load (alone, a call still goes on the next turn of the event loop).
MAX_BATCHES_OUT = 2
STATS_FLUSH_S = 0.05
FINGERPRINT_BYTES = 16
LOAD_SECONDS = REDIS_SECONDS.labels(operation="load")
COMMIT_SECONDS = REDIS_SECONDS.labels(operation="commit")


def _give_up(future: asyncio.Future[pb.Decision | JourneymanError | None]) -> None:
    if not future.done():
        future.set_result(None)


def _to_load(requests: Sequence[DecideInput], lane: list[int]) -> ToLoad:
    first = requests[lane[0]]
    event_ids = [requests[i].event.event_id for i in lane]
    return ToLoad(first.event.customer_id, first.anonymous, event_ids)


@functools.lru_cache(maxsize=8)
def _utc_day(day_number: int) -> str:
    """`utc_day` of a day number (ms // DAY_MS): formatting a date per event costs µs."""
    return utc_day(day_number * DAY_MS)


def _count_decision(answer: pb.Decision) -> None:
    outcome = "degraded" if answer.degraded else "duplicate" if answer.duplicate else "stored"
    for journey in answer.journeys:
        key = (journey.journey, journey.stage, outcome)
        counter = _DECISION_COUNTERS.get(key)
        if counter is None:  # labels() is a lookup under a lock: once per combination
            counter = _DECISION_COUNTERS[key] = DECISIONS.labels(*key)
        counter.inc()


_DECISION_COUNTERS: dict[tuple[str, str, str], MetricCounter] = {}


def _replayed_or_refused(stored: bytes, request: DecideInput) -> pb.Decision | EventIdReused:
    try:
        return _replayed(stored, request)
    except EventIdReused as error:
        return error


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
