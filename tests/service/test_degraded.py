"""Redis going away and coming back, with the service running: degraded answers from the rules
alone within the call's deadline, nothing written, then normal answers again without a restart.

Each test runs its own embedded redis-server (never the shared one) so it may stop and pause it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.core.config import Settings
from server.runtime import app
from server.runtime.app import Running
from server.runtime.embedded_redis import SOCKET_NAME, EmbeddedRedis, start_embedded_redis
from tests.conftest import start_retail_server

pytestmark = pytest.mark.service

DEADLINE_S = 2.0


@dataclass
class Outage:
    """A service over a Redis of its own that the test may stop, restart, pause and resume."""

    stub: pb_grpc.JourneyServiceStub
    health: health_pb2_grpc.HealthStub
    data_dir: Path
    redis: EmbeddedRedis

    def stop_redis(self) -> None:
        self.redis.stop()

    def start_redis(self) -> None:
        self.redis = start_embedded_redis(self.data_dir)  # the same socket path as before

    def pause_redis(self) -> None:
        os.kill(self.redis.process.pid, signal.SIGSTOP)

    def resume_redis(self) -> None:
        os.kill(self.redis.process.pid, signal.SIGCONT)

    async def decide(self, event_id: str, customer: str, type_: str) -> pb.Decision:
        event = pb.Event(event_id=event_id, customer_id=customer, type=type_, channel="web")
        response = await self.stub.Decide(pb.DecideRequest(event=event), timeout=DEADLINE_S)
        return response.decision

    async def journey(self, customer: str) -> pb.CustomerJourney:
        request = pb.GetCustomerRequest(customer_id=customer)
        (journey,) = (await self.stub.GetCustomer(request, timeout=DEADLINE_S)).customer.journeys
        return journey


@pytest.fixture
def own_redis_dir() -> Iterator[Path]:
    # Short on purpose: the socket must keep the same path across restarts, and a path too long
    # for a unix socket would be moved to a new temporary folder on each start.
    with tempfile.TemporaryDirectory(prefix="jm-outage-") as folder:
        yield Path(folder)


@pytest.fixture
def outage_settings() -> Settings:
    return Settings(host="127.0.0.1", port=0, key_prefix="jmtest:outage:", grace_period_s=1.0)


@pytest.fixture
async def outage(outage_settings: Settings, own_redis_dir: Path) -> AsyncIterator[Outage]:
    redis_server = start_embedded_redis(own_redis_dir)
    outage: Outage | None = None
    running: Running | None = None
    try:
        running = await start_retail_server(outage_settings, redis_server.url)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            outage = Outage(
                pb_grpc.JourneyServiceStub(channel),
                health_pb2_grpc.HealthStub(channel),
                own_redis_dir,
                redis_server,
            )
            yield outage
    finally:
        current = outage.redis if outage is not None else redis_server
        if current.process.poll() is None:
            os.kill(current.process.pid, signal.SIGCONT)  # harmless when it was not paused
        if running is not None:
            await running.stop(0.5)
        current.stop()


async def test_with_redis_stopped_answers_are_degraded_and_nothing_is_written(
    outage: Outage,
) -> None:
    stored = await outage.decide("e1", "quinn", "add_to_cart")
    assert not stored.degraded and stored.journeys[0].stage == "consideration"

    outage.stop_redis()
    degraded = await outage.decide("e2", "quinn", "checkout_started")
    newcomer = await outage.decide("n1", "rae", "add_to_cart")

    assert degraded.degraded and newcomer.degraded
    # From the rules alone, as for a new customer: the stored stage is not known.
    assert degraded.journeys[0].previous_stage == "awareness"
    assert degraded.journeys[0].stage == "purchase"
    assert degraded.ruleset_version == stored.ruleset_version
    assert [a.action for a in newcomer.actions] == [a.action for a in stored.actions]

    outage.start_redis()
    quinn = await outage.journey("quinn")
    assert quinn.stage == "consideration" and quinn.counters["cart_adds_7d"] == 1
    assert (await outage.journey("rae")).counters["cart_adds_7d"] == 0
    # The degraded event's id was not stored either: sent again, it is applied for real.
    again = await outage.decide("e2", "quinn", "checkout_started")
    assert not again.degraded and not again.duplicate
    assert again.journeys[0].previous_stage == "consideration"
    assert again.journeys[0].stage == "purchase"


async def test_answers_are_normal_again_when_redis_comes_back(outage: Outage) -> None:
    await outage.decide("e1", "sam", "product_view")
    for attempt in range(3):  # an outage longer than a single failed reconnect
        outage.stop_redis()
        assert (await outage.decide(f"down-{attempt}", "sam", "product_view")).degraded
        outage.start_redis()
        back = await outage.decide(f"up-{attempt}", "sam", "product_view")
        assert not back.degraded
    journey = await outage.journey("sam")
    assert journey.counters["product_views_7d"] == 4  # e1 and the three up-* events
    assert journey.stage == "consideration"


async def test_every_decide_method_degrades_and_the_others_say_unavailable(
    outage: Outage,
) -> None:
    outage.stop_redis()
    event = pb.Event(event_id="s1", customer_id="tom", type="add_to_cart")
    stream = outage.stub.DecideStream(timeout=DEADLINE_S)
    await stream.write(pb.DecideStreamRequest(request=pb.DecideRequest(event=event)))
    assert (await stream.read()).decision.degraded
    await stream.done_writing()
    assert await stream.code() is grpc.StatusCode.OK
    batch = await outage.stub.DecideBatch(
        pb.DecideBatchRequest(requests=[pb.DecideRequest(event=event)] * 2), timeout=DEADLINE_S
    )
    assert [r.decision.degraded for r in batch.results] == [True, True]
    # Not stored, and a bulk caller cannot miss it: each item has an error, the count too.
    assert [r.error_code for r in batch.results] == [code_pb2.UNAVAILABLE] * 2
    assert "not stored" in batch.results[0].error_message and batch.not_stored == 2
    # Reading or changing a customer needs the store: these say so, and may be retried.
    calls = [
        outage.stub.GetCustomer(pb.GetCustomerRequest(customer_id="tom"), timeout=DEADLINE_S),
        outage.stub.Identify(pb.IdentifyRequest(customer_id="tom"), timeout=DEADLINE_S),
        outage.stub.ForgetCustomer(pb.ForgetCustomerRequest(customer_id="tom"), timeout=DEADLINE_S),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_health_stays_serving_while_answers_are_degraded(outage: Outage) -> None:
    # Documented behaviour: health reflects "answers calls", and degraded answers are answers.
    # Only shutdown sets NOT_SERVING; a probe does not take the pod out of rotation for Redis.
    outage.stop_redis()
    assert (await outage.decide("h1", "uma", "product_view")).degraded
    for service in ("", "journeyman.v1.JourneyService"):
        reply = await outage.health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_hung_redis_gives_a_degraded_answer_after_the_redis_timeout(
    outage: Outage,
) -> None:
    """...and the event sent again once Redis is back is applied once. Its commit may have
    reached the hung Redis before the timeout (with the customer in the state cache it is the
    only command), and then runs when Redis resumes: the retry is answered as its duplicate."""
    await outage.decide("e1", "vic", "add_to_cart")
    outage.pause_redis()
    try:
        # redis_timeout_ms (250 ms) bounds the wait, well inside the 2 s deadline.
        paused = await outage.decide("e2", "vic", "checkout_started")
    finally:
        outage.resume_redis()
    assert paused.degraded
    again = await outage.decide("e2", "vic", "checkout_started")
    assert not again.degraded
    back = await outage.decide("e3", "vic", "product_view")
    assert not back.degraded and not back.duplicate
    # The same three events, each sent once, with Redis healthy throughout.
    for event_id, type_ in (
        ("f1", "add_to_cart"),
        ("f2", "checkout_started"),
        ("f3", "product_view"),
    ):
        await outage.decide(event_id, "val", type_)
    journey, once = await outage.journey("vic"), await outage.journey("val")
    assert (journey.stage, dict(journey.counters)) == (once.stage, dict(once.counters))


@pytest.mark.parametrize(
    "outage_settings",
    [Settings(host="127.0.0.1", port=0, key_prefix="jmtest:outage:", redis_timeout_ms=30_000)],
)
async def test_the_calls_deadline_bounds_the_wait_for_a_hung_redis(outage: Outage) -> None:
    outage.pause_redis()
    try:
        # Redis may take 30 s; the caller gives 2 s: the answer comes, degraded, inside them.
        paused = await outage.decide("e1", "wes", "product_view")
    finally:
        outage.resume_redis()
    assert paused.degraded
    # The abandoned read must not leave its late reply for the next command on that connection.
    for i in range(3):
        assert not (await outage.decide(f"e{i + 2}", "wes", "add_to_cart")).degraded
    journey = await outage.journey("wes")
    assert journey.counters == {**journey.counters, "product_views_7d": 0, "cart_adds_7d": 3}


async def test_started_while_redis_is_down_it_answers_degraded_until_redis_answers(
    outage_settings: Settings, own_redis_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # create_server waits this long for Redis before it returns anyway; shortened for the test.
    monkeypatch.setattr(app, "REDIS_WAIT_AT_START_S", 0.2)
    socket_path = own_redis_dir / SOCKET_NAME  # where start_embedded_redis will listen
    running = await start_retail_server(outage_settings, f"unix://{socket_path}")
    redis_server: EmbeddedRedis | None = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub, health = pb_grpc.JourneyServiceStub(channel), health_pb2_grpc.HealthStub(channel)
            check = health_pb2.HealthCheckRequest(service="journeyman.v1.JourneyService")
            assert (await health.Check(check)).status == health_pb2.HealthCheckResponse.NOT_SERVING
            event = pb.Event(event_id="e1", customer_id="xia", type="add_to_cart")
            request = pb.DecideRequest(event=event)
            assert (await stub.Decide(request, timeout=DEADLINE_S)).decision.degraded

            redis_server = start_embedded_redis(own_redis_dir)
            assert redis_server.socket_path == socket_path
            for _ in range(200):  # the server probes Redis every 0.5 s
                reply = await health.Check(check)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
                await asyncio.sleep(0.05)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            decision = (await stub.Decide(request, timeout=DEADLINE_S)).decision
            assert not decision.degraded and not decision.duplicate
    finally:
        await running.stop(0.5)
        if redis_server is not None:
            redis_server.stop()


async def test_a_batch_with_redis_hung_answers_degraded_within_the_deadline(
    outage: Outage,
) -> None:
    events = [pb.Event(event_id=f"b{i}", customer_id="yan", type="product_view") for i in range(8)]
    batch = pb.DecideBatchRequest(requests=[pb.DecideRequest(event=e) for e in events])
    outage.pause_redis()
    try:
        response = await outage.stub.DecideBatch(batch, timeout=1.0)
    finally:
        outage.resume_redis()
    assert [r.decision.degraded for r in response.results] == [True] * 8
    assert [r.error_code for r in response.results] == [code_pb2.UNAVAILABLE] * 8
