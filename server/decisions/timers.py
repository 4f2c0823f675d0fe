"""The timer loop: every server decides the customers whose timed transition has fallen due.

Each turn (every `timer_poll_ms`, or at once while more are due) it claims about `timer_batch`
due customers over the shards of the due-time index (`server.store.timers`), loads them in one
round trip, and for each one whose state says a timer is due (`engine.timers.next_due_ms`)
decides the synthetic timer event at its due time with the same `decide()` as an event, then
commits with the same compare-and-set script, which also writes the next due time and, when a
transition fired, the decision to the outbox. It yields to the event loop every few decisions,
so that calls are not kept waiting behind a batch.

Exactly once: the due time is checked in the state (the timer slot, `engine.kernels.timers`),
and the commit compares the version. A server that dies holding claims leaves them to lapse
(`timer_lease_ms`), and another takes them over; a customer decided twice (a claim taken over
while its first server was still at work, an event re-scoring it) commits once: the other
commit meets a newer version or the timer's event id in the decision ring, and its re-decision
on the new state finds nothing due. An event arriving meanwhile wins the same way, and the
timer is re-decided on the state the event left.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from engine.codec import encode_state
from engine.decide import decide
from engine.decision import Decision
from engine.errors import StateFromNewerServer
from engine.state import CustomerState
from engine.timers import next_due_ms, timer_event
from journeyman.v1 import journeyman_pb2 as pb
from server.core.config import Settings
from server.core.tasks import stop_task
from server.decisions.active import ActiveRules, decode_or_new
from server.decisions.journey_stats import JourneyStats
from server.decisions.learned_rates import LearnedRates
from server.decisions.outbox import TIMER_KIND, moved, outbox_entry, ruleset_has_timers
from server.protocol.convert import decision_to_pb
from server.protocol.dedupe import kept_decision
from server.store.errors import StoreUnavailable
from server.store.record import FINGERPRINT_BYTES
from server.store.redis_store import CommitOutcome, Loaded, Store, TimerWrite, ToCommit, ToLoad
from server.store.timers import Claim, TimerIndex

log = logging.getLogger(__name__)

TIMERS_FIRED = Counter(
    "journeyman_timers_fired_total", "Timer decisions committed, by whether a transition fired",
    ["moved"],
)  # fmt: skip
TIMER_LATENESS = Histogram(
    "journeyman_timer_lateness_seconds",
    "From a timer's due time to its decision's commit",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
TIMER_CONFLICTS = Counter(
    "journeyman_timer_conflicts_total", "Timer commits that met a newer state and re-decided"
)
# Re-decisions of one claimed customer whose commits keep meeting newer states.
TIMER_RETRIES = 5
ERROR_PAUSE_S = 1.0
# Timers decided between two yields to the event loop, and committed per round trip: a call
# needs several turns of the event loop, each of which may wait behind one stretch of the timer
# loop's work, so the stretches are kept to about a millisecond (measured: a batch of 256
# without a yield put 18-33 ms on Decide's p99 one call at a time; 16 between yields, 16-18 ms).
DECISIONS_PER_YIELD = 4
COMMITS_PER_ROUND_TRIP = 16


@dataclass(slots=True)
class _Turn:
    """One claimed batch's way through a round: what to commit, and what to give back."""

    # claim, commit, the answer and the engine's decision (statistics need both), due time
    commits: list[tuple[Claim, ToCommit, pb.Decision, Decision, int]]
    settled: list[tuple[Claim, int | None]]


class TimerLoop:
    """Runs the timer loop of one server (see the module)."""

    def __init__(
        self,
        rules: Callable[[], ActiveRules],
        store: Store,
        stats: JourneyStats,
        learned_rates: LearnedRates,
        settings: Settings,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._rules = rules
        self._store = store
        self._stats = stats
        self._learned_rates = learned_rates
        self._index = TimerIndex(store)
        self._clock_ms = clock_ms
        self._poll_s = settings.timer_poll_ms / 1000
        self._batch = settings.timer_batch
        self._lease_ms = settings.timer_lease_ms
        self._task: asyncio.Task[None] | None = None
        self._more_due = False
        self.fired = 0

    @property
    def index(self) -> TimerIndex:
        return self._index

    def start(self) -> None:
        """Run the loop in the background until `stop`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop after the turn in progress; its claims lapse if it is cut short."""
        task, self._task = self._task, None
        await stop_task(task)

    async def _run(self) -> None:
        while True:
            try:
                await self.turn()
            except StoreUnavailable as error:
                log.warning("timer loop: Redis unavailable (%s); trying again", error)
                await asyncio.sleep(ERROR_PAUSE_S)
                continue
            if not self._more_due:  # a shard gave all it was asked for: more may be due now
                await asyncio.sleep(self._poll_s)

    async def turn(self) -> int:
        """Claim and decide what is due now, about `timer_batch` customers over all shards;
        returns how many timers were committed."""
        self._more_due = False
        active = self._rules()
        if not ruleset_has_timers(active.ruleset) or not self._store.timers_supported:
            return 0
        now_ms = self._clock_ms()
        # A turn claims one batch in all, not one per shard: what it claims must be decided
        # well within the lease, or another server would take it over and decide it again.
        per_shard = max(1, -(-self._batch // self._index.shards))
        claims = await self._index.claim_due(now_ms, now_ms + self._lease_ms, per_shard)
        by_shard: dict[int, int] = {}
        for claim in claims:
            by_shard[claim.shard] = by_shard.get(claim.shard, 0) + 1
        self._more_due = any(count >= per_shard for count in by_shard.values())
        return await self._decide_claims(claims, active) if claims else 0

    async def _decide_claims(self, claims: Sequence[Claim], active: ActiveRules) -> int:
        """Decide each claimed customer's due timer and commit it, re-deciding those whose
        commit met a newer state; every claim is given back its due time in the end."""
        fired = 0
        pending = list(claims)
        settled: list[tuple[Claim, int | None]] = []
        for _ in range(TIMER_RETRIES + 1):
            if not pending:
                break
            loaded = await self._store.load_many(
                [ToLoad(c.customer_id, c.anonymous, ()) for c in pending]
            )
            turn = _Turn([], settled)
            now_ms = self._clock_ms()
            for decided, (claim, stored) in enumerate(zip(pending, loaded, strict=True)):
                if decided and decided % DECISIONS_PER_YIELD == 0:
                    await asyncio.sleep(0)  # let the calls waiting meanwhile be answered
                try:
                    state = decode_or_new(active.ruleset, stored.state) if stored.state else None
                except StateFromNewerServer:
                    # Not settled: the claim lapses and a newer server, which can read the
                    # state, fires the timer (settling would remove or move it).
                    continue
                self._decide_one(claim, state, stored, active, now_ms, turn)
            results = []
            for start in range(0, len(turn.commits), COMMITS_PER_ROUND_TRIP):
                chunk = turn.commits[start : start + COMMITS_PER_ROUND_TRIP]
                results += await self._store.commit_many(
                    [one[1] for one in chunk], layouts=active.layouts
                )
            pending = []
            for one, result in zip(turn.commits, results, strict=True):
                claim, _, answer, decision, due_ms = one
                if result.outcome is CommitOutcome.COMMITTED:
                    fired += 1
                    self._committed(answer, decision, due_ms)
                else:  # CONFLICT: decide again on the state that won
                    TIMER_CONFLICTS.inc()
                    pending.append(claim)
        # Those still conflicting are not settled: settling with no due time removes a member
        # that no commit re-scored since the claim (a commit that writes no timer); left as
        # claimed, they are found again at the lapse.
        await self._index.settle(settled)
        self.fired += fired
        return fired

    def _decide_one(
        self,
        claim: Claim,
        state: CustomerState | None,
        stored: Loaded,
        active: ActiveRules,
        now_ms: int,
        turn: _Turn,
    ) -> None:
        ruleset = active.ruleset
        due_ms = None if state is None else next_due_ms(ruleset, state)
        if state is None or due_ms is None or due_ms > now_ms:
            turn.settled.append((claim, due_ms))  # nothing due (yet): back at its due time
            return
        event = timer_event(ruleset, state, claim.customer_id, due_ms)
        decision, after = decide(
            ruleset, state, event, due_ms, dedupe_window=self._store.dedupe_window,
            propensities=self._learned_rates.current(ruleset),
        )  # fmt: skip
        if decision.duplicate:
            turn.settled.append((claim, next_due_ms(ruleset, state)))
            return
        answer = decision_to_pb(
            decision, active.tables, customer_id=claim.customer_id, event_id=event.event_id,
            decided_at_ms=state.applied_at_ms(due_ms), degraded=False,
        )  # fmt: skip
        published = [outbox_entry(TIMER_KIND, answer)] if moved(answer) else []
        kept = kept_decision(_fingerprint(event.event_id), answer)
        commit = ToCommit(
            claim.customer_id, claim.anonymous, stored.version, encode_state(ruleset, after),
            [(event.event_id, kept)], (), TimerWrite(next_due_ms(ruleset, after), published),
            stored.ring,
        )  # fmt: skip
        turn.commits.append((claim, commit, answer, decision, due_ms))

    def _committed(self, answer: pb.Decision, decision: Decision, due_ms: int) -> None:
        self._stats.count_decision(
            answer, decision.exposures, is_new=False, outcomes=decision.journeys, touchpoint=""
        )
        TIMERS_FIRED.labels(moved=str(moved(answer)).lower()).inc()
        TIMER_LATENESS.observe(max(0, self._clock_ms() - due_ms) / 1000)


def _fingerprint(event_id: str) -> bytes:
    """What the decision ring keeps beside a timer's decision, where an event keeps the hash of
    the event as sent: a timer is only ever sent by journeyman."""
    return hashlib.blake2b(event_id.encode(), digest_size=FINGERPRINT_BYTES).digest()
