"""A Redis round trip's client CPU: one HSET of a 1,200-byte value (about a customer's record),
sent and its reply read, one at a time, on a unix socket, by three clients:

- **bare**: no client library, the floor on this event loop: `asyncio.open_unix_connection`, the
  command packed by `hiredis.pack_command`, the reply parsed by a `hiredis.Reader`;
- **pipeliner**: what the service sends its loads and commits through now,
  `server.store.pipelining.Pipeliner.send` on a client of `server.store.connection.connect`;
- **redis-py**: redis-py's own pipeline through its pool (`pipeline(transaction=False)`, then
  `execute()`), what the service sent through before the pipeliner kept its connections.

Each client writes a key of its own under the caller's prefix (the caller deletes them). CPU of
this process per round trip, the least of `repeats` runs of `count` round trips after an
untimed one (`benchmarks.engine.timing.least_cpu_us`). `benchmarks.decision_parts` runs it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import hiredis
import redis.asyncio as redis
from redis.asyncio.client import Pipeline

from benchmarks.engine.timing import least_cpu_us
from benchmarks.report.run_figures import RoundTripCpu
from server.store.connection import connect
from server.store.pipelining import Pipeliner

VALUE_BYTES = 1_200
FIELD = "blob"
READ_BYTES = 65_536

# One client's round trips: `count` of them, one at a time; returns how many it made.
RoundTrips = Callable[[int], Coroutine[Any, Any, int]]


async def measure(
    socket: Path, key_prefix: str, count: int, repeats: int, until_s: float
) -> RoundTripCpu:
    """Each client's CPU µs per round trip against the Redis listening on `socket`."""
    value = os.urandom(VALUE_BYTES)
    url = f"unix://{socket}"

    async def timed(round_trips: RoundTrips) -> float:
        return await least_cpu_us(round_trips, lambda: count, repeats, until_s=until_s)

    reader, writer = await asyncio.open_unix_connection(str(socket))
    try:
        bare = await timed(_bare(reader, writer, f"{key_prefix}round-trip:bare", value))
    finally:
        writer.close()
        await writer.wait_closed()
    client = connect(url)
    if not isinstance(client, redis.Redis):  # a unix socket's URL: never a cluster's
        raise TypeError(f"{url} gave a {type(client).__name__}, not one Redis's client")
    pipeliner = Pipeliner(client)
    try:
        through_pipeliner = await timed(
            _pipelined(pipeliner, f"{key_prefix}round-trip:pipeliner", value)
        )
        redis_py = await timed(_redis_py(client, f"{key_prefix}round-trip:redis-py", value))
    finally:
        await pipeliner.drain()
        await client.aclose()
    return {"bare_us": bare, "pipeliner_us": through_pipeliner, "redis_py_us": redis_py}


def _bare(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str, value: bytes
) -> RoundTrips:
    replies = hiredis.Reader()
    command: tuple[Any, ...] = ("HSET", key, FIELD, value)

    async def round_trips(count: int) -> int:
        for _ in range(count):
            # No `drain()`: a reply is awaited before the next write, so nothing piles up.
            writer.write(hiredis.pack_command(command))
            reply = replies.gets()
            while reply is False:
                replies.feed(await reader.read(READ_BYTES))
                reply = replies.gets()
            if isinstance(reply, hiredis.ReplyError):
                raise reply
        return count

    return round_trips


def _pipelined(pipeliner: Pipeliner, key: str, value: bytes) -> RoundTrips:
    def queue(pipe: Pipeline) -> int:
        pipe.hset(key, FIELD, value)
        return 1

    async def round_trips(count: int) -> int:
        for _ in range(count):
            await pipeliner.send(queue)
        return count

    return round_trips


def _redis_py(client: redis.Redis, key: str, value: bytes) -> RoundTrips:
    async def round_trips(count: int) -> int:
        for _ in range(count):
            pipe = client.pipeline(transaction=False)
            pipe.hset(key, FIELD, value)
            await pipe.execute()
        return count

    return round_trips
