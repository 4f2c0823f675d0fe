"""The Redis store on one Redis and on a Redis Cluster, the same cases on each: load, CAS commit,
the decision ring, TTL, forget and take, scripts by SHA, concurrent updates, the state cache,
the layout before the ring moved into the state, stats.

What only a cluster shows (where keys and scripts land, a pool per node, MASTERDOWN) is in
tests/cluster/test_store_on_cluster.py; how an unreachable Redis surfaces, in
test_store_errors.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import Counter

import pytest
import redis.exceptions as redis_errors
from redis.crc import key_slot

import server.store.redis_store
from server.core.config import Settings
from server.store.connection import RedisClient
from server.store.keys import STATE_BLOB_FIELD
from server.store.record import decode_record
from server.store.redis_store import (
    STATS_CALLS_PER_ROUND_TRIP,
    STATS_FIELDS_PER_CALL,
    CommitOutcome,
    Forgotten,
    Loaded,
    StageChange,
    Store,
    ToLoad,
)
from tests.conftest import ON_EACH_REDIS, STATE_TTL_S, MakeStore

pytestmark = [pytest.mark.service, ON_EACH_REDIS]

CUSTOMER = "cust-42@example.com"


async def commit_event(store: Store, version: int, event_id: str, customer: str = CUSTOMER) -> int:
    """Commit `state-<event_id>` with decision `decision-<event_id>` over the customer's state
    at `version`, keeping its decision ring, as the service does; return the new version."""
    loaded = await store.load(customer_id=customer)
    assert loaded.version == version
    result = await store.commit(
        customer_id=customer,
        expected_version=version,
        state=f"state-{event_id}".encode(),
        events=[(event_id, f"decision-{event_id}".encode())],
        ring=loaded.ring,
    )
    assert result.outcome is CommitOutcome.COMMITTED
    return result.version


def read(loaded: Loaded) -> tuple[bytes | None, int, list[bytes | None]]:
    """What a load says about the asked event ids (its ring is what the next commit keeps)."""
    return loaded.state, loaded.version, loaded.decisions


async def _keys_under(client: RedisClient, prefix: str) -> set[str]:
    """Every key under `prefix` (on every master of a cluster)."""
    return {key.decode() async for key in client.scan_iter(match=f"{prefix}*")}


# --- load and commit ----------------------------------------------------------------------------


async def test_a_new_customer_loads_as_empty_version_zero(store: Store) -> None:
    assert await store.load(customer_id=CUSTOMER, event_ids=["e1"]) == Loaded(None, 0, [None])
    assert await store.load(customer_id=CUSTOMER) == Loaded(None, 0, [])


async def test_commit_then_load_returns_the_state_and_the_decision_of_a_seen_event(
    store: Store,
) -> None:
    first = await commit_event(store, 0, "e1")
    loaded = await store.load(customer_id=CUSTOMER, event_ids=["e1", "e2"])
    assert read(loaded) == (b"state-e1", first, [b"decision-e1", None])
    second = await commit_event(store, first, "e2")
    assert second not in (0, first)
    loaded = await store.load(customer_id=CUSTOMER, event_ids=["e2", "e1"])
    assert read(loaded) == (b"state-e2", second, [b"decision-e2", b"decision-e1"])


async def test_commit_without_events_writes_state_only_and_keeps_the_ring_it_is_given(
    store: Store,
) -> None:
    version = await commit_event(store, 0, "e1")
    loaded = await store.load(customer_id=CUSTOMER)
    result = await store.commit(
        customer_id=CUSTOMER, expected_version=version, state=b"s", ring=loaded.ring
    )
    assert result.outcome is CommitOutcome.COMMITTED
    loaded = await store.load(customer_id=CUSTOMER, event_ids=["e1", "anything"])
    assert read(loaded) == (b"s", result.version, [b"decision-e1", None])


async def test_a_stale_version_conflicts_and_writes_nothing(store: Store) -> None:
    version = await commit_event(store, 0, "e1")
    result = await store.commit(
        customer_id=CUSTOMER, expected_version=0, state=b"stale", events=[("e2", b"decision-e2")]
    )
    # The refusal says what the state and its decisions are now, so a retry needs no load:
    # there it finds whether its event is among them (a retry of it that landed first).
    assert (result.outcome, result.version, result.state) == (
        CommitOutcome.CONFLICT, version, b"state-e1",
    )  # fmt: skip
    assert result.ring.find("e1") == b"decision-e1"
    loaded = await store.load(customer_id=CUSTOMER, event_ids=["e2"])
    assert read(loaded) == (b"state-e1", version, [None])


async def test_the_last_16_events_are_kept_in_the_state_itself_8_with_their_decision(
    store: Store, raw_client: RedisClient
) -> None:
    version = 0
    for index in range(20):
        version = await commit_event(store, version, f"e{index:02d}")
    loaded = await store.load(customer_id=CUSTOMER, event_ids=[f"e{i:02d}" for i in range(20)])
    fingerprint = b"decision"  # what commit_event keeps starts with 8 bytes of its own
    assert loaded.decisions == (
        [None] * 4 + [fingerprint] * 8 + [f"decision-e{i}".encode() for i in range(12, 20)]
    )
    assert len(loaded.ring.entries) == 16
    keys = store.keys.customer(CUSTOMER)
    assert await raw_client.exists(keys.decisions) == 0  # one key per customer
    blob = await raw_client.hget(keys.state, STATE_BLOB_FIELD)
    assert decode_record(blob)[1] == loaded.ring
    # Beyond the window an event id is new again: the bound is the documented price of memory.
    assert await commit_event(store, version, "e00") not in (0, version)


async def test_a_commit_not_given_the_ring_forgets_the_decisions(store: Store) -> None:
    version = await commit_event(store, 0, "e1")
    result = await store.commit(customer_id=CUSTOMER, expected_version=version, state=b"s")
    loaded = await store.load(customer_id=CUSTOMER, event_ids=["e1"])
    assert read(loaded) == (b"s", result.version, [None])


async def test_a_smaller_ring_evicts_sooner(
    make_store: MakeStore, store_settings: Settings
) -> None:
    store = make_store(store_settings.with_overrides(dedupe_window=3, decisions_kept=1))
    version = 0
    for event_id in ("a", "b", "c", "d"):
        version = await commit_event(store, version, event_id)
    loaded = await store.load(customer_id=CUSTOMER, event_ids=["a", "b", "c", "d"])
    assert loaded.decisions == [None, b"decision", b"decision", b"decision-d"]


async def test_every_write_sets_the_ttl_of_every_key_and_refusals_do_not(
    store: Store, raw_client: RedisClient
) -> None:
    state_key = store.keys.customer(CUSTOMER).state
    version = await commit_event(store, 0, "e1")
    assert 0 < await raw_client.ttl(state_key) <= STATE_TTL_S
    await raw_client.expire(state_key, 5)
    await store.commit(  # CONFLICT
        customer_id=CUSTOMER, expected_version=0, state=b"stale", events=[("e2", b"d")]
    )
    assert await raw_client.ttl(state_key) == 5
    await store.commit(customer_id=CUSTOMER, expected_version=version, state=b"no event")
    assert await raw_client.ttl(state_key) > STATE_TTL_S - 5


async def test_forget_deletes_every_key_of_that_customer_only(
    store: Store, raw_client: RedisClient, key_prefix: str
) -> None:
    await commit_event(store, 0, "e1")
    await commit_event(store, 0, "e1", customer="someone-else")
    await store.commit(
        customer_id=CUSTOMER, expected_version=0, state=b"anon", events=[("e1", b"d")],
        anonymous=True,
    )  # fmt: skip
    assert len(await _keys_under(raw_client, key_prefix)) == 3

    assert await store.forget(customer_id=CUSTOMER) == Forgotten(1, b"state-e1")
    assert await store.load(customer_id=CUSTOMER, event_ids=["e1"]) == Loaded(None, 0, [None])
    assert await store.forget(customer_id=CUSTOMER) == Forgotten(0, None)
    assert await store.forget(customer_id=CUSTOMER, anonymous=True) == Forgotten(1, b"anon")
    remaining = await _keys_under(raw_client, key_prefix)
    assert remaining == {store.keys.customer("someone-else").state}


async def test_anonymous_visitors_are_kept_apart_from_customers(store: Store) -> None:
    result = await store.commit(
        customer_id="v1", expected_version=0, state=b"anonymous", anonymous=True
    )
    assert await store.load(customer_id="v1") == Loaded(None, 0, [])
    loaded = await store.load(customer_id="v1", anonymous=True)
    assert loaded == Loaded(b"anonymous", result.version, [])


async def test_take_returns_the_state_and_deletes_the_customer_in_one_step(store: Store) -> None:
    versions = [0]
    for event_id in ("e1", "e2"):
        result = await store.commit(
            customer_id="vis", expected_version=versions[-1], state=f"state-{event_id}".encode(),
            events=[(event_id, f"decision-{event_id}".encode())], anonymous=True,
        )  # fmt: skip
        versions.append(result.version)
    await store.commit(customer_id="vis", expected_version=0, state=b"known")  # same id, known

    assert await store.take(customer_id="vis", anonymous=True) == b"state-e2"  # the latest
    loaded = await store.load(customer_id="vis", event_ids=["e2"], anonymous=True)
    assert loaded == Loaded(None, 0, [None])  # the state and its decisions are gone
    assert await store.take(customer_id="vis", anonymous=True) is None  # nothing left to take
    assert (await store.load(customer_id="vis")).state == b"known"  # another customer's keys


async def test_all_keys_of_a_customer_share_one_cluster_slot(
    store: Store, raw_client: RedisClient, key_prefix: str
) -> None:
    await commit_event(store, 0, "e1")
    customer_keys = store.keys.customer(CUSTOMER)
    assert await _keys_under(raw_client, key_prefix) == {customer_keys.state}
    keys = {*customer_keys.all(), customer_keys.captured}  # every key it may hold
    tag = f"c:{CUSTOMER}"
    assert all(f"{key_prefix}{{{tag}}}:" in key for key in keys)
    assert {key_slot(key.encode()) for key in keys} == {key_slot(tag.encode())}
    try:
        server_slots = {
            await raw_client.execute_command("CLUSTER KEYSLOT", key)  # type: ignore[no-untyped-call]
            for key in keys
        }
    except redis_errors.ResponseError:  # one Redis without cluster support
        return
    assert server_slots == {key_slot(tag.encode())}


async def test_activity_fields_left_at_zero_are_deleted_and_other_counts_kept_at_zero(
    store: Store, raw_client: RedisClient
) -> None:
    activity, stages = store.keys.activity("retail"), store.keys.stage_counts("retail")
    await store.add_to_stats(
        Counter(
            {(activity, "awareness|1"): 2, (activity, "awareness|2"): 1, (stages, "awareness"): 1}
        )
    )
    await store.add_to_stats(Counter({(activity, "awareness|1"): -2, (stages, "awareness"): -1}))
    assert await raw_client.hgetall(activity) == {b"awareness|2": b"1"}
    assert await raw_client.hgetall(stages) == {b"awareness": b"0"}


async def test_a_flush_of_thousands_of_fields_over_many_hashes_counts_each_once(
    store: Store, raw_client: RedisClient
) -> None:
    """More fields than one script call takes and more calls than one round trip sends."""
    day = "2026-12-06"
    hashes = [store.keys.transitions(f"j{n}", day) for n in range(3 * STATS_CALLS_PER_ROUND_TRIP)]
    fields = 3 * STATS_FIELDS_PER_CALL + 1
    increments = Counter({(key, f"t{i}"): i + 1 for key in hashes[:2] for i in range(fields)})
    increments.update({(key, "t0"): 1 for key in hashes})
    await store.add_to_stats(increments)
    await store.add_to_stats(Counter({(hashes[0], "t0"): 5}))
    first = await raw_client.hgetall(hashes[0])
    assert len(first) == fields
    assert {int(first[f"t{i}".encode()]) for i in (1, fields - 1)} == {2, fields}
    assert int(first[b"t0"]) == 1 + 1 + 5
    assert all([await raw_client.hget(key, "t0") == b"1" for key in hashes[2:]])
    assert 0 < await raw_client.ttl(hashes[-1]) <= store.stats_retention_s


# --- scripts by SHA -------------------------------------------------------------------------------


async def test_commit_reloads_the_script_after_script_flush(
    store: Store, raw_client: RedisClient, redis_is_ours: bool
) -> None:
    if not redis_is_ours:
        pytest.skip("SCRIPT FLUSH would drop other clients' scripts on a shared Redis")
    version = await commit_event(store, 0, "e1")
    await raw_client.script_flush()  # on a cluster: on every master
    assert await raw_client.script_exists(store.commit_script_sha) == [False]
    await commit_event(store, version, "e2")
    assert await raw_client.script_exists(store.commit_script_sha) == [True]


def _unknown_to_redis(monkeypatch: pytest.MonkeyPatch, name: str) -> str:
    """The store's script `name` (a module constant) with a unique comment, so that no server
    has seen it and its first EVALSHA meets NOSCRIPT: the reload path on a shared Redis without
    flushing anyone's scripts. Its SHA1. On a cluster, SCRIPT EXISTS answers True only once every
    master knows it (SCRIPT LOAD goes to all)."""
    unseen = f"{getattr(server.store.redis_store, name)}\n-- test {uuid.uuid4().hex}\n"
    monkeypatch.setattr(server.store.redis_store, name, unseen)
    return hashlib.sha1(unseen.encode()).hexdigest()


async def test_commit_loads_a_script_the_server_does_not_know(
    make_store: MakeStore,
    store_settings: Settings,
    raw_client: RedisClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sha = _unknown_to_redis(monkeypatch, "COMMIT_SCRIPT")
    store = make_store(store_settings)
    assert store.commit_script_sha == sha
    assert await raw_client.script_exists(sha) == [False]
    version = await commit_event(store, 0, "e1")
    assert await raw_client.script_exists(sha) == [True]
    await commit_event(store, version, "e2")


async def test_statistics_load_their_script_when_the_server_does_not_know_it(
    make_store: MakeStore,
    store_settings: Settings,
    raw_client: RedisClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sha = _unknown_to_redis(monkeypatch, "STATS_SCRIPT")
    store = make_store(store_settings)
    stages = store.keys.stage_counts("retail")
    assert await raw_client.script_exists(sha) == [False]
    await store.add_to_stats(Counter({(stages, "awareness"): 3}))
    assert await raw_client.script_exists(sha) == [True]
    await store.add_to_stats(Counter({(stages, "awareness"): 1}))
    assert await raw_client.hget(stages, "awareness") == b"4"


# --- concurrency and the retry loop ---------------------------------------------------------------


async def _increment_until_committed(
    store: Store, event_id: str, *, from_cache: bool = False
) -> int:
    """Load, add one to the counter in the blob, commit; start again on conflict, and stop when
    the event is found kept (applied already), as the decision round does. Returns tries.
    With `from_cache`, loads as the decision round does: from the state cache when it can."""
    tries = 0
    while True:
        tries += 1
        wanted = [ToLoad(CUSTOMER, False, [event_id])]
        (loaded,) = await store.load_many(wanted, from_cache=from_cache)
        if loaded.decisions != [None]:
            return tries
        count = str(int(loaded.state or b"0") + 1).encode()
        result = await store.commit(
            customer_id=CUSTOMER, expected_version=loaded.version, state=count,
            events=[(event_id, count)], ring=loaded.ring,
        )  # fmt: skip
        if result.outcome is not CommitOutcome.CONFLICT:
            return tries


async def test_concurrent_increments_on_one_customer_lose_no_update(store: Store) -> None:
    tries = await asyncio.gather(*(_increment_until_committed(store, f"e{i}") for i in range(50)))
    loaded = await store.load(customer_id=CUSTOMER)
    assert loaded.state == b"50"
    assert sum(tries) > 50  # the loop really met conflicts


async def test_concurrent_increments_through_separate_clients_lose_no_update(
    make_store: MakeStore, store_settings: Settings
) -> None:
    stores = [make_store(store_settings) for _ in range(3)]
    await asyncio.gather(*(_increment_until_committed(stores[i % 3], f"e{i}") for i in range(50)))
    assert (await stores[1].load(customer_id=CUSTOMER)).state == b"50"


# --- the state cache ------------------------------------------------------------------------------


async def _increment_from_cache(store: Store, event_id: str) -> int:
    return await _increment_until_committed(store, event_id, from_cache=True)


async def test_a_customer_written_here_needs_no_load_for_its_next_event(
    store: Store, raw_client: RedisClient
) -> None:
    await _increment_from_cache(store, "e0")
    pipelining = store.pipelining
    if pipelining is None:
        pytest.skip("round trips are counted on the pipeline, which a cluster does not use")
    before = pipelining.pipelines_sent
    assert await _increment_from_cache(store, "e1") == 1
    assert pipelining.pipelines_sent - before == 1  # the commit alone
    blob = await raw_client.hget(store.keys.customer(CUSTOMER).state, STATE_BLOB_FIELD)
    state, ring = decode_record(blob)
    assert (state, ring.find("e0"), ring.find("e1")) == (b"2", b"1", b"2")


async def test_stale_caches_in_turn_cost_a_retry_never_an_update(
    make_store: MakeStore, store_settings: Settings
) -> None:
    """Two processes' caches, each stale every other event: every increment lands once, and
    each stale turn costs one refused commit, whose reply brings the state for the retry."""
    stores = [make_store(store_settings) for _ in range(2)]
    tries = [await _increment_from_cache(stores[i % 2], f"e{i}") for i in range(20)]
    assert (await stores[0].load(customer_id=CUSTOMER)).state == b"20"
    assert tries == [1, 1] + [2] * 18


async def test_caches_stale_in_turn_are_not_trusted_and_one_alone_trusts_its_own_again(
    make_store: MakeStore, store_settings: Settings
) -> None:
    """Two processes taking a customer's events in turn: once their caches prove stale often
    enough, each loads the customer instead, and no commit is refused; a process alone with the
    customer again finds its cache right at every load, trusts it and needs no load."""
    stores = [make_store(store_settings) for _ in range(2)]
    tries = [await _increment_from_cache(stores[i % 2], f"e{i}") for i in range(200)]
    assert (await stores[0].load(customer_id=CUSTOMER)).state == b"200"
    assert not stores[0].states.trusted and not stores[1].states.trusted
    assert tries[2:12] == [2] * 10  # trusted at first: stale every turn
    assert tries[-100:] == [1] * 100  # then loaded: never refused
    alone = stores[0]
    for n in range(100):
        if alone.states.trusted:
            break
        assert await _increment_from_cache(alone, f"alone-{n}") == 1
    assert alone.states.trusted
    pipelining = alone.pipelining
    if pipelining is not None:  # a cluster sends no pipelines
        before = pipelining.pipelines_sent
        assert await _increment_from_cache(alone, "trusted") == 1
        assert pipelining.pipelines_sent - before == 1  # the commit alone: no load


async def test_a_repeat_is_found_in_the_cached_ring_without_a_round_trip(store: Store) -> None:
    await _increment_from_cache(store, "e0")
    (cached,) = await store.load_many([ToLoad(CUSTOMER, False, ["e0", "e1"])], from_cache=True)
    assert cached.decisions == [b"1", None]
    assert (store.states.misses, store.states.hits) == (1, 1)  # the first load, then this one


async def test_a_repeat_applied_through_another_process_is_found_after_one_refusal(
    make_store: MakeStore, store_settings: Settings
) -> None:
    """This process's cache predates the event's first landing elsewhere: its commit is
    refused, and the refusal's state brings the ring that holds the event."""
    here, elsewhere = make_store(store_settings), make_store(store_settings)
    assert await _increment_from_cache(here, "e0") == 1
    assert await _increment_from_cache(elsewhere, "e1") == 1
    assert await _increment_from_cache(here, "e1") == 2  # refused once, then found kept
    assert (await here.load(customer_id=CUSTOMER)).state == b"2"


async def test_a_customer_deleted_and_written_again_never_matches_a_cached_version(
    make_store: MakeStore, store_settings: Settings
) -> None:
    """The ABA of a cache: this process holds the customer at its second write; elsewhere the
    customer is erased and written twice again (counted versions would be back at 2, with
    other content). The cached version must be refused, not overwrite the other state."""
    here, elsewhere = make_store(store_settings), make_store(store_settings)
    await _increment_from_cache(here, "e0")
    await _increment_from_cache(here, "e1")
    await elsewhere.forget(customer_id=CUSTOMER)
    version = 0
    for content in (b"other", b"other again"):
        version = (
            await elsewhere.commit(customer_id=CUSTOMER, expected_version=version, state=content)
        ).version
    (cached,) = await here.load_many([ToLoad(CUSTOMER, False, ["e2"])], from_cache=True)
    assert cached.state == b"2"  # stale: as this process last wrote it
    result = await here.commit(
        customer_id=CUSTOMER, expected_version=cached.version, state=b"3", events=[("e2", b"3")]
    )
    assert result.outcome is CommitOutcome.CONFLICT
    assert result.state == b"other again"  # the other process's second write, unharmed


# --- stats ----------------------------------------------------------------------------------------


async def test_bump_stats_counts_customers_per_stage_and_transitions_per_day(store: Store) -> None:
    day = "2024-05-01"
    await store.bump_stats(
        [
            StageChange("retail", None, "awareness", None),
            StageChange("retail", None, "awareness", None),
            StageChange("support", None, "idle", None),
        ],
        day,
    )
    await store.bump_stats([StageChange("retail", "awareness", "consideration", "browse")], day)
    await store.bump_stats([StageChange("retail", "consideration", "consideration", "loop")], day)
    await store.bump_stats([], day)
    assert await store.stage_counts("retail") == {"awareness": 1, "consideration": 1}
    assert await store.stage_counts("support") == {"idle": 1}
    assert await store.transition_counts("retail", day) == {"browse": 1, "loop": 1}
    assert await store.transition_counts("retail", "2024-05-02") == {}


async def test_per_day_statistics_expire_after_the_retention_and_stage_counts_stay(
    make_store: MakeStore, store_settings: Settings, raw_client: RedisClient
) -> None:
    store = make_store(store_settings.with_overrides(stats_retention_days=7))
    move = StageChange("retail", "awareness", "consideration", "started_comparing")
    await store.bump_stats([move], "2026-12-05")
    day_key = store.keys.transitions("retail", "2026-12-05")
    assert await store.transition_counts("retail", "2026-12-05") == {"started_comparing": 1}
    assert 0 < await raw_client.ttl(day_key) <= 7 * 86_400
    assert await raw_client.ttl(store.keys.stage_counts("retail")) == -1  # no expiry
