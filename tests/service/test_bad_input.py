"""Bad input over a real port: INVALID_ARGUMENT naming every bad field, RESOURCE_EXHAUSTED for
oversized messages and for calls beyond the concurrency limit, and the server serves on."""

from __future__ import annotations

import asyncio
import math
import time

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from journeyman.v1 import journeyman_pb2 as pb
from server.core.config import Settings
from tests.conftest import Service

pytestmark = pytest.mark.service

MAX_MESSAGE_BYTES = 8 * 1024
MAX_CONCURRENT_CALLS = 3
DETAILS_KEY = "grpc-status-details-bin"


@pytest.fixture
def service_settings(key_prefix: str) -> Settings:
    """Small limits, so an oversized message and a full server are cheap to produce."""
    return Settings(
        host="127.0.0.1", port=0, key_prefix=key_prefix, grace_period_s=2.0,
        max_message_bytes=MAX_MESSAGE_BYTES, max_concurrent_calls=MAX_CONCURRENT_CALLS,
    )  # fmt: skip


def _event(**fields: object) -> pb.Event:
    values: dict[str, object] = {
        "event_id": "e1", "customer_id": "ola", "type": "product_view", "channel": "web",
    }  # fmt: skip
    values.update(fields)
    return pb.Event(**values)  # type: ignore[arg-type]


def _violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """field -> description of the google.rpc.BadRequest in the error's status details."""
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error
    (details,) = [v for k, v in error.trailing_metadata() or () if k == DETAILS_KEY]
    status = status_pb2.Status.FromString(details)
    assert status.code == code_pb2.INVALID_ARGUMENT and status.message == error.details()
    (detail,) = status.details
    bad_request = error_details_pb2.BadRequest()
    assert detail.Unpack(bad_request)
    return {v.field: v.description for v in bad_request.field_violations}


async def _invalid(service: Service, request: pb.DecideRequest) -> dict[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.stub.Decide(request, timeout=5)
    return _violations(raised.value)


async def _serves(service: Service, event_id: str = "still-ok") -> None:
    request = pb.DecideRequest(event=_event(event_id=event_id))
    assert not (await service.stub.Decide(request, timeout=5)).decision.degraded


def _retry_after_s(error: grpc.aio.AioRpcError) -> float:
    """The google.rpc.RetryInfo delay of a RESOURCE_EXHAUSTED error, in seconds."""
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
    (details,) = [v for k, v in error.trailing_metadata() or () if k == DETAILS_KEY]
    (detail,) = status_pb2.Status.FromString(details).details
    retry = error_details_pb2.RetryInfo()
    assert detail.Unpack(retry)
    return float(retry.retry_delay.ToTimedelta().total_seconds())


def _far_future_ms() -> int:
    return int(time.time() * 1000) + 24 * 3600 * 1000


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (pb.DecideRequest(), {"event"}),
        (pb.DecideRequest(event=_event(event_id="")), {"event.event_id"}),
        (pb.DecideRequest(event=_event(type="")), {"event.type"}),
        (pb.DecideRequest(event=_event(customer_id="")), {"event.customer_id"}),
        (pb.DecideRequest(event=_event(anonymous_id="anon-1")), {"event.anonymous_id"}),
        (pb.DecideRequest(event=_event(customer_id="a{b}")), {"event.customer_id"}),
        (
            pb.DecideRequest(event=_event(customer_id="", anonymous_id="{x}")),
            {"event.anonymous_id"},
        ),
        (pb.DecideRequest(event=_event(customer_id="has space")), {"event.customer_id"}),
        (pb.DecideRequest(event=_event(customer_id="x" * 129)), {"event.customer_id"}),
        (pb.DecideRequest(event=_event(channel="web\n")), {"event.channel"}),
        (pb.DecideRequest(event=_event(timestamp_ms=-1)), {"event.timestamp_ms"}),
        (pb.DecideRequest(event=_event(timestamp_ms=_far_future_ms())), {"event.timestamp_ms"}),
        (pb.DecideRequest(event=_event(), top_k=-1), {"top_k"}),
        (pb.DecideRequest(event=_event(), top_k=51), {"top_k"}),
        (
            pb.DecideRequest(event=_event(properties={"price": pb.Value(number_value=math.nan)})),
            {'event.properties["price"]'},
        ),
        (
            pb.DecideRequest(event=_event(properties={"n": pb.Value(number_value=math.inf)})),
            {'event.properties["n"]'},
        ),
        (
            pb.DecideRequest(event=_event(properties={"empty": pb.Value()})),
            {'event.properties["empty"]'},
        ),
        (
            pb.DecideRequest(event=_event(properties={"": pb.Value(bool_value=True)})),
            {'event.properties[""]'},
        ),
        (
            pb.DecideRequest(event=_event(properties={"s": pb.Value(string_value="x" * 257)})),
            {'event.properties["s"]'},
        ),
        (
            pb.DecideRequest(
                event=_event(properties={f"p{i}": pb.Value(number_value=i) for i in range(65)})
            ),
            {"event.properties"},
        ),
    ],
    ids=[
        "no-event", "no-event-id", "no-type", "no-customer", "both-ids", "brace-in-customer-id",
        "brace-in-anonymous-id", "space-in-id", "id-too-long", "control-char", "negative-time",
        "far-future-time", "negative-top-k", "top-k-too-big", "nan", "infinity",
        "value-without-kind", "empty-property-name", "string-too-long", "too-many-properties",
    ],
)  # fmt: skip
async def test_each_bad_field_is_named_with_a_fix(
    service: Service, request_: pb.DecideRequest, fields: set[str]
) -> None:
    violations = await _invalid(service, request_)
    assert set(violations) == fields
    assert all(description for description in violations.values())


async def test_every_bad_field_of_one_event_is_reported_together(service: Service) -> None:
    event = _event(
        event_id="",
        type="",
        customer_id="a{b}",
        anonymous_id="c}d",
        timestamp_ms=_far_future_ms(),
        properties={"price": pb.Value(number_value=math.nan), "colour": pb.Value()},
    )
    violations = await _invalid(service, pb.DecideRequest(event=event, top_k=-3))
    assert set(violations) == {
        "event.event_id", "event.type", "event.customer_id", "event.anonymous_id",
        "event.timestamp_ms", 'event.properties["price"]', 'event.properties["colour"]', "top_k",
    }  # fmt: skip
    assert "'{'" in violations["event.customer_id"]
    assert "not both" in violations["event.anonymous_id"]
    assert "in the future" in violations["event.timestamp_ms"]
    assert "NaN" in violations['event.properties["price"]']
    await _serves(service)


async def test_nothing_of_an_invalid_event_is_stored(service: Service) -> None:
    bad = _event(event_id="e-bad", properties={"price": pb.Value(number_value=math.nan)})
    await _invalid(service, pb.DecideRequest(event=bad))
    view = await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="ola"))
    assert view.customer.last_event_ms == 0


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (pb.IdentifyRequest(), {"customer_id"}),
        (pb.IdentifyRequest(customer_id="p{q}"), {"customer_id"}),
        (pb.IdentifyRequest(customer_id="pia", anonymous_id="a b"), {"anonymous_id"}),
        (
            pb.IdentifyRequest(
                customer_id="pia",
                anonymous_id="}",
                traits={"tier": pb.Value(), "score": pb.Value(number_value=math.nan)},
            ),
            {"anonymous_id", 'traits["tier"]', 'traits["score"]'},
        ),
        (
            pb.IdentifyRequest(
                customer_id="pia", traits={f"t{i}": pb.Value(bool_value=True) for i in range(65)}
            ),
            {"traits"},
        ),
    ],
    ids=["no-customer", "brace", "bad-anonymous-id", "all-together", "too-many-traits"],
)
async def test_identify_names_its_bad_fields(
    service: Service, request_: pb.IdentifyRequest, fields: set[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.stub.Identify(request_, timeout=5)
    assert set(_violations(raised.value)) == fields


async def test_get_and_forget_customer_refuse_bad_ids(service: Service) -> None:
    for customer in ("", "{x}"):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id=customer))
        assert set(_violations(raised.value)) == {"customer_id"}
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await service.stub.ForgetCustomer(pb.ForgetCustomerRequest(customer_id=customer))
        assert set(_violations(raised.value)) == {"customer_id"}


async def test_an_oversized_message_is_refused_and_the_server_serves_on(
    service: Service,
) -> None:
    # Valid in every field, only too big: 60 properties of 250 characters is about 16 KiB.
    properties = {f"p{i}": pb.Value(string_value="x" * 250) for i in range(60)}
    request = pb.DecideRequest(event=_event(event_id="big", properties=properties))
    assert request.ByteSize() > MAX_MESSAGE_BYTES
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.stub.Decide(request, timeout=5)
    assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    await _serves(service)
    view = await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id="ola"))
    assert view.customer.journeys[0].counters["product_views_7d"] == 1  # only the good event


async def _open_stream(
    service: Service, customer: str
) -> grpc.aio.StreamStreamCall[pb.DecideStreamRequest, pb.DecideStreamResponse]:
    """A DecideStream the server is surely running: one event sent and answered."""
    stream = service.stub.DecideStream(timeout=10)
    event = _event(event_id=f"{customer}-1", customer_id=customer)
    await stream.write(pb.DecideStreamRequest(request=pb.DecideRequest(event=event)))
    assert (await stream.read()).decision.event_id == f"{customer}-1"
    return stream


async def test_calls_beyond_the_concurrency_limit_are_shed_and_the_rest_succeed(
    service: Service,
) -> None:
    streams = [await _open_stream(service, f"held-{i}") for i in range(MAX_CONCURRENT_CALLS)]
    try:
        outcomes = []
        for i in range(5):
            try:
                await service.stub.Decide(pb.DecideRequest(event=_event(event_id=f"x{i}")))
                outcomes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as error:
                outcomes.append(error.code())
        assert outcomes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 5
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await service.stub.Decide(pb.DecideRequest(event=_event(event_id="x-hint")))
        assert _retry_after_s(raised.value) > 0  # when to come back, as google.rpc.RetryInfo
        # The held calls are unaffected: each answers another event, then ends OK.
        for i, stream in enumerate(streams):
            event = _event(event_id=f"held-{i}-2", customer_id=f"held-{i}")
            await stream.write(pb.DecideStreamRequest(request=pb.DecideRequest(event=event)))
            assert (await stream.read()).decision.event_id == f"held-{i}-2"
            await stream.done_writing()
            assert await stream.code() is grpc.StatusCode.OK
    finally:
        for stream in streams:
            stream.cancel()
    await _serves(service)


async def test_a_burst_beyond_the_limit_gets_only_answers_or_resource_exhausted(
    service: Service,
) -> None:
    async def outcome(i: int) -> grpc.StatusCode:
        request = pb.DecideRequest(event=_event(event_id=f"burst-{i}", customer_id=f"b{i}"))
        try:
            await service.stub.Decide(request, timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    outcomes = await asyncio.gather(*(outcome(i) for i in range(40)))
    assert set(outcomes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert grpc.StatusCode.OK in outcomes
    for i, code in enumerate(outcomes):  # a shed call wrote nothing, an answered one did
        view = await service.stub.GetCustomer(pb.GetCustomerRequest(customer_id=f"b{i}"))
        assert (view.customer.last_event_ms > 0) is (code is grpc.StatusCode.OK)


async def test_a_timestamp_in_seconds_is_refused_with_the_milliseconds_to_send(
    service: Service,
) -> None:
    seconds = int(time.time())
    violations = await _invalid(service, pb.DecideRequest(event=_event(timestamp_ms=seconds)))
    assert set(violations) == {"event.timestamp_ms"}
    assert "seconds" in violations["event.timestamp_ms"]
    assert str(seconds * 1000) in violations["event.timestamp_ms"]
    # A real time of long ago (CDNOW's 1997) is still a replayable past event.
    assert await _decided(service, _event(event_id="old", timestamp_ms=852_076_800_000))


async def _decided(service: Service, event: pb.Event) -> pb.Decision:
    return (await service.stub.Decide(pb.DecideRequest(event=event), timeout=5)).decision


CORRUPT_REQUESTS = {
    "not protobuf": b"\xff\xff\xff\xff",
    # event { event_id: <0xff> }: a string field that is not UTF-8.
    "not utf-8": bytes([0x0A, 0x03, 0x0A, 0x01, 0xFF]),
}


@pytest.mark.parametrize("payload", CORRUPT_REQUESTS.values(), ids=CORRUPT_REQUESTS.keys())
async def test_corrupt_request_bytes_are_invalid_argument_and_logged_once(
    service: Service, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    raw = service.channel.unary_unary(
        "/journeyman.v1.JourneyService/Decide",
        request_serializer=lambda data: data,
        response_deserializer=pb.DecideResponse.FromString,
    )
    for _ in range(20):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await raw(payload, timeout=5)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid Decide request" in (raised.value.details() or "")
    lines = [r for r in caplog.records if "not a valid message" in r.getMessage()]
    assert len(lines) <= 1 and not [r for r in caplog.records if r.levelname == "ERROR"]
    await _serves(service, event_id=f"after-{len(payload)}")


async def test_a_corrupt_message_in_a_stream_ends_it_with_invalid_argument(
    service: Service,
) -> None:
    raw = service.channel.stream_stream(
        "/journeyman.v1.JourneyService/DecideStream",
        request_serializer=lambda data: data,
        response_deserializer=pb.DecideStreamResponse.FromString,
    )
    good = pb.DecideStreamRequest(request=pb.DecideRequest(event=_event(event_id="st-1")))
    call = raw(iter([good.SerializeToString(), CORRUPT_REQUESTS["not protobuf"]]), timeout=5)
    answers = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for answer in call:
            answers.append(answer)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [a.decision.event_id for a in answers] == ["st-1"]
