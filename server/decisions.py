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
from collections.abc import Callable, Iterator, Sequence
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
from server.errors import Busy, Conflicted, EventIdReused
from server.keys import utc_day
from server.metrics import (
    BREAKER_OPEN,
    CONFLICTS,
    DECISIONS,
    KERNEL_SECONDS,
    REDIS_SECONDS,
    timed,
)
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
from server.unstored import Degraded, UnstoredAnswers

log = logging.getLogger(__name__)

# What one event is answered with: its decision (stored, duplicate or degraded), or the error it
# met (Busy, Conflicted, EventIdReused).
Outcome = pb.Decision | JourneymanError


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
    future: asyncio.Future[Outcome | None]


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
        # A round trip out this long means Redis (not this server) is slow: a local Redis
        # answers a full pipeline in a few ms, and the socket timeout ends it at the budget.
        self._slow_redis_s = min(SLOW_ROUND_TRIP_S, redis_timeout_s / 2)
        self._clock_ms = clock_ms
        self._queued: list[_Waiting] = []  # calls for the next batch
        self._batch_scheduled = False
        self._batches_out = 0
        self._batches: set[asyncio.Task[None]] = set()
        self._stats: StatIncrements = Counter()
        self._refusal_said_at = -math.inf
        self._stats_writer: asyncio.Task[None] | None = None
        self._breaker = breaker or CircuitBreaker()
        self._unstored = UnstoredAnswers()
        # DecideBatch calls decided at once; the others wait their turn (backpressure).
        self._bulk_slots = asyncio.Semaphore(BULK_BATCHES_AT_ONCE)
        self._bulk_waiting = 0  # DecideBatch calls waiting for a slot
        self._round_s = 0.0  # how long the last round through the store took

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
    ) -> Outcome:
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
            outcome = self._not_stored(request, self._not_stored_in_time(), self._rules())
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
            async with asyncio.timeout(None if deadline_s is None else deadline_s * 0.8):
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
        """Decisions for many validated events, in their order: each customer's events in
        order on the state the last one left, all customers' loads in one Redis round trip and
        their commits in another (the store pipelines concurrent calls).

        An event is answered with its decision, or with the error it met (Conflicted: its
        customer kept changing under it; EventIdReused). When Redis fails, the events not yet
        stored are answered degraded. When the caller's deadline comes first, they are
        answered degraded if Redis is what held them (a round trip out too long, the breaker
        open), else Busy: the server's own queue held them, and "degraded" means Redis trouble
        only. An event whose caller stopped waiting (`wanted(index)` false) is not written, nor
        are that customer's later events in the batch.
        """
        active = self._rules()
        outcomes: dict[int, Outcome] = {}
        # The rest of the caller's deadline, less a margin to answer in.
        budget_s = None if deadline_s is None else deadline_s * 0.8
        if budget_s is not None and budget_s <= 0:
            left: Degraded | Busy = self._not_stored_in_time()
        elif not self._breaker.allow():
            left = Degraded.BREAKER_OPEN
        else:
            left = await self._round(requests, budget_s, active, outcomes, wanted)
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

    async def _round(
        self,
        requests: Sequence[DecideInput],
        budget_s: float | None,
        active: ActiveRules,
        outcomes: dict[int, Outcome],
        wanted: Callable[[int], bool],
    ) -> Degraded | Busy:
        """One pass of the events through the store, filling `outcomes`; returns what the
        events left without one are answered with. Tells the breaker how Redis did."""
        lanes: dict[tuple[str, bool], list[int]] = {}
        for index, request in enumerate(requests):
            lanes.setdefault((request.event.customer_id, request.anonymous), []).append(index)
        started = time.monotonic()
        failure = None
        try:
            async with asyncio.timeout(budget_s):
                # A large batch goes in parts, each stored before the next is decided: when
                # the deadline comes, what was stored is answered so, and a caller who sends
                # the rest again makes progress instead of starting over.
                for part in _parts(list(lanes.values()), EVENTS_PER_PART):
                    failure = await self._decide_lanes(requests, part, active, outcomes, wanted)
                    if failure is not None:
                        break
        except TimeoutError:
            failure = None  # the caller's deadline, not a Redis failure: not for the breaker
            left: Degraded | Busy = self._not_stored_in_time()
        else:
            left = failure or Degraded.REDIS_UNAVAILABLE  # no event is left when Redis worked
            self._round_s = time.monotonic() - started
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
        if self._breaker.failing or self._store.round_trip_out_s() >= self._slow_redis_s:
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
        answer = self._decide_degraded(request, active)
        _count_decision(answer)
        return answer

    async def _decide_lanes(
        self,
        requests: Sequence[DecideInput],
        lanes: list[list[int]],
        active: ActiveRules,
        outcomes: dict[int, Outcome],
        wanted: Callable[[int], bool],
    ) -> Degraded | None:
        """Decide each customer's events (a lane: their indexes, in order) against the store:
        every lane's load in one round trip, its events decided in order, every commit in
        another; the lanes whose commit met a concurrent update go round again. Returns why
        Redis failed, None if it did not (the events not answered then are answered degraded
        by the caller).

        Each Redis command has the configured budget (the client's socket timeout bounds the
        connect and every reply), so a large batch's round trip is not cut short for its size
        and a slow Redis is still noticed. The events are decided in slices of CPU_SLICE_S
        with the event loop let through between them, so that a large batch delays no other
        call's replies (and their timeouts) by more than a slice."""
        for attempt in range(self._retries + 1):
            if attempt:
                # Spread the retries of events racing for one customer, so they stop colliding.
                await asyncio.sleep(random.uniform(0, CONFLICT_BACKOFF_S * attempt))
            pending = [[i for i in lane if i not in outcomes] for lane in lanes]
            try:
                with timed(LOAD_SECONDS):
                    loaded = await self._store.load_many(
                        [_to_load(requests, lane) for lane in pending]
                    )
                decided, commits = await self._decide_in_slices(
                    requests, pending, loaded, active, outcomes, wanted
                )
                with timed(COMMIT_SECONDS):
                    results = iter(await self._store.commit_many(commits))
            except StoreRefused as error:
                self._say_refused(error)
                return Degraded.REDIS_REFUSED
            except StoreUnavailable:
                return Degraded.REDIS_UNAVAILABLE
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
                return None
        for lane in lanes:
            for index in lane:
                outcomes.setdefault(
                    index, Conflicted(f"customer updated concurrently {self._retries + 1} times")
                )
        return None

    async def _decide_in_slices(
        self,
        requests: Sequence[DecideInput],
        pending: list[list[int]],
        loaded: list[LoadedEvents],
        active: ActiveRules,
        outcomes: dict[int, Outcome],
        wanted: Callable[[int], bool],
    ) -> tuple[list[_Decided], list[ToCommit]]:
        """Each lane's events decided on its loaded state, and the commits of those that made
        new decisions; the event loop is let through every CPU_SLICE_S."""
        decided, commits = [], []
        slice_ends = time.perf_counter() + CPU_SLICE_S
        for lane, one in zip(pending, loaded, strict=True):
            done = self._decide_loaded(requests, lane, one, active, outcomes, wanted)
            decided.append(done)
            if done.commits:
                first = requests[lane[0]]
                commits.append(ToCommit(
                    first.event.customer_id, first.anonymous, one.version,
                    encode_state(active.ruleset, done.state), done.commits,
                ))  # fmt: skip
            if time.perf_counter() >= slice_ends:
                await asyncio.sleep(0)
                slice_ends = time.perf_counter() + CPU_SLICE_S
        return decided, commits

    def _answer_stored(
        self,
        requests: Sequence[DecideInput],
        done: _Decided,
        outcomes: dict[int, Outcome],
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
        outcomes: dict[int, Outcome],
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
            applied_at_ms = decided.state.applied_at_ms(request.timestamp_ms)
            started = time.perf_counter()
            decision, decided.state = decide(
                active.ruleset, decided.state, event, request.timestamp_ms,
                top_k=request.top_k, explain=request.explain,
            )  # fmt: skip
            KERNEL_SECONDS.observe(time.perf_counter() - started)
            answer = decision_to_pb(
                decision, active.tables, customer_id=event.customer_id, event_id=event.event_id,
                decided_at_ms=applied_at_ms, degraded=False,
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
# DecideBatch calls decided at once: two keep Redis and the CPU both busy (one batch's round
# trip overlaps the other's decisions); more only add to every batch's wait.
BULK_BATCHES_AT_ONCE = 2
# Decisions made between two turns of the event loop: short enough that the replies of other
# calls (and the timers of their Redis budgets) wait no longer than this for a large batch.
CPU_SLICE_S = 0.005
# Events of a large batch stored together before the next part is decided.
EVENTS_PER_PART = 500
SLOW_ROUND_TRIP_S = 0.1
MIN_RETRY_AFTER_S = 0.05
MAX_RETRY_AFTER_S = 5.0
DAY_MS = 86_400_000
REFUSAL_LOG_INTERVAL_S = 10.0
# Batches of calls out at once: while they are, new calls gather into the next one, which so
# grows with the load (alone, a call still goes on the next turn of the event loop).
MAX_BATCHES_OUT = 2
STATS_FLUSH_S = 0.05
FINGERPRINT_BYTES = 16
LOAD_SECONDS = REDIS_SECONDS.labels(operation="load")
COMMIT_SECONDS = REDIS_SECONDS.labels(operation="commit")


# The outcome of an event whose caller stopped waiting (and was answered then): never seen.
_CALLER_LEFT = Busy(MIN_RETRY_AFTER_S)


def _give_up(future: asyncio.Future[Outcome | None]) -> None:
    if not future.done():
        future.set_result(None)


def _parts(lanes: list[list[int]], events: int) -> Iterator[list[list[int]]]:
    """`lanes` in consecutive parts of about `events` events each (a lane is never split)."""
    part: list[list[int]] = []
    size = 0
    for lane in lanes:
        part.append(lane)
        size += len(lane)
        if size >= events:
            yield part
            part, size = [], 0
    if part:
        yield part


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
