"""Fixtures for tests against a real Redis: one Redis, a Redis Cluster, or each in turn.

One Redis is JOURNEYMAN_TEST_REDIS_URL, or an embedded one started for the session; the Redis
Cluster is JOURNEYMAN_TEST_REDIS_CLUSTER_URL, or three local masters started for the session
(`tests/redis_cluster.py`; a test on it is skipped, saying why, where none can be started).

`store_url` is the Redis a test's store and server run on: one Redis by default, the cluster
under tests/cluster/, and each in turn in a module marked `ON_EACH_REDIS`. The store and the
server are built from settings as `journeyman serve` builds its own (`Store.from_settings`).

Each test gets its own key prefix and, at teardown, deletes only the keys under it, so the suite
can run against a shared Redis without flushing anything.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import grpc
import pytest

from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.core.config import Settings
from server.rules.rulesource import load_ruleset
from server.runtime.app import Running, create_server
from server.runtime.embedded_redis import start_embedded_redis
from server.store.cluster import is_cluster_url
from server.store.connection import RedisClient, connect
from server.store.redis_store import Store
from tests.redis_cluster import (
    REDIS_TIMEOUT_S,
    TEST_CLUSTER_URL_VARIABLE,
    binaries,
    no_cluster_reason,
    start_local_cluster_retrying,
)
from tests.rulesets import RULES_DIR

TEST_REDIS_URL_VARIABLE = "JOURNEYMAN_TEST_REDIS_URL"
REDIS_KINDS = ("single", "cluster")
# The module mark that runs each of its tests on one Redis, then on a Redis Cluster.
ON_EACH_REDIS = pytest.mark.parametrize("store_url", REDIS_KINDS, indirect=True)
STATE_TTL_S = 3600


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Redis for the session: the environment's, or an embedded one."""
    configured = os.environ.get(TEST_REDIS_URL_VARIABLE)
    if configured:
        yield configured
        return
    server = start_embedded_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's Redis Cluster: the environment's, or three local masters."""
    configured = os.environ.get(TEST_CLUSTER_URL_VARIABLE)
    if configured:
        yield configured
        return
    found = binaries()
    if found is None:
        pytest.skip(no_cluster_reason())
    root = tmp_path_factory.mktemp("redis-cluster")
    cluster = start_local_cluster_retrying(found, lambda attempt: root / f"attempt-{attempt}")
    try:
        yield cluster.url
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of the Redis the test runs on: one Redis, unless the test is parametrized with
    "cluster" (`ON_EACH_REDIS`) or tests/cluster/conftest.py says otherwise."""
    kind = getattr(request, "param", "single")
    return str(request.getfixturevalue("cluster_url" if kind == "cluster" else "redis_url"))


@pytest.fixture
def redis_is_ours(store_url: str) -> bool:
    """True when the suite started the Redis the test runs on, so server-wide commands cannot
    hurt others."""
    variable = TEST_CLUSTER_URL_VARIABLE if is_cluster_url(store_url) else TEST_REDIS_URL_VARIABLE
    return not os.environ.get(variable)


def redis_timeout_ms(store_url: str) -> int:
    """The Redis budget a test server gets: the default on one Redis, where concurrent calls
    share a pipeline; REDIS_TIMEOUT_S on a cluster, where each is a round trip of its own and 50
    of them on a loaded machine are not fast."""
    if is_cluster_url(store_url):
        return int(REDIS_TIMEOUT_S * 1000)
    return Settings().redis_timeout_ms


@pytest.fixture
async def key_prefix(store_url: str) -> AsyncIterator[str]:
    """A prefix no other test uses; every key under it (on every master of a cluster) is
    deleted after the test."""
    prefix = new_key_prefix()
    yield prefix
    await delete_keys_under(store_url, prefix)


def new_key_prefix() -> str:
    """A key prefix no other test uses."""
    return f"jmtest:{uuid.uuid4().hex}:"


async def delete_keys_under(url: str, prefix: str) -> None:
    """Delete every key under `prefix` on the Redis at `url` (every master of a cluster), with a
    client of its own: the test may have closed or broken the ones it was given."""
    cleaner = connect(url, timeout_s=REDIS_TIMEOUT_S)
    try:
        async for key in cleaner.scan_iter(match=f"{prefix}*", count=1000):
            await cleaner.delete(key)
    finally:
        await cleaner.aclose()


@pytest.fixture
async def raw_client(store_url: str) -> AsyncIterator[RedisClient]:
    """A client of the test's own on the Redis the test runs on, to look at what the store
    wrote without going through it."""
    client = connect(store_url, timeout_s=REDIS_TIMEOUT_S)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def store_settings(key_prefix: str) -> Settings:
    """What the `store` fixture's Store is built from: the test's key prefix, STATE_TTL_S, and a
    Redis budget (REDIS_TIMEOUT_S) that a slow moment of a loaded machine does not exceed."""
    return Settings(
        key_prefix=key_prefix,
        state_ttl_s=STATE_TTL_S,
        redis_timeout_ms=int(REDIS_TIMEOUT_S * 1000),
    )


MakeStore = Callable[[Settings], Store]


@pytest.fixture
async def make_store(store_url: str) -> AsyncIterator[MakeStore]:
    """Builds Stores on the test's Redis from settings, as the server builds its own
    (`Store.from_settings`), each with a client of its own; all are closed after the test."""
    made: list[Store] = []

    def make(settings: Settings) -> Store:
        made.append(Store.from_settings(settings, store_url))
        return made[-1]

    try:
        yield make
    finally:
        for store in made:
            await store.close()


@pytest.fixture
def store(make_store: MakeStore, store_settings: Settings) -> Store:
    """A Store under the test's prefix, built from `store_settings`."""
    return make_store(store_settings)


async def start_retail_server(settings: Settings, redis_url: str) -> Running:
    """`create_server` with the retail rules over a Store built from `settings` on `redis_url`,
    as `journeyman serve` builds its own; stopping the server closes the store."""
    store = Store.from_settings(settings, redis_url)
    return await create_server(settings, load_ruleset([str(RULES_DIR / "retail.yaml")]), store)


@dataclass
class Service:
    """A real server on an ephemeral loopback port, over the test's Redis and key prefix."""

    stub: pb_grpc.JourneyServiceStub
    channel: grpc.aio.Channel
    running: Running
    address: str
    settings: Settings


@pytest.fixture
def service_settings(key_prefix: str, store_url: str) -> Settings:
    """Settings of the `service` fixture; a test may override this fixture to change them."""
    return Settings(
        host="127.0.0.1",
        port=0,
        key_prefix=key_prefix,
        grace_period_s=2.0,
        redis_timeout_ms=redis_timeout_ms(store_url),
        # No timer loop: tests replaying events of long ago would see their carts abandoned
        # behind their back; tests/service/test_timers.py turns it on.
        timers=0,
    )


StartService = Callable[[], AbstractAsyncContextManager[Service]]


@pytest.fixture
def start_service(store_url: str, service_settings: Settings) -> StartService:
    """Starts `start_retail_server` with an aio client stub; call it more than once for several
    servers sharing the test's Redis."""

    @asynccontextmanager
    async def started() -> AsyncIterator[Service]:
        running = await start_retail_server(service_settings, store_url)
        address = f"127.0.0.1:{running.port}"
        channel = grpc.aio.insecure_channel(address)
        stub = pb_grpc.JourneyServiceStub(channel)
        try:
            yield Service(stub, channel, running, address, service_settings)
        finally:
            await channel.close()
            await running.stop(0.5)

    return started


@pytest.fixture
async def service(start_service: StartService) -> AsyncIterator[Service]:
    """One server with the retail rules over the test's Redis."""
    async with start_service() as running:
        yield running
