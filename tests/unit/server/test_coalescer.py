"""The coalescer: who goes in which batch, what each caller gets back, and how many turns of the
event loop a lone item waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from server.core.coalescer import Coalescer, Hold


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


class Feeder:
    """Submits `per_ms` items every millisecond from a task of its own (the loop's timers are
    whole milliseconds), as a saturated server's calls keep coming, until `stop`."""

    def __init__(self, coalescer: Coalescer[int, int], per_ms: int, first: int) -> None:
        self.replies: list[asyncio.Future[int | None]] = []
        self._coalescer, self._per_ms, self._next = coalescer, per_ms, first
        self._task = asyncio.ensure_future(self._feed())

    async def _feed(self) -> None:
        while True:
            for _ in range(self._per_ms):
                self.replies.append(asyncio.ensure_future(self._coalescer.submit(self._next)))
                self._next += 1
            await asyncio.sleep(0.001)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(*self.replies)


async def _saturated_batches(hold: Hold | None, per_ms: int, first_batch: int) -> list[list[int]]:
    """The batches a coalescer with company made while `per_ms` callers came a millisecond,
    after a first batch of `first_batch` callers at once (never idle: saturated at once)."""
    record = Recorder()
    coalescer = Coalescer(record, max_in_flight=1, linger_turns=1, company=lambda: True, hold=hold)
    first = [asyncio.ensure_future(coalescer.submit(i)) for i in range(first_batch)]
    feeder = Feeder(coalescer, per_ms, first=first_batch)
    await asyncio.gather(*first)
    await feeder.stop()
    return record.batches


async def test_a_saturated_coalescer_holds_a_small_batch_while_callers_keep_coming() -> None:
    # 5 callers a millisecond: each 3 ms step of the hold brings 10 or 15 (steps of a few of
    # the feeder's, so that its callers land in a step whichever timer fires first), and the
    # first batch is held until it has 32 (or for 50 ms: it does not take that long).
    hold = Hold(until=32, max_s=0.05, step_s=0.003, growth=2, saturated_after_s=0.0)
    batches = await _saturated_batches(hold, per_ms=5, first_batch=1)
    assert len(batches[0]) >= 32
    unheld = await _saturated_batches(None, per_ms=5, first_batch=1)
    assert len(unheld[0]) < 8  # the same callers, not held: a turn's worth


async def test_a_hold_ends_when_a_step_brings_fewer_callers_than_its_growth() -> None:
    # One caller a millisecond: a 3 ms step brings 2 to 4, and the first step that brings fewer
    # than the growth of 5 ends the hold long before its 50 ms or its 32 callers.
    hold = Hold(until=32, max_s=0.05, step_s=0.003, growth=5, saturated_after_s=0.0)
    batches = await _saturated_batches(hold, per_ms=1, first_batch=1)
    assert len(batches[0]) < 8


async def test_a_hold_ends_at_its_longest() -> None:
    hold = Hold(until=10_000, max_s=0.03, step_s=0.003, growth=1, saturated_after_s=0.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    batches = await _saturated_batches(hold, per_ms=5, first_batch=1)
    # Held 10 steps of 3 ms or so, not until 10,000 callers came (2 s of them).
    assert len(batches[0]) < 200
    assert loop.time() - started < 1.0


async def test_a_batch_large_already_is_not_held() -> None:
    hold = Hold(until=4, max_s=0.05, step_s=0.001, growth=1, saturated_after_s=0.0)
    batches = await _saturated_batches(hold, per_ms=5, first_batch=6)
    unheld = await _saturated_batches(None, per_ms=5, first_batch=6)
    assert batches[0] == unheld[0]  # taken as it came: it had `until` callers already


async def test_a_coalescer_idle_a_moment_ago_does_not_hold() -> None:
    # The callers of the first test, but the coalescer was idle just before they came: not
    # saturated (no idle moment for 20 ms), so its batch goes as it came.
    hold = Hold(until=32, max_s=0.05, step_s=0.003, growth=2, saturated_after_s=0.02)
    record = Recorder()
    coalescer = Coalescer(record, max_in_flight=1, linger_turns=1, company=lambda: True, hold=hold)
    assert await coalescer.submit(100) == 200  # answered: the coalescer is idle now
    first = asyncio.ensure_future(coalescer.submit(0))
    feeder = Feeder(coalescer, 5, first=1)
    await first
    await feeder.stop()
    assert record.batches[0] == [100]
    assert len(record.batches[1]) < 8
