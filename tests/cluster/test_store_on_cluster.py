"""The Redis store on a real 3-master Redis Cluster: the journey cases of the store's service
tests, and what only a cluster shows: where keys and scripts land, how cluster failures surface."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as redis
import redis.exceptions as redis_errors
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

import server.store.redis_store
from server.core.config import Settings
from server.store.cluster import SlotMapUnavailable
from server.store.connection import connect
from server.store.errors import StoreUnavailable
from server.store.redis_store import CommitOutcome, Loaded, StageChange, Store
from tests.cluster.conftest import MASTERS, REDIS_TIMEOUT_S, cluster_connect

pytestmark = pytest.mark.service

CLUSTER_SETTINGS = Settings(redis_timeout_ms=int(REDIS_TIMEOUT_S * 1000))

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


async def _keys_by_node(client: RedisCluster, prefix: str) -> dict[str, set[str]]:
    """The keys under `prefix` that each master really holds (asked directly, not routed)."""
    found: dict[str, set[str]] = {}
    for node in client.get_primaries():
        direct = redis.Redis(host=node.host, port=node.port)
        try:
            found[node.name] = {key.decode() async for key in direct.scan_iter(f"{prefix}*")}
        finally:
            await direct.aclose()
    return found


# --- the client -----------------------------------------------------------------------------------


async def test_a_cluster_url_gives_the_cluster_client_and_ping_reads_the_slot_map(
    cluster_url: str, key_prefix: str
) -> None:
    client = connect(cluster_url, timeout_s=1.0)
    assert isinstance(client, RedisCluster)
    store = Store(client, Settings(key_prefix=key_prefix))
    try:
        assert client.get_nodes() == []  # nothing discovered before the first use
        await store.ping()
        assert len(client.get_primaries()) == MASTERS
        # Every one of the 16384 slots has a known master.
        assert all(client.get_node_from_key(f"k{i}") is not None for i in range(100))
    finally:
        await store.close()


# --- load and commit ------------------------------------------------------------------------------


async def test_commit_then_load_returns_the_state_and_the_decision_of_a_seen_event(
    store: Store,
) -> None:
    assert await store.load(customer_id=CUSTOMER, event_ids=["e1"]) == Loaded(
        state=None, version=0, decisions=[None]
    )
    assert await _commit_event(store, 0, "e1") == 1
    assert await store.load(customer_id=CUSTOMER, event_ids=["e1"]) == Loaded(
        b"state-e1", 1, [b"decision-e1"]
    )
    assert await store.load(customer_id=CUSTOMER, event_ids=["e2"]) == Loaded(
        b"state-e1", 1, [None]
    )
    assert await _commit_event(store, 1, "e2") == 2
    assert await store.load(customer_id=CUSTOMER) == Loaded(b"state-e2", 2, [])


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
    stale = await store.commit(
        customer_id=CUSTOMER, expected_version=0, state=b"other", events=[("e1", b"other decision")]
    )
    assert stale.outcome is CommitOutcome.DUPLICATE
    assert await store.load(customer_id=CUSTOMER, event_ids=["e1"]) == Loaded(
        b"state-e1", 1, [b"decision-e1"]
    )


async def test_forget_deletes_every_key_of_that_customer_only(
    store: Store, cluster_client: RedisCluster, key_prefix: str
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
    assert await store.forget(customer_id=CUSTOMER) == 2
    assert await store.load(customer_id=CUSTOMER, event_ids=["e1"]) == Loaded(None, 0, [None])
    assert await store.forget(customer_id=CUSTOMER) == 0
    assert await store.forget(customer_id=CUSTOMER, anonymous=True) == 2
    remaining = set().union(*(await _keys_by_node(cluster_client, key_prefix)).values())
    assert remaining == set(store.keys.customer("someone-else").all())


# --- where keys and scripts land ------------------------------------------------------------------


async def test_each_customer_lives_on_one_node_and_customers_spread_over_every_node(
    store: Store, cluster_client: RedisCluster, key_prefix: str
) -> None:
    customers = [f"shopper-{i}" for i in range(30)]
    await asyncio.gather(*(_commit_event(store, 0, "e1", customer) for customer in customers))
    held = await _keys_by_node(cluster_client, key_prefix)
    nodes_used = set()
    for customer in customers:
        keys = store.keys.customer(customer).all()
        slot = key_slot(f"c:{customer}".encode())  # the hash tag alone decides the slot
        assert {key_slot(key.encode()) for key in keys} == {slot}
        owner = cluster_client.get_node_from_key(keys[0])
        assert owner is not None
        assert set(keys) <= held[owner.name], customer  # both keys really on the slot's master
        assert await cluster_client.cluster_keyslot(keys[0]) == slot  # the server agrees
        nodes_used.add(owner.name)
    assert len(nodes_used) == MASTERS  # 30 customers: every master holds some


async def _evalsha_calls(client: RedisCluster, node: ClusterNode) -> int:
    stats = await client.info("commandstats", target_nodes=node)
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_the_commit_script_runs_on_the_master_of_the_customers_slot(
    store: Store, cluster_client: RedisCluster
) -> None:
    owner = cluster_client.get_node_from_key(store.keys.customer(CUSTOMER).state)
    assert owner is not None
    before = {
        n.name: await _evalsha_calls(cluster_client, n) for n in cluster_client.get_primaries()
    }
    version = 0
    for index in range(5):
        version = await _commit_event(store, version, f"e{index}")
    after = {
        n.name: await _evalsha_calls(cluster_client, n) for n in cluster_client.get_primaries()
    }
    ran = {name: after[name] - before[name] for name in after}
    assert ran == {name: 5 if name == owner.name else 0 for name in ran}


async def _knows_script(client: RedisCluster, node: ClusterNode, sha: str) -> bool:
    (known,) = await client.execute_command("SCRIPT EXISTS", sha, target_nodes=node)
    return bool(known)


async def test_commit_loads_a_script_the_cluster_does_not_know(
    cluster_url: str,
    cluster_client: RedisCluster,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A source no node has seen: the first EVALSHA meets NOSCRIPT, redis-py loads the script
    # (SCRIPT LOAD goes to every master) and runs it again by SHA, without flushing anything.
    unseen = f"{server.store.redis_store.COMMIT_SCRIPT}\n-- test {uuid.uuid4().hex}\n"
    monkeypatch.setattr(server.store.redis_store, "COMMIT_SCRIPT", unseen)
    store = Store.from_settings(CLUSTER_SETTINGS.with_overrides(key_prefix=key_prefix), cluster_url)
    try:
        sha = store.commit_script_sha
        nodes = cluster_client.get_primaries()
        assert [await _knows_script(cluster_client, n, sha) for n in nodes] == [False] * MASTERS
        assert await _commit_event(store, 0, "e1") == 1
        assert [await _knows_script(cluster_client, n, sha) for n in nodes] == [True] * MASTERS
        assert await _commit_event(store, 1, "e2") == 2
    finally:
        await store.close()


# --- concurrency ----------------------------------------------------------------------------------


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


async def test_fifty_concurrent_load_commit_loops_on_one_customer_lose_no_update(
    store: Store,
) -> None:
    tries = await asyncio.gather(*(_increment_until_committed(store, f"e{i}") for i in range(50)))
    loaded = await store.load(customer_id=CUSTOMER)
    assert (loaded.state, loaded.version) == (b"50", 50)
    assert sum(tries) > 50  # the loops really met conflicts


async def test_concurrent_loops_through_separate_cluster_clients_lose_no_update(
    cluster_url: str, key_prefix: str
) -> None:
    settings = CLUSTER_SETTINGS.with_overrides(key_prefix=key_prefix)
    stores = [Store.from_settings(settings, cluster_url) for _ in range(3)]
    try:
        await asyncio.gather(
            *(_increment_until_committed(stores[i % 3], f"e{i}") for i in range(50))
        )
        assert await stores[1].load(customer_id=CUSTOMER) == Loaded(b"50", 50, [])
    finally:
        for each in stores:
            await each.close()


async def test_more_calls_than_connections_per_node_wait_for_a_connection(
    cluster_url: str, key_prefix: str
) -> None:
    # redis-py's node pools raise MaxConnectionsError when empty; the store waits its turn.
    # Built by hand: the server's pool is never this small.
    store = Store(cluster_connect(cluster_url, max_connections=2), Settings(key_prefix=key_prefix))
    try:
        customers = [f"c{i}" for i in range(60)]
        await asyncio.gather(*(_commit_event(store, 0, "e1", customer) for customer in customers))
        loaded = await asyncio.gather(
            *(store.load(customer_id=customer, event_ids=["e1"]) for customer in customers)
        )
        assert {each.decisions[0] for each in loaded} == {b"decision-e1"}
    finally:
        await store.close()


# --- stats: keys in other slots than the customer's ----------------------------------------------


async def test_bump_stats_spreads_over_the_masters_and_counts_every_change(
    store: Store, cluster_client: RedisCluster
) -> None:
    day = "2024-05-01"
    journeys = [f"journey_{i}" for i in range(8)]
    await store.bump_stats([StageChange(j, None, "awareness", None) for j in journeys], day)
    await store.bump_stats(
        [StageChange(j, "awareness", "consideration", "browse") for j in journeys], day
    )
    for journey in journeys:
        assert await store.stage_counts(journey) == {"awareness": 0, "consideration": 1}
        assert await store.transition_counts(journey, day) == {"browse": 1}
    # One pipeline, split by the cluster client over the masters that own these keys.
    keys = [store.keys.stage_counts(j) for j in journeys]
    keys += [store.keys.transitions(j, day) for j in journeys]
    owners = {node.name for key in keys if (node := cluster_client.get_node_from_key(key))}
    assert len(owners) > 1


# --- unavailability -------------------------------------------------------------------------------


def _closed_ports(count: int) -> list[int]:
    ports = []
    for _ in range(count):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(int(probe.getsockname()[1]))
    return ports


def _store_calls(store: Store) -> list[Callable[[], Awaitable[object]]]:
    return [
        store.ping,
        lambda: store.load(customer_id=CUSTOMER, event_ids=["e1"]),
        lambda: store.commit(
            customer_id=CUSTOMER, expected_version=0, state=b"s", events=[("e1", b"d")]
        ),
        lambda: store.forget(customer_id=CUSTOMER),
        lambda: store.bump_stats([StageChange("retail", None, "awareness", None)], "2024-05-01"),
    ]


@pytest.fixture
async def unreachable_store() -> AsyncIterator[Store]:
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in _closed_ports(2))
    store = Store.from_settings(Settings(redis_timeout_ms=200), url)
    yield store
    await store.close()


@pytest.mark.timeout(10)
async def test_a_cluster_no_seed_answers_raises_store_unavailable_from_the_cause(
    unreachable_store: Store,
) -> None:
    for call in _store_calls(unreachable_store):
        with pytest.raises(StoreUnavailable, match="unreachable.*slot map") as raised:
            await call()
        no_map = raised.value.__cause__
        assert isinstance(no_map, SlotMapUnavailable)
        assert isinstance(no_map.__cause__, redis_errors.RedisClusterException)  # redis-py's
        assert isinstance(no_map.__cause__.__cause__, redis_errors.ConnectionError)


@pytest.mark.timeout(10)
async def test_store_unavailable_names_no_address_of_redis_and_chains_the_detail(
    unreachable_store: Store, tmp_path: Path
) -> None:
    # The message reaches clients (UNAVAILABLE); the socket path or node addresses stay with
    # redis-py's error, chained as the cause.
    missing_socket = tmp_path / "redis.sock"
    on_a_socket = Store.from_settings(Settings(redis_timeout_ms=200), f"unix://{missing_socket}")
    try:
        for store, address in ((on_a_socket, str(tmp_path)), (unreachable_store, "127.0.0.1")):
            with pytest.raises(StoreUnavailable, match="unreachable") as raised:
                await store.load(customer_id=CUSTOMER, event_ids=["e1"])
            assert address not in str(raised.value)
            assert "<redis>" in str(raised.value)
            assert address in str(raised.value.__cause__)
    finally:
        await on_a_socket.close()


# The other cluster failures (CLUSTERDOWN, TRYAGAIN, connection errors, timeouts, a failover) are
# real faults in test_cluster_faults.py. MASTERDOWN is not: a replica answers it only to a client
# that reads from replicas, and journeyman's reads and writes go to masters (a replica redirects
# them with MOVED first). So each node's replies are replaced here, CLUSTER SLOTS' included, as a
# cluster whose every node answers MASTERDOWN would send them.
@pytest.mark.timeout(20)
async def test_a_cluster_answering_masterdown_raises_store_unavailable(
    cluster_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.from_settings(Settings(key_prefix=key_prefix, redis_timeout_ms=1000), cluster_url)
    reply = "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
    try:
        await store.ping()  # the slot map is read from the healthy cluster first

        async def every_node_replies(*args: object, **kwargs: object) -> object:
            raise redis_errors.MasterDownError(reply)

        async def every_pipeline_replies(self: ClusterNode, commands: list[object]) -> bool:
            raise redis_errors.MasterDownError(reply)

        monkeypatch.setattr(ClusterNode, "execute_command", every_node_replies)
        monkeypatch.setattr(ClusterNode, "execute_pipeline", every_pipeline_replies)
        for call in _store_calls(store)[1:]:
            with pytest.raises(StoreUnavailable, match="unreachable"):
                await call()
    finally:
        monkeypatch.undo()
        await store.close()
