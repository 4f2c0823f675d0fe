"""What only a Redis Cluster shows of the store: the client reads the slot map, where keys and
scripts land, a pool per node, statistics over several masters, MASTERDOWN.

The store's cases themselves run on a cluster as on one Redis (tests/service/test_store.py), and
so do the unreachable ones (tests/service/test_store_errors.py)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis
import redis.exceptions as redis_errors
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from server.core.config import Settings
from server.store.connection import connect
from server.store.errors import StoreUnavailable
from server.store.redis_store import StageChange, Store
from tests.redis_cluster import MASTERS, StartCluster, cluster_connect
from tests.service.test_store import commit_event
from tests.service.test_store_errors import every_kind_of_call

pytestmark = pytest.mark.service

CUSTOMER = "cust-42@example.com"


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


# --- where keys and scripts land ------------------------------------------------------------------


async def test_each_customer_lives_on_one_node_and_customers_spread_over_every_node(
    store: Store, cluster_client: RedisCluster, key_prefix: str
) -> None:
    customers = [f"shopper-{i}" for i in range(30)]
    await asyncio.gather(*(commit_event(store, 0, "e1", customer) for customer in customers))
    held = await _keys_by_node(cluster_client, key_prefix)
    nodes_used = set()
    for customer in customers:
        keys = store.keys.customer(customer).all()
        slot = key_slot(f"c:{customer}".encode())  # the hash tag alone decides the slot
        assert {key_slot(key.encode()) for key in keys} == {slot}
        owner = cluster_client.get_node_from_key(keys[0])
        assert owner is not None
        assert keys[0] in held[owner.name], customer  # the state really on the slot's master
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
        version = await commit_event(store, version, f"e{index}")
    after = {
        n.name: await _evalsha_calls(cluster_client, n) for n in cluster_client.get_primaries()
    }
    ran = {name: after[name] - before[name] for name in after}
    assert ran == {name: 5 if name == owner.name else 0 for name in ran}


# --- a pool per node -----------------------------------------------------------------------------


async def test_more_calls_than_connections_per_node_wait_for_a_connection(
    cluster_url: str, key_prefix: str
) -> None:
    # redis-py's node pools raise MaxConnectionsError when empty; the store waits its turn.
    # Built by hand: the server's pool is never this small.
    store = Store(cluster_connect(cluster_url, max_connections=2), Settings(key_prefix=key_prefix))
    try:
        customers = [f"c{i}" for i in range(60)]
        await asyncio.gather(*(commit_event(store, 0, "e1", customer) for customer in customers))
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


# --- MASTERDOWN -----------------------------------------------------------------------------------


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
        for call in every_kind_of_call(store)[1:]:  # ping is a whole-cluster call
            with pytest.raises(StoreUnavailable, match="unreachable"):
                await call()
    finally:
        monkeypatch.undo()
        await store.close()


# --- the eviction policy --------------------------------------------------------------------------


async def test_a_cluster_primary_that_deletes_keys_when_full_is_named(
    start_cluster: StartCluster, key_prefix: str
) -> None:
    """One primary of three with a maxmemory and an evicting policy loses the states whose slots
    it serves: Store.evicts asks every primary, not one picked by the router."""
    cluster = start_cluster()
    store = Store(connect(cluster.url, timeout_s=1.0), Settings(key_prefix=key_prefix))
    try:
        await store.ping()
        assert await store.evicts() is None  # a fresh cluster never evicts
        last = cluster.ports[-1]
        direct = redis.Redis(host="127.0.0.1", port=last)
        try:
            await direct.config_set("maxmemory-policy", "volatile-lru")
            assert await store.evicts() is None  # no maxmemory: it never evicts
            await direct.config_set("maxmemory", "64mb")
            assert await store.evicts() == "volatile-lru"
        finally:
            await direct.aclose()
    finally:
        await store.close()
