"""Concurrent calls' Redis commands, sent together: one pipeline per event-loop turn.

At 64 calls in flight, each event's load and commit as their own round trips cost more client
CPU (a socket write, a wake-up, a pooled connection taken and given back, redis-py's bookkeeping)
than the rest of the decision. Here every caller queues its commands and awaits its own replies;
the commands queued during one turn of the event loop go out as one non-transactional pipeline on
one connection. Each command keeps its meaning: a pipeline is not a transaction, and the commit
script stays atomic on its own, so batching changes the cost, never the outcome.

While `max_in_flight` pipelines are out, new commands wait for the next one, which therefore
grows with the load (batching is adaptive: one command alone still goes out on the next turn).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import redis.asyncio as redis
from redis.asyncio.client import Pipeline

from server.metrics import REDIS_COMMANDS, REDIS_PIPELINES

# Queues a caller's commands on the shared pipeline; returns how many it queued.
Queue = Callable[[Pipeline], int]

DEFAULT_MAX_IN_FLIGHT = 1
DEFAULT_MAX_COMMANDS = 1024


class _Waiting:
    __slots__ = ("future", "queue")

    def __init__(self, queue: Queue, future: asyncio.Future[list[Any]]) -> None:
        self.queue = queue
        self.future = future


class Pipeliner:
    """Sends the commands of concurrent callers together; each caller gets its own replies.

    Replies are as `Pipeline.execute(raise_on_error=False)` gives them: a command's error (e.g.
    NOSCRIPT) is its reply, an exception object, for its caller to handle. A failure of the whole
    pipeline (the connection broke, a timeout) is raised to every caller in it.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_commands: int = DEFAULT_MAX_COMMANDS,
    ) -> None:
        self._client = client
        self._max_in_flight = max_in_flight
        self._max_commands = max_commands
        self._waiting: list[_Waiting] = []
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.pipelines_sent = 0
        self.commands_sent = 0
        self._sent_at: float | None = None  # loop time the pipeline now out was sent

    def out_s(self) -> float:
        """How long the pipeline now waiting for Redis's replies has been out; 0 if none."""
        if self._sent_at is None:
            return 0.0
        return asyncio.get_running_loop().time() - self._sent_at

    async def send(self, queue: Queue) -> list[Any]:
        """Queue commands with `queue` and wait for their replies, in order."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._waiting.append(_Waiting(queue, future))
        if not self._scheduled and self._in_flight < self._max_in_flight:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        if not self._waiting or self._in_flight >= self._max_in_flight:
            return
        # Callers who gave up (their deadline passed) are not sent.
        waiting = [w for w in self._waiting if not w.future.done()]
        self._waiting = []
        if not waiting:
            return
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._send(waiting))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, waiting: list[_Waiting]) -> None:
        try:
            first = 0
            while first < len(waiting):
                batch, counts = [], []
                pipe = self._client.pipeline(transaction=False)
                while first < len(waiting) and len(pipe) < self._max_commands:
                    batch.append(item := waiting[first])
                    counts.append(item.queue(pipe))
                    first += 1
                await self._execute(pipe, batch, counts)
        finally:
            self._in_flight -= 1
            if self._waiting and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)

    async def _execute(self, pipe: Pipeline, batch: list[_Waiting], counts: list[int]) -> None:
        self.pipelines_sent += 1
        self.commands_sent += len(pipe)
        REDIS_PIPELINES.inc()
        REDIS_COMMANDS.inc(len(pipe))
        self._sent_at = asyncio.get_running_loop().time()
        try:
            replies = await pipe.execute(raise_on_error=False)
        except BaseException as error:
            self._sent_at = None
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            if not isinstance(error, Exception):
                raise  # cancellation (shutdown) goes on up, after the callers are told
            return
        self._sent_at = None
        start = 0
        for item, count in zip(batch, counts, strict=True):
            if not item.future.done():
                item.future.set_result(replies[start : start + count])
            start += count

    async def drain(self) -> None:
        """Wait for the pipelines still out (on shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
