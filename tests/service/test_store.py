"""The Redis store against a real Redis: load, CAS commit, dedupe, TTL, stats, errors."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis as sync_redis
import redis.asyncio as redis
from redis.crc import key_slot

import server.store.redis_store
from server.core.config import Settings
from server.store.errors import StoreUnavailable
from server.store.keys import (
    DEFAULT_PREFIX,
    Keyspace,
    utc_day,
    validate_customer_id,
)
from server.store.redis_store import CommitOutcome, Loaded, StageChange, Store
from tests.service.conftest import STATE_TTL_S

pytestmark = pytest.mark.service

CUSTOMER = "cust-42@example.com"


async def _commit_event(store: Store, version: int, event_id: str, customer: str = CUSTOMER) -> int:
    """Commit `state-<event_id>` with decision `decision-<event_id>`; return the new version."""
    result = await store.commit(
        customer_id=customer,
        expected_version=version,
        state=f"state-{event_id}".encode(),
        events=[(event_id, f"decision-{event_id}".encode())],
    )
    assert result.outcome is CommitOutcome.COMMITTED
    return result.version


async def _keys_under(client: redis.Redis, prefix: str) -> set[str]:
    return {key.decode() async for key in client.scan_iter(match=f"{prefix}*")}


# --- key layout (no Redis needed, but it is what the tests below rely on) ---------------------


@pytest.mark.parametrize("value", ["a", "cust-42@example.com", "crm:42", "x+y_z.1", "A" * 128])
def test_customer_ids_in_the_alphabet_are_accepted(value: str) -> None:
    assert validate_customer_id(value) is None


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("", "empty"),
        ("A" * 129, "129 characters"),
        ("a{b}", "'{'"),
        ("a b", "' '"),
        ("a\nb", "'\\n'"),
        ("café", "'é'; use only ASCII letters"),
    ],
)
def test_customer_ids_outside_the_alphabet_are_named(value: str, said: str) -> None:
    problem = validate_customer_id(value)
    assert problem is not None and said in problem


def test_keys_refuse_ids_and_prefixes_that_would_escape_the_hash_tag() -> None:
    with pytest.raises(ValueError, match="'}'"):
        Keyspace().customer("a}b")
    with pytest.raises(ValueError, match="hash tag"):
        Keyspace("jm{x}:")


def test_key_shapes() -> None:
    keys = Keyspace().customer("crm:42")
    assert keys.all() == ("jm:{c:crm:42}:state", "jm:{c:crm:42}:decisions")
    assert Keyspace().customer("v1", anonymous=True).state == "jm:{a:v1}:state"
    assert Keyspace().stage_counts("retail") == "jm:stats:stages:retail"
    assert (
        Keyspace().transitions("retail", "2024-05-01") == "jm:stats:transitions:retail:2024-05-01"
    )
    assert utc_day(1_714_521_599_999) == "2024-04-30"
    assert utc_day(1_714_521_600_000) == "2024-05-01"
    assert DEFAULT_PREFIX == "jm:"


# --- load and commit ----------------------------------------------------------------------------


async def test_a_new_customer_loads_as_empty_version_zero(store: Store) -> None:
    assert await store.load(customer_id=CUSTOMER, event_ids=["e1"]) == Loaded(
        state=None, version=0, decisions=[None]
    )
    assert await store.load(customer_id=CUSTOMER) == Loaded(state=None, version=0, decisions=[])


async def test_commit_then_load_returns_the_state_and_the_decision_of_a_seen_event(
    store: Store,
) -> None:
    assert await _commit_event(store, 0, "e1") == 1
    assert await store.load(customer_id=CUSTOMER, event_ids=["e1"]) == Loaded(
        b"state-e1", 1, [b"decision-e1"]
    )
    assert await store.load(customer_id=CUSTOMER, event_ids=["e2"]) == Loaded(
        b"state-e1", 1, [None]
    )
    assert await _commit_event(store, 1, "e2") == 2
    assert await store.load(customer_id=CUSTOMER) == Loaded(b"state-e2", 2, [])


async def test_commit_without_event_id_writes_state_only(store: Store) -> None:
    result = await store.commit(customer_id=CUSTOMER, expected_version=0, state=b"s")
    assert (result.outcome, result.version, result.decision) == (CommitOutcome.COMMITTED, 1, None)
    assert await store.load(customer_id=CUSTOMER, event_ids=["anything"]) == Loaded(b"s", 1, [None])


async def test_a_stale_version_conflicts_and_writes_nothing(store: Store) -> None:
    await _commit_event(store, 0, "e1")
    result = await store.commit(
        customer_id=CUSTOMER, expected_version=0, state=b"stale", events=[("e2", b"decision-e2")]
    )
    assert (result.outcome, result.version) == (CommitOutcome.CONFLICT, 1)
    assert await store.load(customer_id=CUSTOMER, event_ids=["e2"]) == Loaded(
        b"state-e1", 1, [None]
    )


async def test_a_duplicate_event_returns_the_original_decision_and_writes_nothing(
    store: Store,
) -> None:
    await _commit_event(store, 0, "e1")
    again = await store.commit(
        customer_id=CUSTOMER, expected_version=1, state=b"other", events=[("e1", b"other decision")]
    )
    assert (again.outcome, again.version, again.decision) == (
        CommitOutcome.DUPLICATE,
        1,
        b"decision-e1",
    )
    # The dedupe check comes before the version check: a replay with a stale version is still
    # recognised as the same event, not reported as a conflict.
    stale = await store.commit(
        customer_id=CUSTOMER, expected_version=0, state=b"other", events=[("e1", b"other decision")]
    )
    assert stale.outcome is CommitOutcome.DUPLICATE
    assert await store.load(customer_id=CUSTOMER, event_ids=["e1"]) == Loaded(
        b"state-e1", 1, [b"decision-e1"]
    )


async def test_only_the_last_16_decisions_are_kept(store: Store, redis_client: redis.Redis) -> None:
    version = 0
    for index in range(20):
        version = await _commit_event(store, version, f"e{index}")
    for index in range(4):
        assert (await store.load(customer_id=CUSTOMER, event_ids=[f"e{index}"])).decisions == [None]
    for index in range(4, 20):
        assert (await store.load(customer_id=CUSTOMER, event_ids=[f"e{index}"])).decisions == [
            f"decision-e{index}".encode()
        ]
    # 16 decisions, 16 ring slots naming them, and the count of decisions ever written.
    assert await redis_client.hlen(store.keys.customer(CUSTOMER).decisions) == 16 + 16 + 1
    # Beyond the window an event id is new again: the bound is the documented price of memory.
    assert await _commit_event(store, version, "e0") == 21


async def test_a_smaller_ring_evicts_sooner(redis_url: str, store_settings: Settings) -> None:
    store = Store.from_settings(store_settings.with_overrides(decisions_kept=2), redis_url)
    try:
        version = 0
        for event_id in ("a", "b", "c"):
            version = await _commit_event(store, version, event_id)
        decisions = [
            (await store.load(customer_id=CUSTOMER, event_ids=[e])).decisions[0]
            for e in ("a", "b", "c")
        ]
    finally:
        await store.close()
    assert decisions == [None, b"decision-b", b"decision-c"]


async def test_every_write_sets_the_ttl_of_every_key_and_refusals_do_not(
    store: Store, redis_client: redis.Redis
) -> None:
    keys = store.keys.customer(CUSTOMER)
    await _commit_event(store, 0, "e1")
    for key in keys.all():
        assert 0 < await redis_client.ttl(key) <= STATE_TTL_S
        await redis_client.expire(key, 5)
    await store.commit(
        customer_id=CUSTOMER, expected_version=0, state=b"stale", events=[("e2", b"d")]
    )  # CONFLICT
    await store.commit(
        customer_id=CUSTOMER, expected_version=1, state=b"again", events=[("e1", b"d")]
    )  # DUPLICATE
    assert [await redis_client.ttl(key) for key in keys.all()] == [5, 5]
    await store.commit(
        customer_id=CUSTOMER, expected_version=1, state=b"no event"
    )  # refreshes the decisions too
    for key in keys.all():
        assert await redis_client.ttl(key) > STATE_TTL_S - 5


async def test_forget_deletes_every_key_of_that_customer_only(
    store: Store, redis_client: redis.Redis, key_prefix: str
) -> None:
    await _commit_event(store, 0, "e1")
    await _commit_event(store, 0, "e1", customer="someone-else")
    await store.commit(
        customer_id=CUSTOMER,
        expected_version=0,
        state=b"anon",
        events=[("e1", b"d")],
        anonymous=True,
    )
    assert len(await _keys_under(redis_client, key_prefix)) == 6

    assert await store.forget(customer_id=CUSTOMER) == 2
    assert await store.load(customer_id=CUSTOMER, event_ids=["e1"]) == Loaded(None, 0, [None])
    assert await store.forget(customer_id=CUSTOMER) == 0
    assert await store.forget(customer_id=CUSTOMER, anonymous=True) == 2
    remaining = await _keys_under(redis_client, key_prefix)
    assert remaining == set(store.keys.customer("someone-else").all())


async def test_anonymous_visitors_are_kept_apart_from_customers(store: Store) -> None:
    await store.commit(customer_id="v1", expected_version=0, state=b"anonymous", anonymous=True)
    assert await store.load(customer_id="v1") == Loaded(None, 0, [])
    assert await store.load(customer_id="v1", anonymous=True) == Loaded(b"anonymous", 1, [])


async def test_all_keys_of_a_customer_share_one_cluster_slot(
    store: Store, redis_client: redis.Redis, key_prefix: str
) -> None:
    await _commit_event(store, 0, "e1")
    keys = await _keys_under(redis_client, key_prefix)
    assert keys == set(store.keys.customer(CUSTOMER).all())
    tag = f"c:{CUSTOMER}"
    assert all(f"{key_prefix}{{{tag}}}:" in key for key in keys)
    assert {key_slot(key.encode()) for key in keys} == {key_slot(tag.encode())}
    try:
        server_slots = {
            await redis_client.execute_command("CLUSTER KEYSLOT", key)  # type: ignore[no-untyped-call]
            for key in keys
        }
    except sync_redis.ResponseError:  # a standalone server: cluster support disabled
        return
    assert server_slots == {key_slot(tag.encode())}


# --- scripts by SHA -------------------------------------------------------------------------------


async def test_commit_reloads_the_script_after_script_flush(
    store: Store, redis_client: redis.Redis, redis_is_ours: bool
) -> None:
    if not redis_is_ours:
        pytest.skip("SCRIPT FLUSH would drop other clients' scripts on a shared Redis")
    await _commit_event(store, 0, "e1")
    await redis_client.script_flush()
    assert await redis_client.script_exists(store.commit_script_sha) == [False]
    assert await _commit_event(store, 1, "e2") == 2
    assert await redis_client.script_exists(store.commit_script_sha) == [True]


async def test_commit_loads_a_script_the_server_does_not_know(
    redis_client: redis.Redis,
    redis_url: str,
    store_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A source no server has seen (unique comment), so the first EVALSHA meets NOSCRIPT; this
    # covers the reload path on a shared Redis without flushing anyone's scripts.
    unseen = f"{server.store.redis_store.COMMIT_SCRIPT}\n-- test {uuid.uuid4().hex}\n"
    monkeypatch.setattr(server.store.redis_store, "COMMIT_SCRIPT", unseen)
    store = Store.from_settings(store_settings, redis_url)
    try:
        assert await redis_client.script_exists(store.commit_script_sha) == [False]
        assert await _commit_event(store, 0, "e1") == 1
        assert await redis_client.script_exists(store.commit_script_sha) == [True]
    finally:
        await store.close()


# --- concurrency and the retry loop ---------------------------------------------------------------


async def _increment_until_committed(store: Store, event_id: str) -> int:
    """Load, add one to the counter in the blob, commit; start again on conflict. Returns tries."""
    tries = 0
    while True:
        tries += 1
        loaded = await store.load(customer_id=CUSTOMER, event_ids=[event_id])
        count = int(loaded.state or b"0") + 1
        result = await store.commit(
            customer_id=CUSTOMER,
            expected_version=loaded.version,
            state=str(count).encode(),
            events=[(event_id, str(count).encode())],
        )
        if result.outcome is not CommitOutcome.CONFLICT:
            return tries


async def test_concurrent_increments_on_one_customer_lose_no_update(store: Store) -> None:
    tries = await asyncio.gather(*(_increment_until_committed(store, f"e{i}") for i in range(50)))
    loaded = await store.load(customer_id=CUSTOMER)
    assert (loaded.state, loaded.version) == (b"50", 50)
    assert sum(tries) > 50  # the loop really met conflicts


async def test_concurrent_increments_through_separate_clients(
    redis_url: str, store_settings: Settings
) -> None:
    stores = [Store.from_settings(store_settings, redis_url) for _ in range(5)]
    try:
        await asyncio.gather(
            *(_increment_until_committed(stores[i % 5], f"e{i}") for i in range(50))
        )
        assert await stores[0].load(customer_id=CUSTOMER) == Loaded(b"50", 50, [])
    finally:
        for each in stores:
            await each.close()


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


# --- unavailability -----------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def unreachable_store() -> AsyncIterator[Store]:
    store = Store.from_settings(
        Settings(redis_timeout_ms=200), f"redis://127.0.0.1:{_closed_port()}/0"
    )
    yield store
    await store.close()


@pytest.mark.timeout(10)
async def test_an_unreachable_redis_raises_store_unavailable_from_the_cause(
    unreachable_store: Store,
) -> None:
    store = unreachable_store
    calls: list[Callable[[], Awaitable[object]]] = [
        store.ping,
        lambda: store.load(customer_id=CUSTOMER, event_ids=["e1"]),
        lambda: store.commit(
            customer_id=CUSTOMER, expected_version=0, state=b"s", events=[("e1", b"d")]
        ),
        lambda: store.forget(customer_id=CUSTOMER),
        lambda: store.bump_stats([StageChange("retail", None, "awareness", None)], "2024-05-01"),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable, match="unreachable") as raised:
            await call()
        assert isinstance(raised.value.__cause__, sync_redis.ConnectionError)


@pytest.mark.timeout(10)
async def test_a_redis_that_stops_answering_raises_store_unavailable() -> None:
    async def accept_and_stay_silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    silent = await asyncio.start_server(accept_and_stay_silent, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    store = Store.from_settings(Settings(redis_timeout_ms=100), f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await store.load(customer_id=CUSTOMER, event_ids=["e1"])
        assert isinstance(raised.value.__cause__, sync_redis.TimeoutError)
    finally:
        await store.close()
        silent.close()
        await silent.wait_closed()


@pytest.mark.timeout(10)
async def test_a_loading_redis_raises_store_unavailable() -> None:
    async def always_loading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            writer.write(b"-LOADING Redis is loading the dataset in memory\r\n")
            await writer.drain()
        writer.close()

    loading = await asyncio.start_server(always_loading, "127.0.0.1", 0)
    port = loading.sockets[0].getsockname()[1]
    store = Store.from_settings(Settings(redis_timeout_ms=500), f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await store.ping()
        assert isinstance(raised.value.__cause__, sync_redis.BusyLoadingError)
    finally:
        await store.close()
        loading.close()
        await loading.wait_closed()


async def test_a_client_that_decodes_replies_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses=False"):
            Store(client, Settings())
    finally:
        await client.aclose()


async def test_take_deletes_only_the_state_it_was_given_the_version_of(store: Store) -> None:
    await store.commit(
        customer_id="vis", expected_version=0, state=b"one", events=[("e1", b"d1")], anonymous=True
    )
    await store.commit(
        customer_id="vis", expected_version=1, state=b"two", events=[("e2", b"d2")], anonymous=True
    )
    # An event landed after version 1 was read: nothing is taken.
    assert await store.take(customer_id="vis", version=1, anonymous=True) is False
    assert (await store.load(customer_id="vis", event_ids=["e2"], anonymous=True)).decisions == [
        b"d2"
    ]
    assert await store.take(customer_id="vis", version=2, anonymous=True) is True
    assert await store.load(customer_id="vis", event_ids=["e2"], anonymous=True) == Loaded(
        None, 0, [None]
    )


async def test_per_day_statistics_expire_after_the_retention_and_stage_counts_stay(
    store_settings: Settings, redis_url: str, redis_client: redis.Redis
) -> None:
    retention_s = 7 * 86_400
    store = Store.from_settings(store_settings.with_overrides(stats_retention_days=7), redis_url)
    try:
        move = StageChange("retail", "awareness", "consideration", "started_comparing")
        await store.bump_stats([move], "2026-12-05")
        day_key = store.keys.transitions("retail", "2026-12-05")
        assert await store.transition_counts("retail", "2026-12-05") == {"started_comparing": 1}
        assert 0 < await redis_client.ttl(day_key) <= retention_s
        assert await redis_client.ttl(store.keys.stage_counts("retail")) == -1  # no expiry
    finally:
        await store.close()
