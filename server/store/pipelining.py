"""Concurrent calls' Redis commands, sent together: one pipeline per batch of callers.

At 64 calls in flight, each event's load and commit as their own round trips cost more client
CPU (a socket write, a wake-up, a pooled connection taken and given back, redis-py's bookkeeping)
than the rest of the decision. Here every caller queues its commands and awaits its own replies;
the callers gathered by the coalescer (`server.core.coalescer`) go out as one non-transactional
pipeline on one connection. Each command keeps its meaning: a pipeline is not a transaction, and
the commit script stays atomic on its own, so batching changes the cost, never the outcome.

A pipeline goes out on a connection the pipeliner keeps between pipelines (one per pipeline in
flight), through redis-py's connection API: taking a connection from redis-py's pool and giving
it back costs ~35 us of CPU per round trip, and its `Pipeline.execute` ~20 us more (retries,
observability hooks, HIMPORT bookkeeping), against ~60 us for the whole round trip here.
Replies, errors and the reconnect-and-retry on a connection error are redis-py's own: each reply
is read with `Pipeline.parse_response`, under the client's retry policy. The timeout is the
pipeliner's: redis-py bounds each write with `asyncio.wait_for` (a task and two more turns of the
event loop) and each reply with a timeout context of its own; the pipeliner keeps one deadline per
round trip instead, the client's socket timeout from the write to the first reply and again from
each reply to the next, so a large pipeline is not cut short for its size and a Redis that stops
answering is still noticed (measured here, medians of 16 alternations: a pipeline of 32 commands
432 -> 333 us of CPU, of one command 101 -> 98 us).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis.asyncio as redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.core.coalescer import QUIET_S, Coalescer
from server.core.metrics import BATCHES, REDIS_COMMANDS, REDIS_PIPELINES
from server.store.waiting import Abandoned, SentAt

# Queues a caller's commands on the shared pipeline; returns how many it queued.
Queue = Callable[[Pipeline], int]

DEFAULT_MAX_IN_FLIGHT = 1
DEFAULT_MAX_COMMANDS = 1024
# Turns of the event loop a pipeline waits for more commands while the server has other calls
# (the decider waits before it decides, this after): at concurrency 64, batches of concurrent
# Decide calls took 2.2 calls with the decider's wait alone and 3 with both, and about 10 % more
# calls were answered. A lone caller's commands go out at once, from its own task.
LINGER_TURNS = 4


class _Raised:
    """A caller's share of a pipeline that failed as a whole (the connection broke, a timeout)."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class Pipeliner:
    """Sends the commands of concurrent callers together; each caller gets its own replies.

    Replies are as `Pipeline.execute(raise_on_error=False)` gives them: a command's error (e.g.
    NOSCRIPT) is its reply, an exception object, for its caller to handle. A failure of the whole
    pipeline is raised to every caller in it. More than `max_commands` commands go out as
    several pipelines, one after the other.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_commands: int = DEFAULT_MAX_COMMANDS,
        linger_turns: int = 0,
        company: Callable[[], bool] = lambda: False,
    ) -> None:
        """While `company()` says other calls are in the server, a pipeline waits
        `linger_turns` turns of the event loop for more callers (`server.core.coalescer`)."""
        self._client = client
        self._max_commands = max_commands
        # The budget of each reply (None: no timeout), kept by the pipeliner (see the module): the
        # connections it keeps have redis-py's own timeout off while they are its.
        self._reply_timeout_s: float | None = client.connection_pool.connection_kwargs.get(
            "socket_timeout"
        )
        self._callers: Coalescer[Queue, list[Any] | _Raised] = Coalescer(
            self._send, max_in_flight=max_in_flight, linger_turns=linger_turns, company=company,
            quiet_s=QUIET_S,
        )  # fmt: skip
        self.pipelines_sent = 0
        self.commands_sent = 0
        self._sent_at: SentAt | None = None  # when the pipeline now out was sent
        self._abandoned = Abandoned(self._reply_timeout_s)
        self._kept: list[Connection] = []  # taken from the pool, free between pipelines

    def redis_s(self) -> float:
        """How long Redis has kept the pipeline now out waiting for its replies (or one just
        abandoned unanswered before it: `server.store.waiting.Abandoned`), apart from this
        server's own work meanwhile (`server.store.waiting`); 0 if neither is."""
        oldest = self._abandoned.oldest(self._sent_at)
        return 0.0 if oldest is None else oldest.redis_s()

    async def send(self, queue: Queue) -> list[Any]:
        """Queue commands with `queue` and wait for their replies, in order."""
        replies = await self._callers.submit(queue, alone=self._send_alone)
        assert replies is not None  # no patience given: the caller waits (or is cancelled)
        if isinstance(replies, _Raised):
            raise replies.error
        return replies

    async def _send_alone(self, queue: Queue) -> list[Any] | _Raised:
        return (await self._send((queue,), _anyone))[0]

    async def _send(
        self, queues: Sequence[Queue], waiting: Callable[[int], bool]
    ) -> list[list[Any] | _Raised]:
        """The callers' commands in pipelines of up to `max_commands`; their replies."""
        replies: list[list[Any] | _Raised] = []
        first = 0
        while first < len(queues):
            pipe = self._client.pipeline(transaction=False)
            counts: list[int] = []
            while first + len(counts) < len(queues) and len(pipe) < self._max_commands:
                counts.append(queues[first + len(counts)](pipe))
            replies += await self._execute(pipe, counts)
            first += len(counts)
        return replies

    async def _execute(self, pipe: Pipeline, counts: list[int]) -> list[list[Any] | _Raised]:
        self.pipelines_sent += 1
        self.commands_sent += len(pipe)
        BATCHES.inc(REDIS_PIPELINES)
        BATCHES.inc(REDIS_COMMANDS, len(pipe))
        self._sent_at = sent_at = SentAt.now()
        try:
            replies = await self._round_trip(pipe)
        except BaseException as error:
            self._abandoned.add(sent_at)
            if not isinstance(error, Exception):
                raise  # cancelled
            return [_Raised(error)] * len(counts)
        finally:
            self._sent_at = None
        self._abandoned.answered()
        shares: list[list[Any] | _Raised] = []
        start = 0
        for count in counts:
            shares.append(replies[start : start + count])
            start += count
        return shares

    async def _round_trip(self, pipe: Pipeline) -> list[Any]:
        """`pipe`'s commands sent and their replies read on a kept connection, retried as
        redis-py retries a pipeline (a connection error or timeout: the connection is closed and
        the pipeline sent again on a new one, as often as the client's retry policy says). A
        connection that failed goes back to the pool, which opens a new one when next asked."""
        if not pipe.command_stack:
            return []
        connection = self._kept.pop() if self._kept else await self._take_connection()
        try:
            replies = await connection.retry.call_with_retry(
                lambda: _send_and_read(pipe, connection, self._reply_timeout_s),
                lambda error, failures: connection.disconnect(),
                with_failure_count=True,
            )
        except BaseException:
            await self._give_back(connection)
            raise
        self._kept.append(connection)
        return replies

    async def _take_connection(self) -> Connection:
        pool = self._client.connection_pool
        connection = cast(Connection, await pool.get_connection())  # type: ignore[no-untyped-call]
        connection.socket_timeout = None  # the pipeliner's deadline bounds its round trips
        return connection

    async def _give_back(self, connection: Connection) -> None:
        connection.socket_timeout = self._reply_timeout_s  # as the pool's other users expect
        await self._client.connection_pool.release(connection)

    async def drain(self) -> None:
        """Wait for the pipelines still out, then give the kept connections back to the pool
        (on shutdown)."""
        await self._callers.drain()
        kept, self._kept = self._kept, []
        for connection in kept:
            await self._give_back(connection)


def _anyone(index: int) -> bool:
    return True


async def _send_and_read(
    pipe: Pipeline, connection: Connection, reply_timeout_s: float | None
) -> list[Any]:
    """One round trip of `pipe`'s commands, each reply within `reply_timeout_s` of the write or
    of the reply before (a timeout is redis-py's TimeoutError, which its retry policy retries):
    a command's error (a ResponseError) is its reply; any other failure closes the connection,
    whose unread replies no one else must get."""
    commands = pipe.command_stack
    replies: list[Any] = []
    try:
        async with asyncio.timeout(None) as timeout:
            deadline = _ReplyDeadline(timeout, reply_timeout_s)
            try:
                await connection.send_packed_command(
                    connection.pack_commands([args for args, _ in commands]), check_health=False
                )
                for args, options in commands:
                    try:
                        replies.append(await pipe.parse_response(connection, args[0], **options))
                    except ResponseError as error:
                        replies.append(error)
                    deadline.replied()
            finally:
                deadline.cancel()
    except TimeoutError:
        await connection.disconnect(nowait=True)
        raise RedisTimeoutError(f"Redis did not answer within {reply_timeout_s} s") from None
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    return replies


class _ReplyDeadline:
    """A round trip's budget: `timeout_s` from the write to the first reply and again from each
    reply to the next (None: no budget). A reply only notes the time; the one timer, when it
    goes off before the budget is spent, sets itself again for the budget's end, and when it is
    spent expires `timeout`. Rescheduling asyncio's timeout at every reply instead (a timer
    cancelled, a new one set) cost a fifth of the client's CPU per command, measured here on
    uvloop (medians of 8 alternations, HSETs of 100 B): pipelines of 16, 14.9 -> 12.7 us a
    command; of 200, 10.2 -> 7.3 us."""

    __slots__ = ("_loop", "_timeout", "_timeout_s", "_replied_at", "_timer")

    def __init__(self, timeout: asyncio.Timeout, timeout_s: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._timeout_s = timeout_s
        self._replied_at = self._loop.time()  # the write's start counts as the first
        self._timer: asyncio.TimerHandle | None = None
        if timeout_s is not None:
            self._timer = self._loop.call_at(self._replied_at + timeout_s, self._due)

    def replied(self) -> None:
        self._replied_at = self._loop.time()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _due(self) -> None:
        assert self._timeout_s is not None  # no timer without a budget
        spent_at = self._replied_at + self._timeout_s
        if self._loop.time() >= spent_at:
            self._timeout.reschedule(spent_at)  # in the past: the round trip's block times out
        else:
            self._timer = self._loop.call_at(spent_at, self._due)
