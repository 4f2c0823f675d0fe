"""A customer whose state a newer journeyman wrote (a later state schema, or a later record
layout), met by this one during a rolling upgrade: every call that would read it is refused with
FAILED_PRECONDITION and the state stays byte for byte as the newer server left it. Read as a
new customer instead, the next commit would write over what the newer server kept.

The states are made here as a newer server would leave them: this build's own, marked with the
next version."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

import grpc
import msgpack
import pytest

from engine.codec import SCHEMA_VERSION
from journeyman.v1 import journeyman_pb2 as pb
from server.core.config import Settings
from server.store.connection import RedisClient
from server.store.keys import STATE_BLOB_FIELD, due_shard, timer_member
from server.store.record import LAYOUT, decode_record, encode_record
from server.store.redis_store import Store
from tests.conftest import MakeStore, Service, StartService, start_retail_server
from tests.service.clients import decide_request

pytestmark = pytest.mark.service

HALF_HOUR_MS = 30 * 60 * 1000


def _later_schema(blob: bytes) -> bytes:
    """The record `blob` with its state marked as the next state schema's."""
    state, ring = decode_record(blob)
    assert state is not None
    document = msgpack.unpackb(state)
    document["v"] = SCHEMA_VERSION + 1
    return encode_record(msgpack.packb(document, use_bin_type=True), ring)


def _later_record_layout(blob: bytes) -> bytes:
    """The record `blob` marked as the next record layout's."""
    return bytes([LAYOUT[0] + 1]) + blob[1:]


NEWER = pytest.mark.parametrize(
    "newer", [_later_schema, _later_record_layout], ids=["schema", "record"]
)


async def _made_newer(
    service: Service, store: Store, raw: RedisClient, customer: str, newer: Callable[[bytes], bytes]
) -> dict[bytes, bytes]:
    """`customer` decided once by `service`, then their stored record made a newer server's;
    every field of their state hash as it then is."""
    await service.stub.Decide(decide_request(f"{customer}-first", customer), timeout=10)
    key = store.keys.customer(customer).state
    blob = await raw.hget(key, STATE_BLOB_FIELD)
    assert blob is not None
    await raw.hset(key, STATE_BLOB_FIELD, newer(blob))
    return dict(await raw.hgetall(key))


def _visitor_view(event_id: str, visitor: str) -> pb.DecideRequest:
    event = pb.Event(event_id=event_id, anonymous_id=visitor, type="product_view", channel="web")
    return pb.DecideRequest(event=event)


def _refused(error: grpc.aio.AioRpcError) -> None:
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION, error
    assert "newer journeyman" in (error.details() or "")


@NEWER
async def test_decide_get_and_identify_refuse_a_newer_servers_state_and_leave_it_whole(
    start_service: StartService,
    make_store: MakeStore,
    store_settings: Settings,
    raw_client: RedisClient,
    newer: Callable[[bytes], bytes],
) -> None:
    store = make_store(store_settings)
    # A fresh server: the one that decided first keeps the customer in its state cache.
    async with start_service() as writer:
        kept = await _made_newer(writer, store, raw_client, "ann", newer)
    key = store.keys.customer("ann").state
    async with start_service() as older:
        with pytest.raises(grpc.aio.AioRpcError) as decided:
            await older.stub.Decide(decide_request("ann-2", "ann"), timeout=10)
        _refused(decided.value)
        with pytest.raises(grpc.aio.AioRpcError) as read:
            await older.stub.GetCustomer(pb.GetCustomerRequest(customer_id="ann"), timeout=10)
        _refused(read.value)

        # A visitor identified as ann: refused, and the visitor is left to a newer server.
        await older.stub.Decide(_visitor_view("v-1", "visitor-9"), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as identified:
            await older.stub.Identify(
                pb.IdentifyRequest(customer_id="ann", anonymous_id="visitor-9"), timeout=10
            )
        _refused(identified.value)
        visitor = store.keys.customer("visitor-9", anonymous=True).state
        assert await raw_client.hget(visitor, STATE_BLOB_FIELD) is not None

        # In a batch, that event fails alone; the others are stored.
        batch = pb.DecideBatchRequest(
            requests=[decide_request("ann-3", "ann"), decide_request("bob-1", "bob")]
        )
        answer = await older.stub.DecideBatch(batch, timeout=10)
        refused, stored = answer.results
        assert refused.error_code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert "newer journeyman" in refused.error_message
        assert not stored.error_code and not stored.decision.degraded
        assert answer.not_stored == 1

        # On a stream too, and the stream goes on.
        async def messages() -> object:
            for request in (decide_request("ann-4", "ann"), decide_request("bob-2", "bob")):
                yield pb.DecideStreamRequest(request=request)

        streamed = [m async for m in older.stub.DecideStream(messages(), timeout=10)]
        assert streamed[0].error_code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert not streamed[1].error_code and streamed[1].decision.customer_id == "bob"

        assert dict(await raw_client.hgetall(key)) == kept

        # Forgetting needs no reading: done.
        forgotten = await older.stub.ForgetCustomer(
            pb.ForgetCustomerRequest(customer_id="ann"), timeout=10
        )
        assert forgotten.deleted_keys >= 1
        assert await raw_client.exists(key) == 0


async def test_a_newer_servers_visitor_is_put_back_as_it_was_when_identify_refuses(
    start_service: StartService,
    make_store: MakeStore,
    store_settings: Settings,
    raw_client: RedisClient,
) -> None:
    store = make_store(store_settings)
    key = store.keys.customer("visitor-7", anonymous=True).state
    async with start_service() as writer:
        await writer.stub.Decide(_visitor_view("v-1", "visitor-7"), timeout=10)
    blob = await raw_client.hget(key, STATE_BLOB_FIELD)
    assert blob is not None
    await raw_client.hset(key, STATE_BLOB_FIELD, _later_schema(blob))
    before = await raw_client.hget(key, STATE_BLOB_FIELD)
    async with start_service() as older:
        with pytest.raises(grpc.aio.AioRpcError) as identified:
            await older.stub.Identify(
                pb.IdentifyRequest(customer_id="cid-7", anonymous_id="visitor-7"), timeout=10
            )
        _refused(identified.value)
    # The state and its decision ring as the newer server wrote them.
    assert await raw_client.hget(key, STATE_BLOB_FIELD) == before
    assert await raw_client.exists(store.keys.customer("cid-7").state) == 0


async def test_a_due_timer_of_a_newer_servers_customer_is_left_for_a_newer_server(
    start_service: StartService,
    make_store: MakeStore,
    store_settings: Settings,
    service_settings: Settings,
    store_url: str,
    raw_client: RedisClient,
) -> None:
    store = make_store(store_settings)
    customer, control = "cart-newer", "cart-control"
    async with start_service() as writer:  # no timer loop (the tests' settings)
        for who in (customer, control):
            added = pb.DecideRequest(
                event=pb.Event(
                    event_id=f"{who}-1", customer_id=who, type="add_to_cart", channel="web",
                    timestamp_ms=time.time_ns() // 1_000_000 - HALF_HOUR_MS,  # due now
                )
            )  # fmt: skip
            await writer.stub.Decide(added, timeout=10)
    key = store.keys.customer(customer).state
    blob = await raw_client.hget(key, STATE_BLOB_FIELD)
    assert blob is not None
    await raw_client.hset(key, STATE_BLOB_FIELD, _later_schema(blob))
    kept = dict(await raw_client.hgetall(key))
    member = timer_member(customer)
    shard_key = store.keys.due(due_shard(member, store.timer_shards))
    assert await raw_client.zscore(shard_key, member) is not None

    timed = replace(service_settings, timers=1, timer_poll_ms=20, timer_lease_ms=2_000)
    running = await start_retail_server(timed, store_url)
    try:
        assert running.timers is not None
        for _ in range(500):  # until the control's timer fired (both were due at once)
            if running.timers.fired:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # ten polls more: time to fire the other, were it fired
        assert running.timers.fired == 1  # the control's: the loop ran, and skipped only one
    finally:
        await running.stop(0.5)
    assert dict(await raw_client.hgetall(key)) == kept
    # Still in the index (claimed, to lapse for another server): not removed, not fired.
    assert await raw_client.zscore(shard_key, member) is not None
