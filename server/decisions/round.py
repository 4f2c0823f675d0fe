"""One decision round: a batch of validated events through the store and the engine.

Each customer's events form a lane, decided in order on the state the last one left: every
lane's load goes in one Redis round trip (none for the customers in the store's state cache),
the decisions are made, every commit goes in another; a lane whose compare-and-set met a
concurrent update goes round again, under the retry policy.
A large batch goes in parts of at most EVENTS_PER_PART events (fewer when its caller's time left
would not store that many), each stored before the next is decided.
The round fills in the outcome of every event it stored (or answered from the decision ring);
what it could not store is for the caller (`server.decisions.decider`) to answer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from engine.codec import encode_state
from engine.compile import Ruleset
from engine.decide import decide, duplicate_decision
from engine.decision import Decision
from engine.errors import JourneymanError, StateFromNewerServer
from engine.event import Event
from engine.many import ManyDecisions, decide_many
from engine.propensity import Propensities
from engine.state import CustomerState, new_state
from journeyman.v1 import journeyman_pb2 as pb
from server.core.metrics import BATCHES, CONFLICTS, KERNEL_SECONDS, ROUND_EVENTS
from server.decisions.active import ActiveRules, decode_or_new
from server.decisions.journey_stats import JourneyStats
from server.decisions.learned_rates import LearnedRates
from server.decisions.outbox import event_timer_write
from server.decisions.retry import RetryPolicy
from server.decisions.unstored import Degraded
from server.protocol.convert import DecideInput, decision_to_pb
from server.protocol.dedupe import kept_decision, replayed_or_refused
from server.protocol.errors import EventIdReused
from server.store.capture import event_line
from server.store.errors import StoreRefused, StoreUnavailable
from server.store.redis_store import CommitOutcome, Loaded, Store, ToCommit, ToLoad

log = logging.getLogger(__name__)

# What one event is answered with: its decision (stored, duplicate or degraded), or the error it
# met (Busy, Conflicted, EventIdReused).
Outcome = pb.Decision | JourneymanError

# Events of a large batch stored together before the next part is decided: when the caller's
# deadline comes, what was stored is answered so, and a caller who sends the rest again makes
# progress instead of starting over.
EVENTS_PER_PART = 500
# With a deadline, a part is also no larger than what this share of the caller's time left
# decides at the rate measured on earlier parts: on a busy or slow host a part of 500 can take
# longer than a caller's whole budget, and was then never stored however often it was sent.
# Never fewer than MIN_EVENTS_PER_PART: a part's round trips cost the same whatever its size.
PART_SHARE_OF_TIME_LEFT = 0.25
MIN_EVENTS_PER_PART = 16
# The rate is measured on parts of at least this many events (a small part's round trips
# would read as a high cost per event), and follows the latest parts (this weight each).
MEASURED_FROM_EVENTS = 64
RATE_WEIGHT = 0.3
# Decisions made between two turns of the event loop: short enough that the replies of other
# calls (and the timers of their Redis budgets) wait no longer than this for a large batch.
CPU_SLICE_S = 0.005
REFUSAL_LOG_INTERVAL_S = 10.0
# Lanes of one new event each below which a round decides them one by one with `decide()`:
# the batched kernel's fixed cost (its arrays, the customers' rows) is more than it saves on a
# few (measured in process: rounds of 8 cost 2-7 % more an event, of 16 13 % less).
TOGETHER_AT_LEAST = 16


@dataclass(slots=True)
class _Decided:
    """One customer's events decided from a loaded state, before the commit."""

    state: CustomerState
    commits: list[tuple[str, bytes]] = field(default_factory=list)  # (event id, kept decision)
    captured: list[str] = field(default_factory=list)  # the committed events, when capturing
    # (request index, answer, the engine's decision, the event's touchpoint): the decision's
    # exposures and journey outcomes are for statistics only, not in the answer
    answers: list[tuple[int, pb.Decision, Decision, str]] = field(default_factory=list)
    # Events repeated within the batch: (request index, what the first is stored with).
    repeats: list[tuple[int, bytes]] = field(default_factory=list)


class DecisionRound:
    """Runs batches of events through the store and the engine (see the module)."""

    def __init__(
        self, store: Store, stats: JourneyStats, policy: RetryPolicy, learned_rates: LearnedRates
    ) -> None:
        self._store = store
        self._stats = stats
        self._learned_rates = learned_rates
        self._policy = policy
        self._refusal_said_at = -math.inf
        # The time a part's events took to decide (the event loop let through every CPU_SLICE_S,
        # so other calls' work counts too), per event, measured (see above); its round trips to
        # Redis are left out: they cost the same whatever the part's size.
        self._s_per_event: float | None = None

    async def decide(
        self,
        requests: Sequence[DecideInput],
        active: ActiveRules,
        outcomes: dict[int, Outcome],
        wanted: Callable[[int], bool],
        *,
        deadline: float | None = None,
    ) -> Degraded | None:
        """Decide and store `requests`, filling `outcomes`; returns why Redis failed (the
        events left without an outcome were not stored), None if it did not. An event whose
        caller stopped waiting (`wanted(index)` false) is not written, nor are that customer's
        later events in the batch. `deadline` (`time.monotonic()`): when the caller stops
        waiting, which the parts of a large batch are sized by (`part_events`)."""
        lanes: dict[tuple[str, bool], list[int]] = {}
        for index, request in enumerate(requests):
            lanes.setdefault((request.event.customer_id, request.anonymous), []).append(index)
        if len(lanes) == 1:  # one customer (a lone call): one part, nothing to size
            return await self._store_part(requests, list(lanes.values()), active, outcomes, wanted)
        in_order = list(lanes.values())
        first = 0
        while first < len(in_order):
            left_s = None if deadline is None else deadline - time.monotonic()
            end = _part_end(in_order, first, self.part_events(left_s))
            part, first = in_order[first:end], end
            failure = await self._store_part(requests, part, active, outcomes, wanted)
            if failure is not None:
                return failure
        return None

    def part_events(self, left_s: float | None) -> int:
        """How many events the next part of a large batch holds when its caller has `left_s`
        (None: no deadline): EVENTS_PER_PART, or fewer when PART_SHARE_OF_TIME_LEFT of the time
        left decides fewer at the rate measured so far; never fewer than MIN_EVENTS_PER_PART."""
        if left_s is None or self._s_per_event is None:
            return EVENTS_PER_PART
        fit = int(max(0.0, left_s) * PART_SHARE_OF_TIME_LEFT / self._s_per_event)
        return max(MIN_EVENTS_PER_PART, min(EVENTS_PER_PART, fit))

    def _measured(self, s_per_event: float) -> None:
        if self._s_per_event is None:
            self._s_per_event = s_per_event
        else:
            self._s_per_event += RATE_WEIGHT * (s_per_event - self._s_per_event)

    async def _store_part(
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
        BATCHES.observe(ROUND_EVENTS, sum(map(len, lanes)))
        for attempt in self._policy.attempts():
            await self._policy.pause(attempt)
            pending = [[i for i in lane if i not in outcomes] for lane in lanes]
            try:
                loaded = await self._store.load_many(
                    [_to_load(requests, lane) for lane in pending], from_cache=True
                )
                decided, commits = await self._decide_in_slices(
                    requests, pending, loaded, active, outcomes, wanted
                )
                results = iter(await self._store.commit_many(commits, layouts=active.layouts))
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
                    # CONFLICT: another write landed first (a retry of one of these events,
                    # perhaps: the next round finds it in the ring and replays it).
                    CONFLICTS.inc()
                    lanes.append(lane)
                    continue
                self._answer_stored(requests, done, outcomes, is_new=one.state is None)
            if not lanes:
                return None
        for lane in lanes:
            for index in lane:
                outcomes.setdefault(index, self._policy.exhausted("customer"))
        return None

    async def _decide_in_slices(
        self,
        requests: Sequence[DecideInput],
        pending: list[list[int]],
        loaded: list[Loaded],
        active: ActiveRules,
        outcomes: dict[int, Outcome],
        wanted: Callable[[int], bool],
    ) -> tuple[list[_Decided], list[ToCommit]]:
        """Each lane's events decided on its loaded state, and the commits of those that made
        new decisions; the event loop is let through every CPU_SLICE_S. The lanes of one new
        event each are decided together first, in one kernel call, when there are enough of
        them (`_Together`); the others one event after the other, with `decide()`."""
        decided, commits = [], []
        started = time.perf_counter()
        together = _Together.of(requests, pending, loaded, active, wanted)
        if together is not None:
            together.decide(self._learned_rates.current(active.ruleset), self._store.dedupe_window)
        slice_ends = time.perf_counter() + CPU_SLICE_S
        for at, (lane, one) in enumerate(zip(pending, loaded, strict=True)):
            if together is not None and at in together.rows:
                done = self._answer_together(requests, together, at, active, outcomes, wanted)
            else:
                done = self._decide_loaded(requests, lane, one, active, outcomes, wanted)
            decided.append(done)
            if done.commits:
                first = requests[lane[0]]
                timer = event_timer_write(
                    self._store, active.ruleset, done.state, (a for _, a, _, _ in done.answers)
                )
                commits.append(ToCommit(
                    first.event.customer_id, first.anonymous, one.version,
                    encode_state(active.ruleset, done.state), done.commits, done.captured, timer,
                    one.ring, (active.ruleset.version, done.state),
                ))  # fmt: skip
            if time.perf_counter() >= slice_ends:
                await asyncio.sleep(0)
                slice_ends = time.perf_counter() + CPU_SLICE_S
        # Measured here, not around the part: rounds run concurrently (two DecideBatch calls),
        # and the part's round trips are not part of the rate.
        events = sum(map(len, pending))
        if events >= MEASURED_FROM_EVENTS:
            self._measured((time.perf_counter() - started) / events)
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
        for index, answer, decision, touchpoint in done.answers:
            outcomes[index] = answer
            self._stats.count_decision(
                answer, decision.exposures, is_new=is_new, outcomes=decision.journeys,
                touchpoint=touchpoint,
            )  # fmt: skip
            is_new = False
        for index, kept in done.repeats:
            replayed = _replayed_or_refused(kept, requests[index])
            assert replayed is not None  # kept by this very batch: whole
            outcomes[index] = replayed

    def _decide_loaded(
        self,
        requests: Sequence[DecideInput],
        pending: list[int],
        loaded: Loaded,
        active: ActiveRules,
        outcomes: dict[int, Outcome],
        wanted: Callable[[int], bool],
    ) -> _Decided:
        """Decide `pending` events in order from the loaded state; events already stored (or
        repeated within the batch) are answered with their original decision at once."""
        try:
            decided = _Decided(_state(loaded, active))
        except StateFromNewerServer as error:
            # Refused, not decided as a new customer's: a commit would write over the state.
            for index in pending:
                outcomes[index] = error
            return _Decided(new_state(active.ruleset))
        propensities = self._learned_rates.current(active.ruleset)
        kept: dict[str, bytes] = {}  # event id -> what this attempt will store for it
        for index, stored in zip(pending, loaded.decisions, strict=True):
            if not wanted(index):
                break
            request = requests[index]
            event = request.event
            if stored is not None:  # already stored: answered with it now
                replayed = _replayed_or_refused(stored, request)
                outcomes[index] = replayed or self._repeat(active, decided.state, request)
                continue
            if event.event_id in kept:  # repeated in this batch: answered once it is stored
                decided.repeats.append((index, kept[event.event_id]))
                continue
            applied_at_ms = decided.state.applied_at_ms(request.timestamp_ms)
            started = time.perf_counter()
            decision, decided.state = decide(
                active.ruleset, decided.state, event, request.timestamp_ms,
                top_k=request.top_k, explain=request.explain,
                dedupe_window=self._store.dedupe_window, propensities=propensities,
            )  # fmt: skip
            BATCHES.observe(KERNEL_SECONDS, time.perf_counter() - started)
            answer = decision_to_pb(
                decision, active.tables, customer_id=event.customer_id, event_id=event.event_id,
                decided_at_ms=applied_at_ms, degraded=False,
            )  # fmt: skip
            if decision.duplicate:
                # In the state's recent event ids but not in the ring: an event kept by an
                # older journeyman (`server.store.record`); nothing changed, nothing to store.
                outcomes[index] = answer
                continue
            kept[event.event_id] = kept_decision(request.fingerprint, answer)
            decided.commits.append((event.event_id, kept[event.event_id]))
            if self._store.capture_days:
                decided.captured.append(event_line(event, request.timestamp_ms))
            decided.answers.append((index, answer, decision, event.touchpoint))
        return decided

    def _answer_together(
        self,
        requests: Sequence[DecideInput],
        together: _Together,
        at: int,
        active: ActiveRules,
        outcomes: dict[int, Outcome],
        wanted: Callable[[int], bool],
    ) -> _Decided:
        """Lane `at`'s one event, decided in `together`'s kernel call: answered as
        `_decide_loaded` answers it (nothing is written if its caller left meanwhile)."""
        index, before = together.lane_event(at)
        decided = _Decided(before)
        if not wanted(index):
            return decided
        request = requests[index]
        event = request.event
        started = time.perf_counter()
        decision, decided.state = together.decision(at, event)
        BATCHES.observe(KERNEL_SECONDS, time.perf_counter() - started + together.kernel_s_per_event)
        answer = decision_to_pb(
            decision, active.tables, customer_id=event.customer_id, event_id=event.event_id,
            decided_at_ms=before.applied_at_ms(request.timestamp_ms), degraded=False,
        )  # fmt: skip
        if decision.duplicate:  # as in `_decide_loaded`: nothing changed, nothing to store
            outcomes[index] = answer
            return decided
        kept = kept_decision(request.fingerprint, answer)
        decided.commits.append((event.event_id, kept))
        if self._store.capture_days:
            decided.captured.append(event_line(event, request.timestamp_ms))
        decided.answers.append((index, answer, decision, event.touchpoint))
        return decided

    @staticmethod
    def _repeat(active: ActiveRules, state: CustomerState, request: DecideInput) -> pb.Decision:
        """A repeat of an event whose decision is no longer kept: `duplicate`, no actions."""
        event = request.event
        return decision_to_pb(
            duplicate_decision(active.ruleset, state), active.tables,
            customer_id=event.customer_id, event_id=event.event_id,
            decided_at_ms=state.applied_at_ms(request.timestamp_ms), degraded=False,
        )  # fmt: skip

    def _say_refused(self, error: StoreRefused) -> None:
        """Log why Redis refuses us (an ACL without a command, a changed password) at most
        every REFUSAL_LOG_INTERVAL_S: it does not fix itself, but must not flood the log."""
        now = time.monotonic()
        if now - self._refusal_said_at >= REFUSAL_LOG_INTERVAL_S:
            self._refusal_said_at = now
            log.error("answering degraded: %s", error)


class _Together:
    """The lanes of a round that are one new event each (not stored yet, its caller waiting,
    no explanation asked, the round's most common `top_k`), decided in one call of the batched
    kernel (`engine.many.decide_many`), whose answer for an event is `decide()`'s
    (`ManyDecisions.decided_as_decide`; the property tests hold them equal). What it saves is
    the engine's per-event call: measured in process, over 5,000 customers, an event's whole
    decision costs 13 % less CPU in DecideBatch calls of 200 (157 -> 136 us), 20 % less in
    rounds of 32 and 13 % in rounds of 16; below TOGETHER_AT_LEAST, the kernel's fixed cost is
    more than it saves."""

    def __init__(
        self,
        ruleset: Ruleset,
        lanes: dict[int, tuple[int, CustomerState]],
        requests: Sequence[DecideInput],
        top_k: int | None,
    ) -> None:
        self._ruleset = ruleset
        self._lanes = lanes  # lane position -> (request index, state before its event)
        self._requests = requests
        self._top_k = top_k
        self.rows = {at: row for row, at in enumerate(lanes)}  # lane position -> kernel row
        self._many: ManyDecisions | None = None
        self.kernel_s_per_event = 0.0

    @classmethod
    def of(
        cls,
        requests: Sequence[DecideInput],
        pending: list[list[int]],
        loaded: list[Loaded],
        active: ActiveRules,
        wanted: Callable[[int], bool],
    ) -> _Together | None:
        """The lanes to decide together, None when they are fewer than TOGETHER_AT_LEAST."""
        alone = [
            at for at, (lane, one) in enumerate(zip(pending, loaded, strict=True))
            if len(lane) == 1 and one.decisions[0] is None and wanted(lane[0])
            and not requests[lane[0]].explain
        ]  # fmt: skip
        if len(alone) < TOGETHER_AT_LEAST:
            return None
        top_k = Counter(requests[pending[at][0]].top_k for at in alone).most_common(1)[0][0]
        # The kernel knows a customer by id alone: an anonymous visitor's id that is also a
        # known customer's (two lanes) goes one by one.
        ids = Counter(requests[pending[at][0]].event.customer_id for at in alone)
        lanes: dict[int, tuple[int, CustomerState]] = {}
        for at in alone:
            request = requests[pending[at][0]]
            if request.top_k != top_k or ids[request.event.customer_id] != 1:
                continue
            try:
                lanes[at] = (pending[at][0], _state(loaded[at], active))
            except StateFromNewerServer:
                continue  # refused one by one (`_decide_loaded`)
        if len(lanes) < TOGETHER_AT_LEAST:
            return None
        return cls(active.ruleset, lanes, requests, top_k)

    def decide(self, propensities: Propensities | None, dedupe_window: int) -> None:
        """Run the kernel over every lane's event."""
        started = time.perf_counter()
        requests = [self._requests[index] for index, _ in self._lanes.values()]
        self._many = decide_many(
            self._ruleset, [r.event for r in requests], [r.timestamp_ms for r in requests],
            {r.event.customer_id: before for r, (_, before) in
             zip(requests, self._lanes.values(), strict=True)},
            top_k=self._top_k, dedupe_window=dedupe_window, propensities=propensities,
        )  # fmt: skip
        self.kernel_s_per_event = (time.perf_counter() - started) / len(requests)

    def lane_event(self, at: int) -> tuple[int, CustomerState]:
        """Lane `at`'s request index and the state before its event."""
        return self._lanes[at]

    def decision(self, at: int, event: Event) -> tuple[Decision, CustomerState]:
        """Lane `at`'s decision and the customer's state after it, as `decide()` gives them."""
        assert self._many is not None, "decide() first"
        row, (_, before) = self.rows[at], self._lanes[at]
        return self._many.decided_as_decide(row, before, event)


def decide_degraded(request: DecideInput, active: ActiveRules) -> pb.Decision:
    """From the rules alone, as for a new customer; nothing is written."""
    decision, _ = decide(
        active.ruleset, new_state(active.ruleset), request.event, request.timestamp_ms,
        top_k=request.top_k, explain=request.explain,
    )  # fmt: skip
    return decision_to_pb(
        decision, active.tables, customer_id=request.event.customer_id,
        event_id=request.event.event_id, decided_at_ms=request.timestamp_ms, degraded=True,
    )  # fmt: skip


def _state(loaded: Loaded, active: ActiveRules) -> CustomerState:
    """The loaded state, decoded; from the state cache, as this process committed it under the
    same ruleset (by its version, a content hash: the cache holds no ruleset alive), it needs
    no decoding (a state and its encoding decide alike: the property tests run both)."""
    if loaded.decoded is not None and loaded.decoded[0] == active.ruleset.version:
        return cast(CustomerState, loaded.decoded[1])
    return decode_or_new(active.ruleset, loaded.state)


def _part_end(lanes: list[list[int]], first: int, events: int) -> int:
    """Where the part of about `events` events that starts at lane `first` ends (a lane is
    never split: a part holds at least one)."""
    size = 0
    for end in range(first, len(lanes)):
        size += len(lanes[end])
        if size >= events:
            return end + 1
    return len(lanes)


def _to_load(requests: Sequence[DecideInput], lane: list[int]) -> ToLoad:
    first = requests[lane[0]]
    event_ids = [requests[i].event.event_id for i in lane]
    return ToLoad(first.event.customer_id, first.anonymous, event_ids)


def _replayed_or_refused(kept: bytes, request: DecideInput) -> pb.Decision | EventIdReused | None:
    event = request.event
    return replayed_or_refused(kept, request.fingerprint, event.customer_id, event.event_id)
