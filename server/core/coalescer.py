"""Concurrent callers' work gathered into batches: the one batching idea of the server.

Each caller submits an item and awaits its own reply. Items submitted while `max_in_flight`
batches are out gather into the next one, which so grows with the load: alone, an item goes on
the next turn of the event loop (or at once, see below). When other callers are about
(`company`), a batch may also wait a few turns more (`linger_turns`) before it takes what was
queued: under load, calls reach the server a turn or two apart, and the more of them share a
batch, the less each pays of its fixed cost. The batch function gets the items and whether
each caller still waits for its reply (one who gave up, at its patience or by cancellation, is
not sent at all if it left before the batch started, and its item may be skipped if during).

A caller with no one to batch with (no batch out or queued, no company, and nothing to do for
`quiet_s` before it came) may be served in its own task instead (`alone`): one call at a time then
pays for no task, future or loop turn of the batching, and what others submit meanwhile gathers
into the next batch as usual.

A coalescer that has had no idle moment for a while (`Hold.saturated_after_s`) is saturated:
callers queue faster than batches end. There a small batch may also be held a few milliseconds
(`Hold`) while callers keep coming. gRPC hands the event loop its new unary calls slowly: at
concurrency 64 a batch of Decide calls took 3 of them whether it lingered 4 turns or 16, and 17
when it waited in steps of a millisecond; each batch pays a round's fixed cost (a task, two Redis
round trips, the bookkeeping), so rounds of 3 spend the saturated server's CPU on that instead
of on more calls.

Used for concurrent Decide calls (`server.decisions.decider`) and for concurrent Redis commands, one
pipeline per batch (`server.store.pipelining`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

# How long the server's coalescers (Decide calls, Redis pipelines) must have had nothing to do
# before a caller is served alone: the first call of a burst finds a coalescer idle too, and
# served alone it would hold the rest of the burst for a whole round. At concurrency 64 the next
# call comes within a turn or two of the last answer (served alone after any idle moment, a
# fifth of the Decide calls were, and 10-15 % fewer were answered); one call at a time, a
# caller's next call comes a network round trip later.
QUIET_S = 0.0002

Item = TypeVar("Item")
Reply = TypeVar("Reply")

# The batch function: the items, and whether the caller of item i still waits; a reply per item.
Batch = Callable[[Sequence[Item], Callable[[int], bool]], Awaitable[Sequence[Reply]]]


@dataclass(frozen=True, slots=True)
class Hold:
    """How a small batch of a saturated coalescer waits for more callers: in steps of `step_s`
    (an event loop timer: uvloop's are whole milliseconds), while it has fewer than `until`
    callers and each step brought at least `growth` more, `max_s` at most in all. Saturated:
    no idle moment for `saturated_after_s`. A server with idle moments (a lone caller, a
    moderate load) never holds, so its latency is unchanged; nor does a batch that is large
    already (a stream's messages come many to a turn). A batch is held after it lingered
    (`Coalescer`'s `linger_turns`, with company): a coalescer without those never holds."""

    until: int
    max_s: float
    step_s: float = 0.001
    growth: int = 2
    saturated_after_s: float = 0.02


class _Waiting(Generic[Item, Reply]):
    __slots__ = ("future", "item")

    def __init__(self, item: Item, future: asyncio.Future[Reply | None]) -> None:
        self.item = item
        self.future = future


class Coalescer(Generic[Item, Reply]):
    """Runs `batch` over the items submitted together; each caller gets its own reply.

    A failure of the whole batch (an exception out of `batch`) is raised to every caller still
    waiting; a cancellation is raised on after they are told.
    """

    def __init__(
        self,
        batch: Batch[Item, Reply],
        *,
        max_in_flight: int,
        linger_turns: int = 0,
        company: Callable[[], bool] = lambda: False,
        quiet_s: float = 0.0,
        hold: Hold | None = None,
    ) -> None:
        """`quiet_s`: how long the coalescer must have had nothing to do before a caller is
        served alone (see `submit`); `hold`: how a small batch waits for more when saturated
        (none: it does not)."""
        self._batch = batch
        self._max_in_flight = max_in_flight
        self._linger_turns = linger_turns
        self._hold = hold
        self._company = company
        self._quiet_s = quiet_s
        self._queued: list[_Waiting[Item, Reply]] = []
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # When the last batch (or lone caller) was answered and nothing was left queued.
        self._idle_since = -math.inf

    async def submit(
        self,
        item: Item,
        *,
        patience_s: float | None = None,
        alone: Callable[[Item], Awaitable[Reply]] | None = None,
    ) -> Reply | None:
        """`item`'s reply, or None when `patience_s` passed first (the caller stops waiting;
        its item is not sent if its batch has not started).

        `alone(item)`: how the caller is served in its own task when it has no one to batch
        with; it keeps its own patience then (and a cancelled caller cancels it)."""
        loop = asyncio.get_running_loop()
        if (
            alone is not None
            and self._idle()
            and loop.time() - self._idle_since >= self._quiet_s
            and not self._company()
        ):
            return await self._serve_alone(alone, item, loop)
        waiting: _Waiting[Item, Reply] = _Waiting(item, loop.create_future())
        self._queued.append(waiting)
        if not self._scheduled and self._in_flight < self._max_in_flight:
            self._start_next(loop)
        timer = None
        if patience_s is not None:
            timer = loop.call_at(loop.time() + patience_s, _give_up, waiting.future)
        try:
            return await waiting.future
        finally:
            if timer is not None:
                timer.cancel()

    def _idle(self) -> bool:
        return not self._queued and not self._in_flight

    async def _serve_alone(
        self,
        alone: Callable[[Item], Awaitable[Reply]],
        item: Item,
        loop: asyncio.AbstractEventLoop,
    ) -> Reply:
        self._in_flight += 1  # counted as a batch out: who comes meanwhile queues for the next
        caller = asyncio.current_task()
        assert caller is not None  # submit is awaited, so in a task
        self._tasks.add(caller)  # for `drain`
        try:
            return await alone(item)
        finally:
            self._tasks.discard(caller)
            self._in_flight -= 1
            self._after_one_ended(loop)

    def _after_one_ended(self, loop: asyncio.AbstractEventLoop) -> None:
        """Once a batch or a lone caller is answered: start the next batch for what was queued
        meanwhile, else note when the coalescer fell idle (`quiet_s`)."""
        if self._queued and not self._scheduled and self._in_flight < self._max_in_flight:
            self._start_next(loop)
        elif self._idle():
            self._idle_since = loop.time()

    def _start_next(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the task of the next batch. Its first step runs on the loop's next turn and takes
        what was queued by then: every item submitted in this turn goes in one batch (a task
        started from a callback of its own would cost a turn more). With company, it takes the
        queue `linger_turns` turns later, and what was submitted meanwhile goes with it."""
        self._scheduled = True
        self._in_flight += 1
        task = loop.create_task(self._run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        taken = False
        try:
            if self._linger_turns and self._company():
                for _ in range(self._linger_turns):
                    await asyncio.sleep(0)  # one turn: the loop reads what else has arrived
                if self._hold is not None:
                    await self._held(self._hold, asyncio.get_running_loop())
            self._scheduled = False
            taken = True
            batch = [w for w in self._queued if not w.future.done()]  # not callers who left
            self._queued = []
            if batch:
                await self._answer(batch)
        finally:
            self._in_flight -= 1
            if not taken:  # cancelled while lingering (shutdown): its callers are told so
                self._scheduled = False
                queued, self._queued = self._queued, []
                for waiting in queued:
                    waiting.future.cancel()
            else:
                self._after_one_ended(asyncio.get_running_loop())

    async def _held(self, hold: Hold, loop: asyncio.AbstractEventLoop) -> None:
        """Hold a small batch while callers keep coming, if saturated (`Hold`)."""
        # `_idle_since` is when the coalescer last had nothing to do: busy ever since, it is
        # saturated (it starts at -inf, but a first caller, alone, makes it idle after).
        if loop.time() - self._idle_since < hold.saturated_after_s:
            return
        held_s = 0.0
        while len(self._queued) < hold.until and held_s < hold.max_s:
            before = len(self._queued)
            await asyncio.sleep(hold.step_s)
            held_s += hold.step_s
            if len(self._queued) - before < hold.growth:
                return

    async def _answer(self, batch: list[_Waiting[Item, Reply]]) -> None:
        try:
            replies = await self._batch(
                [w.item for w in batch], lambda index: not batch[index].future.done()
            )
            for waiting, reply in zip(batch, replies, strict=True):
                if not waiting.future.done():
                    waiting.future.set_result(reply)
        except BaseException as error:
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(error)
            if not isinstance(error, Exception):
                raise  # cancellation (shutdown) goes on up, after the callers are told

    async def drain(self) -> None:
        """Wait for the batches still out (a caller served alone: its task), and for those
        started after them for items queued meanwhile (on shutdown: a batch started after its
        caller closed the connections would open one of its own and keep it)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _give_up(future: asyncio.Future[Reply | None]) -> None:
    if not future.done():
        future.set_result(None)
