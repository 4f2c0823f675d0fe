"""Cluster URLs, the client `connect` builds for them, and the call slots; no Redis needed."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis
import redis.exceptions as redis_errors

from server.core.config import Settings
from server.store.cluster import (
    CallSlots,
    ClusterClient,
    ClusterURL,
    is_cluster_url,
    parse_cluster_url,
)
from server.store.connection import connect
from server.store.redis_store import Store


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("redis+cluster://a:7000", ClusterURL((("a", 7000),), "redis://a:7000")),
        (
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,db-3",
            ClusterURL(
                (("10.0.0.1", 7000), ("10.0.0.2", 7001), ("db-3", 6379)),
                "redis://10.0.0.1:7000",
            ),
        ),
        (
            "rediss+cluster://jm:s3cret@a:7000,[::1]:7001/0?ssl_cert_reqs=none",
            ClusterURL(
                (("a", 7000), ("::1", 7001)), "rediss://jm:s3cret@a:7000/0?ssl_cert_reqs=none"
            ),
        ),
    ],
)
def test_cluster_urls_name_their_seed_nodes(url: str, parsed: ClusterURL) -> None:
    assert is_cluster_url(url)
    assert parse_cluster_url(url) == parsed


@pytest.mark.parametrize("url", ["redis://a:6379/0", "rediss://a", "unix:///tmp/redis.sock"])
def test_plain_urls_are_not_cluster_urls(url: str) -> None:
    assert not is_cluster_url(url)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("redis+cluster://a:7000/2", "database 0 only"),
        ("redis+cluster://a:port", "not host:port"),
        ("redis+cluster://a:7000,,b:7001", "not host:port"),
        ("redis+cluster://::1:7000", "[::1]:7000"),
        ("redis+cluster://", "not host:port"),
    ],
)
def test_bad_cluster_urls_say_what_to_write(url: str, said: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)" + said.replace("[", r"\[").replace("]", r"\]")):
        parse_cluster_url(url)


def test_a_bad_url_error_hides_the_password() -> None:
    with pytest.raises(ValueError, match="database") as raised:
        parse_cluster_url("redis+cluster://jm:s3cret@a:7000/3")
    assert "s3cret" not in str(raised.value) and "jm:***@a:7000" in str(raised.value)


async def test_connect_gives_a_cluster_client_with_the_hot_path_limits() -> None:
    client = connect("redis+cluster://a:7000,b:7001", timeout_s=0.3, retries=2, max_connections=9)
    try:
        assert isinstance(client, ClusterClient)
        options = client.get_connection_kwargs()
        assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.3
        assert options["max_connections"] == 9  # per node
        assert client.retry.get_retries() == 2
        assert {node.name for node in client.startup_nodes} == {"a:7000", "b:7001"}
        Store(client, Settings())  # binary replies: accepted
    finally:
        await client.aclose()


async def test_connect_keeps_plain_urls_on_one_blocking_pool() -> None:
    client = connect("redis://127.0.0.1:6399/0", timeout_s=0.3, max_connections=7)
    try:
        assert isinstance(client, redis.Redis)
        assert isinstance(client.connection_pool, redis.BlockingConnectionPool)
        assert client.connection_pool.max_connections == 7
    finally:
        await client.aclose()


async def test_a_cluster_client_that_decodes_replies_is_refused() -> None:
    client = ClusterClient(host="127.0.0.1", port=7000, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses=False"):
            Store(client, Settings())
    finally:
        await client.aclose()


async def test_call_slots_wait_their_turn_then_give_up_with_a_connection_error() -> None:
    slots = CallSlots(limit=2, timeout_s=0.05)
    order: list[str] = []

    async def call(name: str, hold_s: float) -> None:
        async with slots.held():
            order.append(f"{name} in")
            await asyncio.sleep(hold_s)
            order.append(f"{name} out")

    await asyncio.gather(call("a", 0.01), call("b", 0.01), call("c", 0))
    assert order.index("c in") > min(order.index("a out"), order.index("b out"))
    async with slots.held(), slots.held():
        with pytest.raises(redis_errors.ConnectionError, match="all 2 connections"):
            async with slots.held():
                pass
