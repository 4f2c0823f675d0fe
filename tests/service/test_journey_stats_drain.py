"""Journey statistics at shutdown, on a real Redis: `JourneyStats.drain` returns only once every
write is over, one already out included, since the store is closed right after it
(`Running.stop`). A write still out then reopened the client (a cluster reads its slot map
again) and left its connections open: a ResourceWarning at some later test, in CI."""

from __future__ import annotations

import asyncio
import time

import pytest

from journeyman.v1 import journeyman_pb2 as pb
from server.decisions.journey_stats import DAY_MS, JourneyStats
from server.store.connection import RedisClient
from server.store.keys import utc_day
from server.store.redis_store import StageChange, Store

pytestmark = pytest.mark.service


def _a_new_customer(stats: JourneyStats, now_ms: int) -> None:
    journey = pb.JourneyStage(journey="retail", stage="awareness")
    stats.count_decision(pb.Decision(decided_at_ms=now_ms, journeys=[journey]), [], is_new=True)


async def _until_writing(stats: JourneyStats) -> None:
    """Until the flush took what was counted and its write to Redis is out."""
    while stats._writer is not None and not stats._writer.done():
        await asyncio.sleep(0)


def _still_running() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


async def _counts(store: Store, raw_client: RedisClient, now_ms: int) -> list[int]:
    change = StageChange(journey="retail", from_stage=None, to_stage="awareness", transition=None)
    increments = store.stat_increments([change], utc_day(now_ms // DAY_MS * DAY_MS))
    return [int(await raw_client.hget(key, field) or 0) for key, field in increments]


@pytest.mark.parametrize("counted_while_out", [0, 1])
async def test_drain_returns_once_every_write_is_stored_one_already_out_included(
    store: Store, raw_client: RedisClient, counted_while_out: int
) -> None:
    now_ms = int(time.time() * 1000)
    stats = JourneyStats(store, clock_ms=lambda: now_ms)
    _a_new_customer(stats, now_ms)
    await _until_writing(stats)
    for _ in range(counted_while_out):
        _a_new_customer(stats, now_ms)  # the next flush's

    await stats.drain()

    assert not _still_running()  # the store may be closed now
    assert await _counts(store, raw_client, now_ms) == [1 + counted_while_out]


async def test_a_decision_that_cannot_be_counted_is_logged_and_the_others_are_written(
    store: Store, raw_client: RedisClient, caplog: pytest.LogCaptureFixture
) -> None:
    now_ms = int(time.time() * 1000)
    stats = JourneyStats(store, clock_ms=lambda: now_ms)
    _a_new_customer(stats, now_ms)
    bad = pb.JourneyStage(journey="Not A Journey", stage="awareness")  # no key can be named so
    stats.count_decision(
        pb.Decision(event_id="bad-1", decided_at_ms=now_ms, journeys=[bad]), [], is_new=True
    )
    _a_new_customer(stats, now_ms)

    await stats.drain()

    assert await _counts(store, raw_client, now_ms) == [2]
    assert "decision bad-1 not counted" in caplog.text
