"""The state cache keeps the most recently used customers, up to its capacity, and is trusted
while its entries are seldom found stale."""

from __future__ import annotations

from server.store.record import Ring
from server.store.state_cache import DISTRUST_ABOVE, TRUST_BELOW, CachedState, StateCache

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


def _judged_until(cache: StateCache, stale: bool, trusted: bool) -> int:
    """Judgements of `stale` until the cache's trust is `trusted`; how many it took."""
    for n in range(1, 1_000):
        cache.judge(stale=stale)
        if cache.trusted is trusted:
            return n
    raise AssertionError(f"still trusted={cache.trusted} after 1,000 judgements")


def test_trust_follows_how_often_entries_are_stale_with_a_gap_between() -> None:
    cache = StateCache(capacity=4)
    for _ in range(500):  # stale a tenth of the time: trusted all along
        for stale in [True] + [False] * 9:
            cache.judge(stale=stale)
            assert cache.trusted
    assert abs(cache.stale_share - 0.1) < 0.08
    _judged_until(cache, stale=True, trusted=False)
    assert cache.stale_share > DISTRUST_ABOVE
    # Between the two thresholds the cache keeps the trust it had: no flapping.
    while cache.stale_share >= TRUST_BELOW + 0.02:
        cache.judge(stale=False)
        assert not cache.trusted
    _judged_until(cache, stale=False, trusted=True)
    assert cache.stale_share < TRUST_BELOW
    for _ in range(3):
        cache.judge(stale=True)
    assert cache.trusted


def test_version_of_is_not_a_lookup() -> None:
    cache = StateCache(capacity=2)
    cache.put("a", b"A", 7, RING)
    assert (cache.version_of("a"), cache.version_of("b")) == (7, None)
    assert (cache.hits, cache.misses) == (0, 0)
