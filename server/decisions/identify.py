"""Identify: set a customer's traits and merge an anonymous visitor's journey into theirs.

The visitor's state is first taken out of Redis (read and deleted in one step, so a visitor busy
sending events cannot keep it from being taken), then merged into the customer's with a
compare-and-set. Events the visitor sends after the take start a new visitor state, which the
next Identify merges: none is lost between. If the merge fails (conflicts, Redis), the taken
state is put back. Every loop runs on the service's retry policy, and every Redis call behind
its circuit breaker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from engine.codec import encode_state
from engine.errors import StateFromNewerServer
from engine.merge import merge_states
from engine.state import CustomerState
from server.decisions.active import ActiveRules, decode_or_new
from server.decisions.breaker import CircuitBreaker
from server.decisions.journey_stats import JourneyStats
from server.decisions.outbox import event_timer_write
from server.decisions.retry import RetryPolicy
from server.store.errors import StoreUnavailable
from server.store.record import Ring
from server.store.redis_store import CommitOutcome, Store, TakenUnread

log = logging.getLogger(__name__)

Traits = Mapping[str, str | float | bool]


class Identification:
    """Runs Identify calls against the store (see the module)."""

    def __init__(
        self,
        rules: Callable[[], ActiveRules],
        store: Store,
        stats: JourneyStats,
        policy: RetryPolicy,
        breaker: CircuitBreaker,
    ) -> None:
        self._rules = rules
        self._store = store
        self._stats = stats
        self._policy = policy
        self._breaker = breaker

    async def identify(
        self, customer: str, anonymous_id: str, traits: Traits
    ) -> tuple[CustomerState, bool]:
        """The customer's state after setting `traits` and merging the visitor `anonymous_id`
        (if given and known), and whether a visitor was merged. Raises Conflicted,
        StoreUnavailable (also while the breaker is open), or StateFromNewerServer (the
        customer's or the visitor's state is a newer journeyman's: both are left as they were)."""
        if not self._breaker.allow():
            raise StoreUnavailable("Redis is failing; not tried while the circuit breaker is open")
        try:
            result = await self._identify(customer, anonymous_id, traits)
        except StoreUnavailable:
            self._breaker.failed()
            raise
        finally:
            self._breaker.settle()
        self._breaker.succeeded()
        return result

    async def _identify(
        self, customer: str, anonymous_id: str, traits: Traits
    ) -> tuple[CustomerState, bool]:
        active = self._rules()
        visitor = await self._take_visitor(anonymous_id, active) if anonymous_id else None
        try:
            state = await self._merge(customer, visitor, traits, active)
        except BaseException:
            if visitor is not None:
                await self._give_back(anonymous_id, visitor, active)
            raise
        return state, visitor is not None

    async def _merge(
        self, customer: str, visitor: CustomerState | None, traits: Traits, active: ActiveRules
    ) -> CustomerState:
        """The customer's state with `visitor` merged in and `traits` set, committed."""
        ruleset = active.ruleset
        for attempt in self._policy.attempts():
            await self._policy.pause(attempt)
            known = await self._store.load(customer_id=customer)
            before = decode_or_new(ruleset, known.state) if known.state is not None else None
            state = before or decode_or_new(ruleset, None)
            if visitor is not None:
                state = merge_states(ruleset, state, visitor)
            state = state.with_traits(traits)
            result = await self._store.commit(
                customer_id=customer,
                expected_version=known.version,
                state=encode_state(ruleset, state),
                ring=known.ring,
                layouts=active.layouts,
                # The merged state's next timer (a visitor's cart, say): the customer's entry
                # in the due-time index follows it, as after an event.
                timer=event_timer_write(self._store, ruleset, state, ()),
            )
            if result.outcome is CommitOutcome.COMMITTED:
                if visitor is not None:
                    self._stats.count_moves(ruleset, visitor, None)
                self._stats.count_moves(ruleset, before, state)
                return state
        raise self._policy.exhausted("customer")

    async def _take_visitor(self, anonymous_id: str, active: ActiveRules) -> CustomerState | None:
        """The visitor's stored state, deleted from Redis; None if there is none."""
        try:
            taken = await self._store.take_record(customer_id=anonymous_id, anonymous=True)
        except TakenUnread as unread:
            await self._put_back_unread(
                anonymous_id, unread.state, unread.ring, "Redis failed after it was taken"
            )
            raise
        if taken is None:
            return None
        state, ring = taken
        try:
            return decode_or_new(active.ruleset, state)
        except StateFromNewerServer:
            assert state is not None  # None decodes as a new visitor
            why = "a newer journeyman wrote it: upgrade every server"
            await self._put_back_unread(anonymous_id, state, ring, why)
            raise

    async def _put_back_unread(self, anonymous_id: str, taken: bytes, ring: Ring, why: str) -> None:
        """Put back, as it was, with its decision ring, a visitor state taken for Identify that
        this server did not read (`why`: said if it is lost)."""
        try:
            for attempt in self._policy.attempts():
                await self._policy.pause(attempt)
                current = await self._store.load(customer_id=anonymous_id, anonymous=True)
                if current.state is not None:
                    break  # written again meanwhile, by a server that could read it
                result = await self._store.commit(
                    customer_id=anonymous_id, expected_version=current.version, state=taken,
                    ring=ring, anonymous=True,
                )  # fmt: skip
                if result.outcome is CommitOutcome.COMMITTED:
                    return
        except StoreUnavailable:
            _say_lost(why)
            raise
        _say_lost(why)

    async def _give_back(
        self, anonymous_id: str, taken: CustomerState, active: ActiveRules
    ) -> None:
        """Put a taken visitor state back (merged with any events since) when the merge into
        the customer failed, so that a failed Identify loses nothing."""
        ruleset = active.ruleset
        try:
            for attempt in self._policy.attempts():
                await self._policy.pause(attempt)
                current = await self._store.load(customer_id=anonymous_id, anonymous=True)
                state = taken
                if current.state is not None:
                    state = merge_states(ruleset, decode_or_new(ruleset, current.state), taken)
                result = await self._store.commit(
                    customer_id=anonymous_id,
                    expected_version=current.version,
                    state=encode_state(ruleset, state),
                    ring=current.ring,
                    anonymous=True,
                    layouts=active.layouts,
                    timer=event_timer_write(self._store, ruleset, state, ()),
                )
                if result.outcome is CommitOutcome.COMMITTED:
                    return
        except StoreUnavailable:
            _say_lost("the merge into the customer failed, then Redis")
            raise
        _say_lost(
            "the merge into the customer failed, and the visitor changed under every put-back"
        )


def _say_lost(why: str) -> None:
    log.error("a visitor's state taken for Identify could not be put back; it is lost (%s)", why)
