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
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from server.core.metrics import BATCHES, STATE_CACHE_LOOKUPS
from server.store.record import Ring

# What a writer made of a state's bytes, opaque here: (what it was decoded under, the result),
# e.g. (ruleset version, CustomerState), for the next event here not to decode the bytes again.
Decoded = tuple[str, object]

_HIT, _MISS = STATE_CACHE_LOOKUPS.labels(result="hit"), STATE_CACHE_LOOKUPS.labels(result="miss")


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
