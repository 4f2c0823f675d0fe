"""Concurrent loads and commits share pipelines, and each caller still gets exactly its replies."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as redis

from server.core.config import Settings
from server.store.connection import connect
from server.store.errors import StoreUnavailable
from server.store.pipelining import Pipeliner
from server.store.redis_store import CommitOutcome, Store

pytestmark = pytest.mark.service


async def test_concurrent_calls_share_pipelines_and_get_their_own_replies(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    pipeliner = Pipeliner(redis_client, max_in_flight=1)
    keys = [f"{key_prefix}k{i}" for i in range(200)]
    await redis_client.mset({key: str(i) for i, key in enumerate(keys)})

    async def read(key: str) -> list[object]:
        def queue(pipe: redis.client.Pipeline) -> int:
            pipe.get(key)
            pipe.strlen(key)
            return 2

        return await pipeliner.send(queue)

    replies = await asyncio.gather(*(read(key) for key in keys))

    assert replies == [[str(i).encode(), len(str(i))] for i in range(len(keys))]
    assert pipeliner.commands_sent == 2 * len(keys)
    assert pipeliner.pipelines_sent < len(keys) / 10  # one call alone would make 200


async def test_a_commands_error_goes_to_its_caller_only(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    pipeliner = Pipeliner(redis_client)
    await redis_client.set(f"{key_prefix}text", "not a hash")

    def wrong_type(pipe: redis.client.Pipeline) -> int:
        pipe.hget(f"{key_prefix}text", "field")
        return 1

    def fine(pipe: redis.client.Pipeline) -> int:
        pipe.get(f"{key_prefix}text")
        return 1

    bad, good = await asyncio.gather(pipeliner.send(wrong_type), pipeliner.send(fine))

    assert isinstance(bad[0], redis.ResponseError) and "WRONGTYPE" in str(bad[0])
    assert good == [b"not a hash"]


async def test_a_caller_that_gave_up_does_not_disturb_the_others(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    pipeliner = Pipeliner(redis_client)

    def get(pipe: redis.client.Pipeline) -> int:
        pipe.get(f"{key_prefix}missing")
        return 1

    gave_up = asyncio.ensure_future(pipeliner.send(get))
    stayed = asyncio.ensure_future(pipeliner.send(get))
    gave_up.cancel()

    assert await stayed == [None]
    assert gave_up.cancelled()


async def test_many_concurrent_commits_on_one_customer_lose_no_update(store: Store) -> None:
    """The commit's compare-and-set still holds when commits of one customer share a pipeline:
    of the commits made from one loaded version, exactly one lands."""
    loaded = await store.load(customer_id="c1")
    results = await asyncio.gather(
        *(
            store.commit(customer_id="c1", expected_version=loaded.version, state=f"s{i}".encode())
            for i in range(50)
        )
    )
    outcomes = [r.outcome for r in results]
    assert outcomes.count(CommitOutcome.COMMITTED) == 1
    assert outcomes.count(CommitOutcome.CONFLICT) == 49
    (landed,) = [r for r in results if r.outcome is CommitOutcome.COMMITTED]
    assert {r.version for r in results} == {landed.version}  # the refused saw it, nothing more
    assert (await store.load(customer_id="c1")).version == landed.version


async def _pipelines_for_loads_one_a_turn(store: Store, customers: int) -> int:
    pipeliner = store.pipelining
    assert pipeliner is not None
    before = pipeliner.pipelines_sent
    loads = []
    for i in range(customers):
        loads.append(asyncio.ensure_future(store.load(customer_id=f"turn-{i}")))
        await asyncio.sleep(0)  # as gRPC hands the event loop its calls under load: a turn apart
    await asyncio.gather(*loads)
    return pipeliner.pipelines_sent - before


async def test_with_company_commands_of_the_next_turns_go_in_the_same_pipeline(
    store: Store,
) -> None:
    """Told the server has other calls, the store waits a few turns of the event loop for more
    commands before a pipeline goes out; alone, the first goes out on the next turn."""
    assert await _pipelines_for_loads_one_a_turn(store, 3) > 1

    store.linger_with(lambda: True)

    assert await _pipelines_for_loads_one_a_turn(store, 3) == 1


async def test_a_broken_connection_fails_every_caller_in_the_pipeline() -> None:
    # Nothing listens on port 1: the connection is refused for the whole pipeline.
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    store = Store(client, Settings())
    try:
        outcomes = await asyncio.gather(
            *(store.load(customer_id=f"c{i}", event_ids=["e"]) for i in range(5)),
            return_exceptions=True,
        )
    finally:
        await store.close()
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes


def _client_id(pipe: redis.client.Pipeline) -> int:
    pipe.client_id()
    return 1


async def test_pipelines_go_out_on_one_kept_connection_given_back_when_drained(
    redis_client: redis.Redis,
) -> None:
    pipeliner = Pipeliner(redis_client)
    ids = {(await pipeliner.send(_client_id))[0] for _ in range(20)}
    assert len(ids) == 1  # one connection, kept between pipelines
    assert await redis_client.client_id() not in ids  # kept: the pool gives the client another
    await pipeliner.drain()
    assert await redis_client.client_id() in ids  # given back


@contextlib.asynccontextmanager
async def _pipeliner_of(
    redis_url: str, **options: Any
) -> AsyncIterator[tuple[redis.Redis, Pipeliner]]:
    """A Pipeliner on a client of the Store's `connect(redis_url, **options)`, drained and
    closed after."""
    client = connect(redis_url, **options)
    assert isinstance(client, redis.Redis)
    pipeliner = Pipeliner(client)
    try:
        yield client, pipeliner
    finally:
        await pipeliner.drain()
        await client.aclose()


async def test_a_kept_connection_closed_by_redis_is_replaced_and_the_pipeline_sent_again(
    redis_client: redis.Redis, redis_url: str
) -> None:
    async with _pipeliner_of(redis_url) as (_, pipeliner):  # the Store's: one retry
        (first,) = await pipeliner.send(_client_id)
        assert await redis_client.client_kill_filter(_id=first) == 1
        (second,) = await pipeliner.send(_client_id)  # the retry reconnects
        assert second != first


def _wait_on(key: str, seconds: float, times: int) -> Callable[[redis.client.Pipeline], int]:
    """BLPOP on an empty list: Redis holds each reply `seconds`, one after the other."""

    def queue(pipe: redis.client.Pipeline) -> int:
        for _ in range(times):
            pipe.blpop([key], timeout=seconds)
        return times

    return queue


async def test_a_reply_later_than_the_budget_fails_the_round_trip_and_the_connection_is_replaced(
    redis_url: str, key_prefix: str
) -> None:
    async with _pipeliner_of(redis_url, timeout_s=0.2, retries=0) as (_, pipeliner):
        (first,) = await pipeliner.send(_client_id)
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            await pipeliner.send(_wait_on(f"{key_prefix}empty", 2.0, 1))
        assert time.monotonic() - started < 1.0  # the budget, not Redis's 2 s
        (second,) = await pipeliner.send(_client_id)  # no stale reply read: a new connection
        assert second != first


async def test_a_long_pipeline_is_not_cut_short_while_each_reply_comes_within_the_budget(
    redis_url: str, key_prefix: str
) -> None:
    async with _pipeliner_of(redis_url, timeout_s=0.25) as (_, pipeliner):
        started = time.monotonic()
        replies = await pipeliner.send(_wait_on(f"{key_prefix}empty", 0.1, 5))
        assert replies == [None] * 5
        assert time.monotonic() - started >= 0.45  # twice the budget in all, 0.1 s a reply


async def test_a_late_reply_after_prompt_ones_fails_the_round_trip_one_budget_after_the_last(
    redis_url: str, key_prefix: str
) -> None:
    def prompt_then_late(pipe: redis.client.Pipeline) -> int:
        queued = _wait_on(f"{key_prefix}empty", 0.1, 3)(pipe)
        return queued + _wait_on(f"{key_prefix}empty", 2.0, 1)(pipe)

    async with _pipeliner_of(redis_url, timeout_s=0.2, retries=0) as (_, pipeliner):
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            await pipeliner.send(prompt_then_late)
        took = time.monotonic() - started
        # Past the first budget (each reply came within its own), well short of Redis's 2 s.
        assert 0.3 <= took < 1.0


async def test_a_connection_given_back_times_out_as_the_client_says_again(
    redis_url: str, key_prefix: str
) -> None:
    async with _pipeliner_of(redis_url, timeout_s=0.2, retries=0) as (client, pipeliner):
        (kept,) = await pipeliner.send(_client_id)
        await pipeliner.drain()
        assert await client.client_id() == kept  # the pool hands out the connection given back
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            await client.blpop([f"{key_prefix}empty"], timeout=2.0)
        assert time.monotonic() - started < 1.0  # redis-py's socket timeout, not Redis's 2 s
