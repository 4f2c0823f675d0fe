"""The coalescer: who goes in which batch, what each caller gets back, and how many turns of the
event loop a lone item waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from server.core.coalescer import Coalescer


class Recorder:
    """A batch function that answers each item doubled and remembers the batches it saw; a
    batch waits for `release` when one is given."""

    def __init__(self, release: asyncio.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.release = release

    async def __call__(self, items: Sequence[int], waiting: Callable[[int], bool]) -> list[int]:
        self.batches.append(list(items))
        if self.release is not None:
            await self.release.wait()
        return [2 * item for item in items]


async def test_items_submitted_in_one_turn_go_in_one_batch_each_caller_gets_its_reply() -> None:
    record = Recorder()
    coalescer = Coalescer(record, max_in_flight=1)

    replies = await asyncio.gather(*(coalescer.submit(i) for i in range(5)))

    assert replies == [0, 2, 4, 6, 8]
    assert record.batches == [[0, 1, 2, 3, 4]]


async def test_items_submitted_while_a_batch_is_out_gather_into_the_next() -> None:
    release = asyncio.Event()
    record = Recorder(release)
    coalescer = Coalescer(record, max_in_flight=1)
    first = asyncio.ensure_future(coalescer.submit(1))
    await asyncio.sleep(0.01)  # the first batch is out, waiting for `release`
    later = [asyncio.ensure_future(coalescer.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0.01)
    assert record.batches == [[1]]  # one batch out at most: the others wait

    release.set()

    assert await first == 2
    assert [await f for f in later] == [4, 6, 8]
    assert record.batches == [[1], [2, 3, 4]]


async def test_a_lone_item_starts_on_the_next_turn_of_the_loop() -> None:
    record = Recorder()
    coalescer = Coalescer(record, max_in_flight=1)
    submitted = asyncio.ensure_future(coalescer.submit(7))

    await asyncio.sleep(0)  # the caller's task submits and starts the batch's task
    assert record.batches == []
    await asyncio.sleep(0)  # one turn later the batch is out
    assert record.batches == [[7]]
    assert await submitted == 14


async def test_a_caller_who_gave_up_before_its_batch_started_is_not_sent() -> None:
    release = asyncio.Event()
    record = Recorder(release)
    coalescer = Coalescer(record, max_in_flight=1)
    first = asyncio.ensure_future(coalescer.submit(1))
    await asyncio.sleep(0.01)
    impatient = asyncio.ensure_future(coalescer.submit(2, patience_s=0.01))
    patient = asyncio.ensure_future(coalescer.submit(3))

    assert await impatient is None  # gave up while the first batch was out
    release.set()

    assert await first == 2 and await patient == 6
    assert record.batches == [[1], [3]]


async def test_a_failed_batch_is_raised_to_every_caller_in_it_and_the_next_batch_runs() -> None:
    calls = 0

    async def fails_once(items: Sequence[int], waiting: Callable[[int], bool]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("Redis went away")
        return list(items)

    coalescer = Coalescer(fails_once, max_in_flight=1)
    outcomes = await asyncio.gather(
        *(coalescer.submit(i) for i in range(3)), return_exceptions=True
    )

    assert [type(o) for o in outcomes] == [RuntimeError] * 3
    assert await coalescer.submit(9) == 9  # the coalescer is not stuck


@pytest.mark.parametrize("max_in_flight", [1, 2, 3])
async def test_never_more_batches_out_than_allowed(max_in_flight: int) -> None:
    out = most = 0

    async def slow(items: Sequence[int], waiting: Callable[[int], bool]) -> list[int]:
        nonlocal out, most
        out += 1
        most = max(most, out)
        await asyncio.sleep(0.005)
        out -= 1
        return list(items)

    coalescer = Coalescer(slow, max_in_flight=max_in_flight)

    async def caller(i: int) -> int | None:
        await asyncio.sleep(0.001 * (i % 7))
        return await coalescer.submit(i)

    replies = await asyncio.gather(*(caller(i) for i in range(60)))

    assert replies == list(range(60))
    assert most == max_in_flight
    await coalescer.drain()


async def test_drain_waits_for_the_batch_started_after_the_one_out() -> None:
    batches: list[list[int]] = []

    async def slow(items: Sequence[int], waiting: Callable[[int], bool]) -> list[int]:
        batches.append(list(items))
        await asyncio.sleep(0.02)
        return list(items)

    coalescer = Coalescer(slow, max_in_flight=1)
    first = asyncio.ensure_future(coalescer.submit(1))
    await asyncio.sleep(0.005)  # the first batch is out
    queued = asyncio.ensure_future(coalescer.submit(2))  # waits for the next batch
    await asyncio.sleep(0)

    await coalescer.drain()

    assert first.done() and queued.done()  # drained means nothing is left out
    assert batches == [[1], [2]]


async def _submit_one_a_turn(coalescer: Coalescer[int, int], items: Sequence[int]) -> list[int]:
    """Submit `items` one per turn of the event loop, as gRPC hands a loop its calls under load."""
    submitted = []
    for item in items:
        submitted.append(asyncio.ensure_future(coalescer.submit(item)))
        await asyncio.sleep(0)
    return [reply for reply in await asyncio.gather(*submitted) if reply is not None]


async def test_with_company_a_batch_waits_its_turns_for_the_calls_on_their_way() -> None:
    record = Recorder()
    coalescer = Coalescer(record, max_in_flight=1, linger_turns=3, company=lambda: True)

    replies = await _submit_one_a_turn(coalescer, range(5))

    assert replies == [0, 2, 4, 6, 8]
    # The first batch took what came in the turn its task started and the 3 turns it waited.
    assert record.batches == [[0, 1, 2, 3], [4]]


async def test_without_company_a_batch_does_not_wait() -> None:
    record = Recorder()
    coalescer = Coalescer(record, max_in_flight=1, linger_turns=3, company=lambda: False)

    await _submit_one_a_turn(coalescer, range(3))

    assert record.batches == [[0], [1], [2]]


async def test_a_batch_cancelled_while_it_waits_tells_its_callers_and_the_next_one_runs() -> None:
    record = Recorder()
    coalescer = Coalescer(record, max_in_flight=1, linger_turns=100, company=lambda: True)
    queued = asyncio.ensure_future(coalescer.submit(1))
    await asyncio.sleep(0)  # the caller's task submits and starts the batch's task
    await asyncio.sleep(0)  # which now waits for company
    (lingering,) = coalescer._tasks

    lingering.cancel()  # shutdown

    with pytest.raises(asyncio.CancelledError):
        await queued
    assert record.batches == []
    coalescer._company = lambda: False
    assert await coalescer.submit(2) == 4  # not stuck: the next batch runs


class Alone:
    """How a caller with no one to batch with is served: in its own task, remembered; waits
    for `release` when one is given."""

    def __init__(self, release: asyncio.Event | None = None) -> None:
        self.served: list[tuple[int, asyncio.Task[object] | None]] = []
        self.release = release

    async def __call__(self, item: int) -> int:
        self.served.append((item, asyncio.current_task()))
        if self.release is not None:
            await self.release.wait()
        return 3 * item


async def test_a_lone_caller_is_served_in_its_own_task_at_once() -> None:
    record, alone = Recorder(), Alone()
    coalescer = Coalescer(record, max_in_flight=1)

    async def caller() -> tuple[int | None, asyncio.Task[object] | None]:
        return await coalescer.submit(7, alone=alone), asyncio.current_task()

    reply, task = await caller()

    assert reply == 21
    assert alone.served == [(7, task)]  # no task of the coalescer's, no turn of the loop
    assert record.batches == []


async def test_callers_who_come_while_a_lone_caller_is_served_gather_into_the_next_batch() -> None:
    release = asyncio.Event()
    record, alone = Recorder(), Alone(release)
    coalescer = Coalescer(record, max_in_flight=1)
    lone = asyncio.ensure_future(coalescer.submit(1, alone=alone))
    await asyncio.sleep(0.01)  # served alone, waiting for `release`
    later = [asyncio.ensure_future(coalescer.submit(i, alone=alone)) for i in (2, 3, 4)]
    await asyncio.sleep(0.01)
    assert record.batches == []  # the lone caller counts as the batch out

    release.set()

    assert await lone == 3
    assert [await f for f in later] == [4, 6, 8]  # doubled: the batch, not `alone`
    assert [item for item, _ in alone.served] == [1]
    assert record.batches == [[2, 3, 4]]


async def test_with_company_or_a_batch_out_a_caller_is_not_served_alone() -> None:
    record, alone = Recorder(), Alone()
    with_company = Coalescer(record, max_in_flight=1, company=lambda: True)
    assert await with_company.submit(1, alone=alone) == 2

    release = asyncio.Event()
    busy = Coalescer(Recorder(release), max_in_flight=1)
    out = asyncio.ensure_future(busy.submit(2))
    await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(busy.submit(3, alone=alone))
    await asyncio.sleep(0.01)
    release.set()

    assert (await out, await queued) == (4, 6)
    assert alone.served == []


async def test_drain_waits_for_a_caller_served_alone() -> None:
    release = asyncio.Event()
    coalescer = Coalescer(Recorder(), max_in_flight=1)
    lone = asyncio.ensure_future(coalescer.submit(5, alone=Alone(release)))
    await asyncio.sleep(0.01)
    drained = asyncio.ensure_future(coalescer.drain())
    await asyncio.sleep(0.01)
    assert not drained.done()

    release.set()

    await drained
    assert lone.done() and lone.result() == 15


async def test_a_caller_is_served_alone_only_after_the_coalescer_was_quiet_for_a_while() -> None:
    # The first call of a burst finds the coalescer idle too: served alone, it would hold the
    # rest of the burst for a whole round. Only after `quiet_s` with nothing to do is a caller
    # taken for a lone one.
    record, alone = Recorder(), Alone()
    coalescer = Coalescer(record, max_in_flight=1, quiet_s=0.05)
    assert await coalescer.submit(1, alone=alone) == 3  # never busy before: quiet

    assert await asyncio.gather(*(coalescer.submit(i, alone=alone) for i in (2, 3))) == [4, 6]
    assert record.batches == [[2, 3]]  # right after the last answer: batched
    await asyncio.sleep(0.06)
    assert await coalescer.submit(4, alone=alone) == 12  # quiet for a while: alone
    assert [item for item, _ in alone.served] == [1, 4]
