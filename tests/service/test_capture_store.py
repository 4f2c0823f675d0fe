"""The commit script's capture, on one Redis and on a Redis Cluster: committed events are
appended to the customer's stream in order (refused commits append nothing), the stream
expires with the capture window, and the export's reader finds every stream and pages through
it."""

from __future__ import annotations

import pytest

from engine.event import Event
from server.core.config import Settings
from server.store.capture import PAGE, captured_keys, captured_lines, event_line
from server.store.connection import RedisClient
from server.store.redis_store import CommitOutcome, ToCommit
from tests.conftest import ON_EACH_REDIS, MakeStore

pytestmark = [pytest.mark.service, ON_EACH_REDIS]


def commit(customer: str, version: int, ids: list[str]) -> ToCommit:
    lines = [event_line(Event(i, customer, "view"), 1_000 + n) for n, i in enumerate(ids)]
    return ToCommit(customer, False, version, b"state", [(i, b"d") for i in ids], lines)


async def test_committed_events_are_captured_once_in_order_and_read_back(
    make_store: MakeStore, store_settings: Settings, raw_client: RedisClient
) -> None:
    store = make_store(store_settings.with_overrides(capture_days=2))
    many = [f"e{n}" for n in range(PAGE + 7)]  # more than a page
    results = await store.commit_many([commit("ann", 0, many), commit("bob", 0, ["b1"])])
    assert [r.outcome for r in results] == [CommitOutcome.COMMITTED] * 2
    refused = await store.commit_many([commit("bob", 0, ["b2"]), commit("ann", 0, ["x"])])
    assert [r.outcome for r in refused] == [CommitOutcome.CONFLICT] * 2
    keys = [k async for k in captured_keys(raw_client, store.keys.captured_pattern())]
    assert sorted(keys) == sorted(store.keys.customer(c).captured.encode() for c in ("ann", "bob"))
    ann = store.keys.customer("ann").captured.encode()
    read = [line async for line in captured_lines(raw_client, ann, 0)]
    assert read == [commit("ann", 0, many).captured[n].encode() for n in range(len(many))]
    assert 0 < await raw_client.ttl(ann) <= 2 * 86_400
    bob = store.keys.customer("bob").captured.encode()
    assert [line async for line in captured_lines(raw_client, bob, 0)] == [
        commit("bob", 0, ["b1"]).captured[0].encode()
    ]
    assert (await store.forget(customer_id="ann")).deleted == 2  # state, captured events


async def test_without_capture_nothing_is_appended(
    make_store: MakeStore, store_settings: Settings, raw_client: RedisClient
) -> None:
    store = make_store(store_settings)
    (result,) = await store.commit_many([commit("cy", 0, ["c1"])])
    assert result.outcome is CommitOutcome.COMMITTED
    assert not await raw_client.exists(store.keys.customer("cy").captured)
