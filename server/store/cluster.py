"""Redis Cluster URLs, and redis-py's async cluster client made fit for journeyman's hot path.

A cluster URL names one or more seed nodes; the client asks a seed for the slot map (CLUSTER
SLOTS) and from then on sends each command straight to the master of its keys' slot::

    redis+cluster://[user:password@]host:port[,host:port...][/0][?option=value...]
    rediss+cluster://...        the same over TLS (options as for rediss://, e.g. ssl_cert_reqs)

Credentials, TLS and the query options apply to every node, as redis-py's own ``from_url`` reads
them; a cluster has database 0 only.

The client reads the slot map before its first command (and again after redis-py drops it on a
failover or connection error); `Store.ping` does it explicitly, so the server says SERVING only
once the map is known and every master answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import redis.exceptions as redis_errors
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.typing import EncodableT

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
DEFAULT_PORT = 6379
_PASSWORD = re.compile(r"(://[^:@/?#]*:)[^@/?#]*@")


class SlotMapUnavailable(redis_errors.RedisClusterException):
    """No seed node gave a complete slot map: none answered, one is not in cluster mode, or some
    slots have no master. Chained to redis-py's own RedisClusterException."""


# Cluster conditions that mean "the state is not reachable right now" rather than "the command
# was wrong": ClusterError covers ClusterDownError (uncovered slots, failover in progress),
# MasterDownError and redis-py's "TTL exhausted" (redirections that never settled); TRYAGAIN is a
# slot being migrated; SlotNotCoveredError a slot missing from the map; redis-py 8.2's
# RedisClusterUnreachableError a slot map refresh that reached no node (older versions raise a
# bare RedisClusterException there, which ClusterClient.initialize turns into SlotMapUnavailable).
# Every other RedisClusterException (keys of two slots in one command, say) stays a programming
# error, unless it was raised from one of these or a connection error (see `error_chain`).
CLUSTER_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ClusterError,
    redis_errors.TryAgainError,
    redis_errors.SlotNotCoveredError,
    SlotMapUnavailable,
    getattr(redis_errors, "RedisClusterUnreachableError", SlotMapUnavailable),
)


class ClusterClient(RedisCluster):
    """redis-py's async RedisCluster, with the slot map read before every command.

    redis-py 8.1 picks a command's route before it reads a missing slot map, so a command sent
    to a fresh client, or just after the client dropped its map (CLUSTERDOWN, a connection
    error, every fifth MOVED), goes to a random master and comes back MOVED; a burst of them
    makes the client close every connection, in-flight calls' included, and start again.
    Reading the map first costs one attribute check once it is known. A failed read raises
    SlotMapUnavailable instead of a bare RedisClusterException, so it can be told from a bug.
    """

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        """Read the slot map unless it is known; SlotMapUnavailable when no seed gives one."""
        try:
            return await super().initialize(*args, **kwargs)
        except redis_errors.RedisClusterException as error:
            raise SlotMapUnavailable(f"cannot read the cluster's slot map: {error}") from error

    async def execute_command(self, *args: EncodableT, **kwargs: Any) -> Any:
        """redis-py's routing and retries, once the slot map is known."""
        await self.initialize()
        return await super().execute_command(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class ClusterURL:
    """A parsed cluster URL: the seed nodes, and the plain URL of the first one, which carries
    the credentials, TLS scheme and options every node connection uses."""

    seeds: tuple[tuple[str, int], ...]
    node_url: str


def is_cluster_url(url: str) -> bool:
    """True for a ``redis+cluster://`` or ``rediss+cluster://`` URL."""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def parse_cluster_url(url: str) -> ClusterURL:
    """Split a cluster URL into its seed nodes; ValueError names what is wrong and the fix."""
    scheme, _, rest = url.partition("://")
    plain_scheme = CLUSTER_SCHEMES.get(scheme.lower())
    if plain_scheme is None:
        raise ValueError(f"{_redacted(url)} is not a cluster URL; write redis+cluster://host:port")
    authority, slash, tail = _split_authority(rest)
    credentials, at, hosts = authority.rpartition("@")
    seeds = tuple(_seed(entry, url) for entry in hosts.split(","))
    path = urlsplit(f"{plain_scheme}://x{slash}{tail}").path
    if path.strip("/") not in ("", "0"):
        raise ValueError(
            f"{_redacted(url)} selects database {path.strip('/')!r}; a Redis Cluster has"
            " database 0 only: drop the path or write /0"
        )
    host, port = seeds[0]
    netloc = f"{credentials}{at}{_bracketed(host)}:{port}"
    return ClusterURL(seeds=seeds, node_url=f"{plain_scheme}://{netloc}{slash}{tail}")


def connect_cluster(
    url: str, *, timeout_s: float, retry: Retry, max_connections: int
) -> ClusterClient:
    """An async cluster client for `url`: `timeout_s` bounds connecting and each reply,
    `retry` sets how often a command is retried after a connection error or CLUSTERDOWN (each
    time on a freshly read slot map), `max_connections` caps the connections to each node.

    redis-py's node pools do not wait for a free connection, they raise MaxConnectionsError;
    `Store` keeps its calls in flight at or below `max_connections` so that never happens.
    A slot map with uncovered slots is refused (SlotMapUnavailable), as redis-server itself
    refuses keys then by default (cluster-require-full-coverage yes).
    """
    parsed = parse_cluster_url(url)
    client = ClusterClient.from_url(
        parsed.node_url,
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.seeds[1:]],
        max_connections=max_connections,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=retry,
    )
    return cast(ClusterClient, client)  # from_url builds `cls`; its annotation says the base


class CallSlots:
    """At most `limit` store calls in flight on a cluster client, each waiting at most
    `timeout_s` (None: no limit) for its turn.

    A store call takes at most one connection per node (one slot's keys, or one pipeline split
    per node), so `limit` = the client's `max_connections` keeps every node's pool from running
    dry: redis-py would raise MaxConnectionsError there, and on a pipeline treat it as a failed
    cluster, close every connection and sleep 250 ms. Waiting too long raises ConnectionError,
    as redis-py's blocking pool does for a plain client.
    """

    def __init__(self, limit: int, timeout_s: float | None) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self._free = asyncio.Semaphore(limit)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Hold one slot for the body of the `async with`."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._free.acquire()
        except TimeoutError as error:
            raise redis_errors.ConnectionError(
                f"all {self.limit} connections per cluster node stayed busy for"
                f" {self.timeout_s} s; raise max_connections or lower the calls in flight"
            ) from error
        try:
            yield
        finally:
            self._free.release()


def error_chain(error: BaseException) -> list[BaseException]:
    """`error`, the error it was raised from (or while handling), that one's, and so on: the
    chain a traceback prints.

    redis-py reports a failed slot map refresh as a bare RedisClusterException, the same type
    as a command with keys in two slots. What tells them apart is the chain: since redis-py 8.2
    a command that meets CLUSTERDOWN (or a connection error) refreshes the map itself and raises
    the refresh's error from within that handler, so the CLUSTERDOWN is in the chain.
    """
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        suppressed = current.__suppress_context__
        current = current.__cause__ or (None if suppressed else current.__context__)
    return chain


def call_slots(client: RedisCluster) -> CallSlots:
    """The CallSlots matching `client`'s per-node pool size and reply timeout."""
    kwargs = client.get_connection_kwargs()
    # RedisCluster always sets both; only its annotation says Optional.
    limit, timeout_s = kwargs["max_connections"], kwargs["socket_timeout"]
    return CallSlots(cast(int, limit), cast(float | None, timeout_s))


def _split_authority(rest: str) -> tuple[str, str, str]:
    """``user@h1:1,h2:2/0?x=1`` -> (``user@h1:1,h2:2``, ``/``, ``0?x=1``), any of them empty."""
    for index, char in enumerate(rest):
        if char in "/?#":
            slash = "/" if char == "/" else ""
            return rest[:index], slash, rest[index + len(slash) :]
    return rest, "", ""


def _seed(entry: str, url: str) -> tuple[str, int]:
    host, port = entry, str(DEFAULT_PORT)
    if entry.startswith("["):  # [IPv6] or [IPv6]:port
        host, _, after = entry[1:].partition("]")
        port = after.removeprefix(":") if after else port
    elif ":" in entry:
        host, _, port = entry.partition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65_536:
        raise ValueError(
            f"{_redacted(url)} has a seed node {entry!r} that is not host:port;"
            " list the nodes as host:port,host:port (IPv6 as [::1]:7000)"
        )
    return host, int(port)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _redacted(url: str) -> str:
    """The URL without its password, for error messages."""
    return _PASSWORD.sub(r"\1***@", url)
