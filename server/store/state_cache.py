"""The customers' states this process wrote or read last, so a customer's next event needs one
Redis round trip (the commit) instead of two (load, then commit).

A cached state is only ever the `expected_version` of a commit, and commit.lua compares it with
the version in Redis: a stale entry (another process wrote since, the key expired or was
deleted, Redis lost its last writes) is refused there, and the refusal carries the current state
and version, which replace the entry for the retry. Versions are random tokens, never counters
(commit.lua), so an entry cannot match a different state that happens to share its number: a
stale cache costs one more round trip, never a wrong answer.

Entries hold what a load returns (the encoded state, its version and the decision ring), least
recently used first out past `capacity`. A repeated event is found in the cached ring; one
repeated through another process makes the cached version stale, so the commit is refused and
its refusal brings the ring that holds it.

The cache is trusted (read instead of Redis) while it is seldom stale. Where a customer's events
reach several processes in turn (`--workers`, or replicas behind a balancer that does not keep a
customer on one), it is stale about as often as their events change process, and each stale
entry costs a decision made twice and a second commit; a load costs one more command in a round
trip the round makes anyway. So how often it is stale is measured all along (`judge`): a commit
refused at the version the cache holds counts stale, a commit that lands fresh; while not
trusted, every load whose customer is cached counts, stale if Redis has another version. Past
DISTRUST_ABOVE the store loads every customer (a cached state at the loaded version still spares
its decoding), below TRUST_BELOW it trusts the cache again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from server.core.metrics import BATCHES, STATE_CACHE_LOOKUPS, STATE_CACHE_TRUSTED
from server.store.record import Ring

# What a writer made of a state's bytes, opaque here: (what it was decoded under, the result),
# e.g. (ruleset version, CustomerState), for the next event here not to decode the bytes again.
Decoded = tuple[str, object]

_HIT, _MISS = STATE_CACHE_LOOKUPS.labels(result="hit"), STATE_CACHE_LOOKUPS.labels(result="miss")

# The share of stale entries (a moving average over about 1 / STALE_WEIGHT judgements) past which
# the cache is not trusted, and below which it is again (a gap, so that trust does not flap).
# Measured with `--workers 2` at concurrency 64, each worker taking calls of every customer, in
# turns with the cache always trusted (3 runs each): 0.51-0.66 refused commits a call became
# 0.01-0.02, and 8 % more calls were answered (2,488 -> 2,698 a second); one process alone
# stayed trusted, unchanged.
DISTRUST_ABOVE = 0.25
TRUST_BELOW = 0.15
STALE_WEIGHT = 0.02


@dataclass(frozen=True, slots=True)
class CachedState:
    state: bytes | None  # None: no state in Redis (a new customer)
    version: int
    ring: Ring
    decoded: Decoded | None = None  # `ToCommit.decoded` of the commit that wrote `state`


class StateCache:
    """Least-recently-used (encoded state, version, ring) by state key; capacity 0 keeps
    nothing."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, CachedState] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.stale_share = 0.0  # moving average of the judgements (`judge`)
        self.trusted = True
        STATE_CACHE_TRUSTED.set(1 if capacity > 0 else 0)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> CachedState | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            BATCHES.inc(_MISS)
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        BATCHES.inc(_HIT)
        return entry

    def version_of(self, key: str) -> int | None:
        """The version cached for `key`, None if none is (not a lookup: counted as neither)."""
        entry = self._entries.get(key)
        return None if entry is None else entry.version

    def judge(self, stale: bool) -> None:
        """Count one cached version found stale or fresh; trust the cache or not (see the
        module)."""
        self.stale_share += STALE_WEIGHT * (stale - self.stale_share)
        if self.trusted and self.stale_share > DISTRUST_ABOVE:
            self.trusted = False
            STATE_CACHE_TRUSTED.set(0)
        elif not self.trusted and self.stale_share < TRUST_BELOW:
            self.trusted = True
            STATE_CACHE_TRUSTED.set(1)

    def put(
        self,
        key: str,
        state: bytes | None,
        version: int,
        ring: Ring,
        decoded: Decoded | None = None,
    ) -> None:
        if self.capacity <= 0:
            return
        self._entries[key] = CachedState(state, version, ring, decoded)
        self._entries.move_to_end(key)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)
