"""The state cache keeps the most recently used customers, up to its capacity."""

from __future__ import annotations

from server.store.record import Ring
from server.store.state_cache import CachedState, StateCache

RING = Ring.of([(b"k" * 8, b"kept")])


def test_the_least_recently_used_customer_goes_first() -> None:
    cache = StateCache(capacity=2)
    cache.put("a", b"A", 1, RING)
    cache.put("b", b"B", 2, RING)
    assert cache.get("a") == CachedState(b"A", 1, RING)  # a is now the most recent
    cache.put("c", b"C", 3, RING)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (
        CachedState(b"A", 1, RING), None, CachedState(b"C", 3, RING),
    )  # fmt: skip
    assert len(cache) == 2
    assert (cache.hits, cache.misses) == (3, 1)


def test_a_new_version_replaces_the_old_and_drop_forgets() -> None:
    cache = StateCache(capacity=4)
    cache.put("a", b"A", 1, RING)
    cache.put("a", None, 0, RING)  # the customer is gone from Redis (a refused commit said so)
    assert cache.get("a") == CachedState(None, 0, RING)
    cache.drop("a")
    cache.drop("never there")
    assert cache.get("a") is None


def test_capacity_zero_keeps_nothing() -> None:
    cache = StateCache(capacity=0)
    cache.put("a", b"A", 1, RING)
    assert cache.get("a") is None and len(cache) == 0
