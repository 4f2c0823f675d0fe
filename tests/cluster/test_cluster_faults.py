"""Real faults on a real Redis Cluster: a master paused, a slot in migration, masters stopped,
a failover. Whichever redis-py path meets them (a command, its retry, the slot map refresh it
runs), the Store raises StoreUnavailable, with no address of a node in the message, and answers
again by itself once the cluster does.

Tests that stop or fail over nodes run on a cluster of their own (`start_cluster`, nodes called
failed after 1 s instead of 5); the others change the session's cluster and undo it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from server.core.config import Settings
from server.store.errors import StoreUnavailable
from server.store.keys import STATE_VERSION_FIELD
from server.store.redis_store import CommitOutcome, Store
from tests.redis_cluster import MASTERS, LocalCluster, StartCluster, cluster_connect, cluster_info

pytestmark = pytest.mark.service

FAST_NODE_TIMEOUT_MS = 1000
# Short enough that a paused or stopped node fails a call quickly, long enough for a loaded CI
# machine to answer a healthy one.
FAULT_SETTINGS = Settings(redis_timeout_ms=500)
RECOVERY_TIMEOUT_S = 30.0
# How long an outage is kept up while calls are made: long enough for redis-py to run the slot
# map refreshes it paces (a whole cluster down is met as RedisClusterUnreachableError only then).
OUTAGE_S = 3.0

T = TypeVar("T")


def _direct(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=2.0, socket_connect_timeout=2.0)


async def _eventually(call: Callable[[], Awaitable[T]], what: str) -> T:
    """`call()`'s result once it stops raising StoreUnavailable (within RECOVERY_TIMEOUT_S)."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while True:
        try:
            return await call()
        except StoreUnavailable as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"unavailable for {RECOVERY_TIMEOUT_S} s: {what}") from error
            await asyncio.sleep(0.1)


def _wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while not check():
        assert time.monotonic() < deadline, f"waited {RECOVERY_TIMEOUT_S} s for {what}"
        time.sleep(0.05)


async def _unavailable(call: Awaitable[object]) -> StoreUnavailable:
    """The StoreUnavailable `call` raises; its message names no node."""
    with pytest.raises(StoreUnavailable, match="unreachable") as raised:
        await call
    assert "127.0.0.1" not in str(raised.value)
    return raised.value


async def _topology(url: str) -> RedisCluster:
    """A cluster client that has read the slot map once, to tell which master holds what."""
    client = cluster_connect(url)
    await client.initialize()
    await client.aclose()  # the slot map stays known
    return client


async def _unavailable_throughout(calls: list[Callable[[], Awaitable[object]]]) -> None:
    """Every one of `calls`, again and again for OUTAGE_S, raises StoreUnavailable."""
    deadline = time.monotonic() + OUTAGE_S
    while time.monotonic() < deadline:
        for call in calls:
            await _unavailable(call())
        await asyncio.sleep(0.05)


def _customers_by_port(store: Store, client: RedisCluster) -> dict[int, str]:
    """One customer id per master, by the master's port."""
    found: dict[int, str] = {}
    while len(found) < len(client.get_primaries()):
        customer = f"c-{uuid.uuid4().hex[:8]}"
        node = client.get_node_from_key(store.keys.customer(customer).state)
        assert node is not None
        found.setdefault(node.port, customer)
    return found


async def _commit(store: Store, customer: str, version: int) -> int:
    """Commit on top of `version`; the new version."""
    result = await store.commit(
        customer_id=customer,
        expected_version=version,
        state=b"state",
        events=[(f"e{version}", b"decision")],
    )
    assert result.outcome is CommitOutcome.COMMITTED
    assert result.version not in (0, version)
    return result.version


@pytest.fixture
async def own_store(cluster_url: str, key_prefix: str) -> AsyncIterator[Store]:
    """A Store over the session's cluster with the short timeout of these tests."""
    store = Store.from_settings(FAULT_SETTINGS.with_overrides(key_prefix=key_prefix), cluster_url)
    try:
        # Inside the try: a ping that reads the slot map and then times out (500 ms on a loaded
        # machine) leaves the client open, and only close() closes it.
        await store.ping()
        yield store
    finally:
        await store.close()


# --- on the session's cluster, undone at the end --------------------------------------------------


@pytest.mark.timeout(30)
async def test_a_paused_master_raises_store_unavailable_for_its_customers_only(
    own_store: Store, cluster_client: RedisCluster
) -> None:
    customers = _customers_by_port(own_store, cluster_client)
    paused_port, paused_customer = next(iter(customers.items()))
    versions = {customer: await _commit(own_store, customer, 0) for customer in customers.values()}
    pause_ms = 3000
    with _direct(paused_port) as paused:
        paused.execute_command("CLIENT", "PAUSE", pause_ms, "ALL")  # as a stuck Redis does
    started = time.monotonic()
    await _unavailable(own_store.load(customer_id=paused_customer))
    for port, customer in customers.items():
        if port != paused_port:  # the other masters keep answering
            assert (await own_store.load(customer_id=customer)).version == versions[customer]
    assert time.monotonic() - started < pause_ms / 1000, "the pause ended before the test ran"
    loaded = await _eventually(lambda: own_store.load(customer_id=paused_customer), "pause over")
    assert loaded.version == versions[paused_customer]


@pytest.mark.timeout(30)
async def test_a_slot_in_migration_raises_store_unavailable_until_it_is_stable(
    own_store: Store, cluster_client: RedisCluster
) -> None:
    # A new customer's slot marked as moving to another master: the owner answers ASK (it has
    # none of the keys), the importing master TRYAGAIN (the commit script names two keys, not
    # all there yet), and redis-py gives up after its redirections: a slot being resharded.
    customers = _customers_by_port(own_store, cluster_client)
    (source, customer), (target, _) = list(customers.items())[:2]
    slot = key_slot(own_store.keys.customer(customer).state.encode())
    with _direct(source) as owner, _direct(target) as importer:
        owner_id = owner.execute_command("CLUSTER", "MYID").decode()
        importer_id = importer.execute_command("CLUSTER", "MYID").decode()
        importer.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", owner_id)
        owner.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", importer_id)
        try:
            await _unavailable(
                own_store.commit(
                    customer_id=customer,
                    expected_version=0,
                    state=b"state",
                    events=[("e0", b"decision")],
                )
            )
        finally:
            for node in (owner, importer):
                node.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
    await _commit(own_store, customer, 0)


# --- on a cluster of the test's own ---------------------------------------------------------------


def _state(port: int) -> str | None:
    try:
        with _direct(port) as node:
            return cluster_info(node).get("cluster_state")
    except redis.RedisError:
        return None


@pytest.mark.timeout(90)
async def test_stopped_masters_raise_store_unavailable_on_every_path(
    start_cluster: StartCluster,
) -> None:
    cluster = start_cluster(node_timeout_ms=FAST_NODE_TIMEOUT_MS)
    store = Store.from_settings(FAULT_SETTINGS, cluster.url)
    try:
        await store.ping()
        client = await _topology(cluster.url)
        customers = _customers_by_port(store, client)
        versions = {customer: await _commit(store, customer, 0) for customer in customers.values()}
        first, *others = customers

        # One master stopped: its customers get connection errors...
        cluster.process_on(first).kill()
        await _unavailable(store.load(customer_id=customers[first]))
        # ...and once the others call it failed, they answer every command with CLUSTERDOWN,
        # which makes redis-py read the slot map again within the command.
        _wait_for(lambda: all(_state(p) == "fail" for p in others), "cluster_state:fail")
        calls: list[Callable[[], Awaitable[object]]] = [store.ping]
        for port in others:
            calls.append(lambda customer=customers[port]: store.load(customer_id=customer))
            calls.append(
                lambda customer=customers[port]: _commit(store, customer, versions[customer])
            )
        await _unavailable_throughout(calls)

        # Every master stopped: the slot map refresh reaches no node.
        for port in others:
            cluster.process_on(port).kill()
        await _unavailable_throughout(
            [
                store.ping,
                *(lambda c=customer: store.load(customer_id=c) for customer in customers.values()),
            ]
        )
    finally:
        await store.close()


def _role(port: int) -> str | None:
    try:
        with _direct(port) as node:
            return str(node.info("replication")["role"])
    except redis.RedisError:
        return None


def _replica_of(cluster: LocalCluster, master_port: int) -> int:
    for port in cluster.ports:
        with _direct(port) as node:
            info = node.info("replication")
        if info["role"] == "slave" and int(info["master_port"]) == master_port:
            return port
    raise AssertionError(f"no replica of the master on port {master_port}")


def _replica_holds(port: int, key: str, version: int) -> bool:
    with _direct(port) as node:
        node.execute_command("READONLY")
        return node.hget(key, STATE_VERSION_FIELD) == str(version).encode()


async def _load_while(store: Store, customer: str, busy: Callable[[], bool]) -> set[str]:
    """Load `customer` again and again while `busy()`: what each call did (a version or
    "unavailable"); any other error fails the test."""
    seen: set[str] = set()
    while busy():
        try:
            seen.add(str((await store.load(customer_id=customer)).version))
        except StoreUnavailable as error:
            assert "127.0.0.1" not in str(error)
            seen.add("unavailable")
        await asyncio.sleep(0.02)
    return seen


@pytest.mark.timeout(120)
async def test_a_failover_keeps_every_replicated_commit_and_the_store_answers_again(
    start_cluster: StartCluster,
) -> None:
    cluster = start_cluster(replicas=1, node_timeout_ms=FAST_NODE_TIMEOUT_MS)
    store = Store.from_settings(FAULT_SETTINGS, cluster.url)
    try:
        await store.ping()
        client = await _topology(cluster.url)
        assert len(client.get_primaries()) == MASTERS
        customers = _customers_by_port(store, client)
        master, customer = next(iter(customers.items()))
        state_key = store.keys.customer(customer).state
        replica = _replica_of(cluster, master)
        first = await _commit(store, customer, 0)
        _wait_for(lambda: _replica_holds(replica, state_key, first), "the commit replicated")

        # A manual failover (CLUSTER FAILOVER on the replica): the replica takes over once it
        # has every write; calls meanwhile answer or say unavailable.
        with _direct(replica) as node:
            node.execute_command("CLUSTER", "FAILOVER")
        seen = await _load_while(store, customer, lambda: _role(replica) != "master")
        assert seen <= {str(first), "unavailable"}
        assert (
            await _eventually(lambda: store.load(customer_id=customer), "after failover")
        ).version == first
        second = await _eventually(lambda: _commit(store, customer, first), "commit after failover")

        # The new master killed once its replica (the old master) holds the last commit: the
        # replica is promoted after the node timeout, and nothing acknowledged is lost.
        _wait_for(lambda: _replica_holds(master, state_key, second), "the commit replicated")
        cluster.process_on(replica).kill()
        seen = await _load_while(store, customer, lambda: _role(master) != "master")
        assert seen <= {str(second), "unavailable"}
        loaded = await _eventually(lambda: store.load(customer_id=customer), "after promotion")
        assert loaded.version == second
        await _eventually(lambda: _commit(store, customer, second), "commit after promotion")
    finally:
        await store.close()
