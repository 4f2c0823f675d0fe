"""The Redis client a Store runs on, tuned for a hot path that degrades rather than waits: one
Redis (or a proxy in front of many) from a ``redis://``, ``rediss://`` or ``unix://`` URL, or a
Redis Cluster from a ``redis+cluster://`` one (`server/store/cluster.py`)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from server.store.cluster import connect_cluster, is_cluster_url
from server.store.packing import with_hiredis_packing

# The client a Store runs on: one Redis (or a proxy in front of many), or a Redis Cluster.
RedisClient = redis.Redis | RedisCluster


def connect(
    url: str, *, timeout_s: float = 0.25, retries: int = 1, max_connections: int = 256
) -> RedisClient:
    """A client for `url` tuned for a hot path that degrades rather than waits.

    `timeout_s` (seconds) bounds connecting, each reply, and waiting for one of the
    `max_connections` pooled connections; `retries` reconnect attempts follow a connection
    error, with 5-50 ms jittered backoff. redis-py's own defaults would hold a request for
    seconds before the degraded answer (10 retries up to 1 s apart), or fail a burst beyond
    100 connections outright (its plain pool raises instead of waiting).

    A ``redis+cluster://host:port[,host:port...]`` URL (``rediss+cluster://`` for TLS) gives
    redis-py's async `RedisCluster` instead (`server.store.cluster.ClusterClient`), with the same
    timeouts, `retries` retries of a command on a fresh slot map, and at most `max_connections`
    connections to each node (the Store waits, up to `timeout_s`, for a free one). The client
    reads the slot map before its first command; `Store.ping` does it before the server says
    SERVING, and raises StoreUnavailable while no seed node gives one.
    """
    retry = Retry(ExponentialWithJitterBackoff(base=0.005, cap=0.05), retries)
    if is_cluster_url(url):
        return connect_cluster(
            url, timeout_s=timeout_s, retry=retry, max_connections=max_connections
        )
    pool = redis.BlockingConnectionPool.from_url(
        url,
        # RESP2 and no client-info handshake: a new connection's first command goes at once,
        # instead of after HELLO, CLIENT SETINFO and (refused by Redis 7.0) maintenance
        # notifications, three round trips that matter most while Redis is slow.
        protocol=2,
        driver_info=None,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=retry,
    )
    pool.connection_class = with_hiredis_packing(pool.connection_class)
    return redis.Redis.from_pool(pool)


def connection_kwargs(client: RedisClient) -> dict[str, Any]:
    """The options `client` opens its connections with (decode_responses, timeouts...)."""
    if isinstance(client, RedisCluster):
        return client.get_connection_kwargs()
    return client.connection_pool.connection_kwargs
