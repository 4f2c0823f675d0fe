"""Fixtures for tests against a real Redis: JOURNEYMAN_TEST_REDIS_URL, or an embedded one.

Each test gets its own key prefix and, at teardown, deletes only the keys under it, so the suite
can run against a shared Redis without flushing anything.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import grpc
import pytest
import redis.asyncio as redis

from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.core.config import Settings
from server.rules.rulesource import load_ruleset
from server.runtime.app import Running, create_server
from server.runtime.embedded_redis import start_embedded_redis
from server.store.redis_store import Store
from tests.rulesets import RULES_DIR

TEST_REDIS_URL_VARIABLE = "JOURNEYMAN_TEST_REDIS_URL"
STATE_TTL_S = 3600
# The `store` fixture's Redis budget: a slow moment of a loaded machine (50 concurrent calls on two
# cores) is not an unreachable Redis.
REDIS_TIMEOUT_MS = 2000


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis the service tests use: the environment's, or an embedded one for the session."""
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
def redis_is_ours(redis_url: str) -> bool:
    """True when the suite started the Redis itself, so server-wide commands cannot hurt others."""
    return not os.environ.get(TEST_REDIS_URL_VARIABLE)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.Redis]:
    """A fresh client per test (each test runs in its own event loop)."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def key_prefix(redis_url: str) -> AsyncIterator[str]:
    """A prefix no other test uses; every key under it is deleted after the test."""
    prefix = f"jmtest:{uuid.uuid4().hex}:"
    yield prefix
    # Its own client, because the test may have closed or broken the one it was given.
    cleaner = redis.Redis.from_url(redis_url)
    try:
        async for key in cleaner.scan_iter(match=f"{prefix}*", count=1000):
            await cleaner.delete(key)
    finally:
        await cleaner.aclose()


@pytest.fixture
def store_settings(key_prefix: str) -> Settings:
    """What the `store` fixture's Store is built from: the test's key prefix, STATE_TTL_S and
    REDIS_TIMEOUT_MS; a test builds a Store of other settings from `with_overrides`."""
    return Settings(
        key_prefix=key_prefix, state_ttl_s=STATE_TTL_S, redis_timeout_ms=REDIS_TIMEOUT_MS
    )


@pytest.fixture
async def store(redis_url: str, store_settings: Settings) -> AsyncIterator[Store]:
    """A Store built as the server builds its own (`Store.from_settings`), under the test's
    prefix, with a client of its own."""
    store = Store.from_settings(store_settings, redis_url)
    try:
        yield store
    finally:
        await store.close()


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
def service_settings(key_prefix: str) -> Settings:
    """Settings of the `service` fixture; a test may override this fixture to change them."""
    return Settings(host="127.0.0.1", port=0, key_prefix=key_prefix, grace_period_s=2.0)


@pytest.fixture
async def service(redis_url: str, service_settings: Settings) -> AsyncIterator[Service]:
    """`create_server` with the retail rules, a store of its own, and an aio client stub."""
    running = await start_retail_server(service_settings, redis_url)
    address = f"127.0.0.1:{running.port}"
    channel = grpc.aio.insecure_channel(address)
    try:
        yield Service(
            pb_grpc.JourneyServiceStub(channel), channel, running, address, service_settings
        )
    finally:
        await channel.close()
        await running.stop(0.5)
