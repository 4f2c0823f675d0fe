"""How a Redis the store cannot use surfaces: StoreUnavailable from the cause, whether nothing
listens (one Redis, every seed of a cluster, a unix socket), the server never answers, or it is
still loading; a message that names no address of Redis; a client that decodes replies, refused.

Real faults of a running cluster (a paused or stopped master, a slot in migration, a failover)
are in tests/cluster/test_cluster_faults.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as redis
import redis.exceptions as redis_errors

from benchmarks.ports import free_port
from server.core.config import Settings
from server.store.cluster import SlotMapUnavailable
from server.store.errors import StoreUnavailable
from server.store.redis_store import StageChange, Store

pytestmark = pytest.mark.service

CUSTOMER = "cust-42@example.com"


def _closed_ports(count: int) -> list[int]:
    """Loopback ports nothing listens on, below the ephemeral range (`benchmarks.ports`: a client
    is never given one as its own, so it cannot connect to itself)."""
    return [free_port() for _ in range(count)]


@dataclass
class Unreachable:
    """A Store whose Redis does not listen, and the address redis-py's errors name it by."""

    store: Store
    address: str


@pytest.fixture(params=["single", "cluster", "socket"])
async def unreachable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Unreachable]:
    """A Store on one Redis's closed port, on a cluster none of whose seeds listens, or on a
    unix socket that is not there."""
    if request.param == "single":
        url = f"redis://127.0.0.1:{_closed_ports(1)[0]}/0"
    elif request.param == "cluster":
        url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in _closed_ports(2))
    else:
        url = f"unix://{tmp_path / 'redis.sock'}"
    store = Store.from_settings(Settings(redis_timeout_ms=200), url)
    yield Unreachable(store, str(tmp_path) if url.startswith("unix:") else "127.0.0.1")
    await store.close()


def every_kind_of_call(store: Store) -> list[Callable[[], Awaitable[object]]]:
    """One call of each kind the store makes: ping, load, commit, forget, a stats pipeline."""
    return [
        store.ping,
        lambda: store.load(customer_id=CUSTOMER, event_ids=["e1"]),
        lambda: store.commit(
            customer_id=CUSTOMER, expected_version=0, state=b"s", events=[("e1", b"d")]
        ),
        lambda: store.forget(customer_id=CUSTOMER),
        lambda: store.bump_stats([StageChange("retail", None, "awareness", None)], "2024-05-01"),
    ]


def _check_cause(raised: StoreUnavailable) -> None:
    """The cause is redis-py's ConnectionError; on a cluster, the slot map that could not be
    read (SlotMapUnavailable), from redis-py's RedisClusterException, from a ConnectionError."""
    cause = raised.__cause__
    if isinstance(cause, SlotMapUnavailable):
        assert "slot map" in str(raised)
        assert isinstance(cause.__cause__, redis_errors.RedisClusterException)  # redis-py's
        cause = cause.__cause__.__cause__
    assert isinstance(cause, redis_errors.ConnectionError), repr(cause)


@pytest.mark.timeout(10)
async def test_an_unreachable_redis_raises_store_unavailable_from_the_cause(
    unreachable: Unreachable,
) -> None:
    for call in every_kind_of_call(unreachable.store):
        with pytest.raises(StoreUnavailable, match="unreachable") as raised:
            await call()
        _check_cause(raised.value)


@pytest.mark.timeout(10)
async def test_store_unavailable_names_no_address_of_redis_and_chains_the_detail(
    unreachable: Unreachable,
) -> None:
    # The message reaches clients (UNAVAILABLE); the socket path or node addresses stay with
    # redis-py's error, chained as the cause.
    with pytest.raises(StoreUnavailable, match="unreachable") as raised:
        await unreachable.store.load(customer_id=CUSTOMER, event_ids=["e1"])
    assert unreachable.address in str(raised.value.__cause__)
    assert unreachable.address not in str(raised.value)
    assert "<redis>" in str(raised.value)


Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def _store_on_a_fake_redis(answer: Answer, timeout_ms: int) -> AsyncIterator[Store]:
    """A Store whose "Redis" is a loopback server that answers every connection with `answer`."""
    fake = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = fake.sockets[0].getsockname()[1]
    store = Store.from_settings(
        Settings(redis_timeout_ms=timeout_ms), f"redis://127.0.0.1:{port}/0"
    )
    try:
        yield store
    finally:
        await store.close()
        fake.close()
        await fake.wait_closed()


@pytest.mark.timeout(10)
async def test_a_redis_that_stops_answering_raises_store_unavailable() -> None:
    async def accept_and_stay_silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    async with _store_on_a_fake_redis(accept_and_stay_silent, timeout_ms=100) as store:
        with pytest.raises(StoreUnavailable) as raised:
            await store.load(customer_id=CUSTOMER, event_ids=["e1"])
    assert isinstance(raised.value.__cause__, redis_errors.TimeoutError)


@pytest.mark.timeout(10)
async def test_a_loading_redis_raises_store_unavailable() -> None:
    async def always_loading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            writer.write(b"-LOADING Redis is loading the dataset in memory\r\n")
            await writer.drain()
        writer.close()

    async with _store_on_a_fake_redis(always_loading, timeout_ms=500) as store:
        with pytest.raises(StoreUnavailable) as raised:
            await store.ping()
    assert isinstance(raised.value.__cause__, redis_errors.BusyLoadingError)


async def test_a_client_that_decodes_replies_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses=False"):
            Store(client, Settings())
    finally:
        await client.aclose()
