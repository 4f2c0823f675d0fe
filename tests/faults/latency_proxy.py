"""A TCP fault proxy for tests: sits between a client and a Redis on loopback, and on command
adds latency (per direction, changeable while connections are open) or black-holes the link.

It runs on an asyncio loop of its own in a daemon thread, so a test (sync or async) drives it
with plain method calls::

    with LatencyProxy("127.0.0.1", redis_port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        proxy.set_latency(0.3)       # every byte now arrives 300 ms late, in both directions
        proxy.black_hole()           # connections are accepted; nothing is forwarded
        proxy.heal()                 # back to a plain pipe

Latency is measured from when a chunk arrived at the proxy, against the latency in force now:
lowering it releases the chunks already waiting, the way a congested link drains. Bytes are
never reordered or lost, except in a black hole, which drops them like a partition that ends in
resets: when it lifts, every connection that lost bytes is closed (its byte stream is broken),
and the client reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, TypeVar

READ_CHUNK_BYTES = 65_536
START_TIMEOUT_S = 5.0
_CONTROL_TIMEOUT_S = 5.0
_EOF = b""  # queued after the last chunk of a direction: the sender closed its side
T = TypeVar("T")


class Direction(StrEnum):
    TO_SERVER = "to_server"  # client -> Redis: commands
    TO_CLIENT = "to_client"  # Redis -> client: replies


@dataclass
class ProxyCounts:
    """What went through the proxy since it started (or since `reset_counts`)."""

    connections: int = 0
    chunks_forwarded: dict[Direction, int] = field(
        default_factory=lambda: dict.fromkeys(Direction, 0)
    )
    chunks_dropped: int = 0  # read (from either side) while black-holed, never sent on


@dataclass(eq=False)  # links are kept in a set, by identity
class _Link:
    """One client connection and its connection to Redis."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    queues: dict[Direction, deque[tuple[float, bytes]]] = field(
        default_factory=lambda: {d: deque() for d in Direction}
    )
    lost_bytes: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in (self.client, self.server):
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


class LatencyProxy:
    """A loopback TCP proxy to `upstream_host:upstream_port` with run-time faults."""

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0  # the listening port, known once started
        self.counts = ProxyCounts()
        self._latency_s = dict.fromkeys(Direction, 0.0)
        self._black_hole = False
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="latency-proxy")
        self._thread.daemon = True  # never keeps a failed test run alive
        self._changed: asyncio.Event | None = None  # wakes the pumps waiting out a latency
        self._server: asyncio.Server | None = None

    # --- control, from any thread ------------------------------------------------------------

    def start(self) -> LatencyProxy:
        """Listen on a free port of `host`; returns once connections are accepted."""
        self._thread.start()
        self._call(self._listen(), timeout_s=START_TIMEOUT_S)
        return self

    def set_latency(self, seconds: float, direction: Direction | None = None) -> None:
        """Delay every byte by `seconds` in `direction` (both when None), from now on, including
        the bytes already waiting in the proxy."""
        if seconds < 0:
            raise ValueError(f"latency of {seconds} s: give 0 or more seconds")
        directions = list(Direction) if direction is None else [direction]

        async def apply() -> None:
            for each in directions:
                self._latency_s[each] = seconds
            self._wake_pumps()

        self._call(apply())

    def black_hole(self) -> None:
        """Accept connections and read what clients send, but forward nothing either way."""

        async def apply() -> None:
            self._black_hole = True

        self._call(apply())

    def heal(self) -> None:
        """No latency, no black hole. Connections that lost bytes in the black hole are closed,
        as their byte streams can no longer be parsed."""
        self._call(self._heal())

    def pending_chunks(self) -> int:
        """Chunks read but not yet forwarded (waiting out a latency)."""

        async def count() -> int:
            return sum(len(q) for link in self._links for q in link.queues.values())

        return self._call(count())

    def wait_drained(self, timeout_s: float = 10.0) -> None:
        """Return once nothing waits in the proxy; raise TimeoutError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.pending_chunks():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the proxy still holds bytes after {timeout_s} s")
            time.sleep(0.01)

    def reset_counts(self) -> ProxyCounts:
        """The counts so far; counting starts again from zero."""

        async def swap() -> ProxyCounts:
            counts, self.counts = self.counts, ProxyCounts()
            return counts

        return self._call(swap())

    def stop(self) -> None:
        """Close every connection and the listener, then end the proxy's thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(TimeoutError, RuntimeError):
            self._call(self._close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_CONTROL_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = _CONTROL_TIMEOUT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    # --- on the proxy's loop -----------------------------------------------------------------

    async def _listen(self) -> None:
        self._changed = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def _wake_pumps(self) -> None:
        assert self._changed is not None
        self._changed.set()
        self._changed = asyncio.Event()  # the next wait starts unset

    async def _heal(self) -> None:
        self._black_hole = False
        for each in Direction:
            self._latency_s[each] = 0.0
        for link in [link for link in self._links if link.lost_bytes]:
            self._drop(link)
        self._wake_pumps()

    async def _close_all(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            self._drop(link)

    def _drop(self, link: _Link) -> None:
        link.close()
        self._links.discard(link)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()  # Redis is down: the client sees its connection closed
            return
        link = _Link(client=writer, server=upstream_writer)
        self._links.add(link)
        loop = asyncio.get_running_loop()
        link.tasks = [
            loop.create_task(self._read(link, reader, Direction.TO_SERVER)),
            loop.create_task(self._read(link, upstream_reader, Direction.TO_CLIENT)),
            loop.create_task(self._forward(link, Direction.TO_SERVER, upstream_writer)),
            loop.create_task(self._forward(link, Direction.TO_CLIENT, writer)),
        ]

    async def _read(self, link: _Link, reader: asyncio.StreamReader, direction: Direction) -> None:
        queue = link.queues[direction]
        while True:
            try:
                chunk = await reader.read(READ_CHUNK_BYTES)
            except OSError:
                chunk = _EOF
            if chunk and self._black_hole:
                link.lost_bytes = True
                self.counts.chunks_dropped += 1
                continue
            queue.append((time.monotonic(), chunk))
            self._wake_pumps()
            if chunk == _EOF:
                return

    async def _forward(
        self, link: _Link, direction: Direction, destination: asyncio.StreamWriter
    ) -> None:
        """Send each chunk once its latency is over; at the end of the stream, close the link
        (after the data queued before it, as TCP delivers data sent before a close)."""
        queue = link.queues[direction]
        while True:
            assert self._changed is not None
            changed = self._changed
            if not queue or self._black_hole:
                await changed.wait()
                continue
            arrived_at, chunk = queue[0]
            wait_s = arrived_at + self._latency_s[direction] - time.monotonic()
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), wait_s)
                continue
            queue.popleft()
            if chunk == _EOF:
                self._drop(link)
                return
            try:
                destination.write(chunk)
                await destination.drain()
            except OSError:
                self._drop(link)
                return
            self.counts.chunks_forwarded[direction] += 1
