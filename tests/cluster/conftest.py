"""The tests under tests/cluster/ run on the session's Redis Cluster (`cluster_url`,
tests/conftest.py); tests that stop, pause or fail over nodes start a cluster of their own
(`start_cluster`), so the session's cluster stays whole for the others."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from tests.redis_cluster import (
    LocalCluster,
    StartCluster,
    binaries,
    cluster_connect,
    no_cluster_reason,
    start_local_cluster_retrying,
)


@pytest.fixture
def store_url(cluster_url: str) -> str:
    """The Redis these tests run on: the session's cluster."""
    return cluster_url


@pytest.fixture
def start_cluster(tmp_path: Path) -> Iterator[StartCluster]:
    """Starts a Redis Cluster of the test's own (`start_local_cluster`'s keyword arguments), for
    tests that stop or fail over its nodes; every one started is stopped at the end."""
    found = binaries()
    if found is None:
        pytest.skip(no_cluster_reason())
    started: list[LocalCluster] = []

    def start(**options: int) -> LocalCluster:
        number = len(started)
        directory = lambda attempt: tmp_path / f"cluster-{number}-{attempt}"  # noqa: E731
        started.append(start_local_cluster_retrying(found, directory, **options))
        return started[-1]

    try:
        yield start
    finally:
        for cluster in started:
            cluster.stop()


@pytest.fixture
async def cluster_client(cluster_url: str) -> AsyncIterator[RedisCluster]:
    """A cluster client of the test's own (each test runs in its own event loop), initialised."""
    client = cluster_connect(cluster_url)
    try:
        await client.initialize()
        yield client
    finally:
        await client.aclose()
