"""Whatever a client sends, the answer is OK or INVALID_ARGUMENT naming the bad fields: never
UNKNOWN, never a crash, and never a change to another customer's state."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from tests.service.test_process import Served, _free_port, _start, _wait_until_serving

pytestmark = pytest.mark.service

SENTINEL = "sentinel-customer"
NOW_MS = 1_795_000_000_000

texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "a{b}", "x" * 300, "é😀", "\x00", "{c:other}", " ", "\n"]),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**53), 2**53).map(float)
)
values = st.one_of(
    texts.map(lambda t: pb.Value(string_value=t)),
    numbers.map(lambda n: pb.Value(number_value=n)),
    st.booleans().map(lambda b: pb.Value(bool_value=b)),
    st.just(pb.Value()),
)
timestamps = st.one_of(
    st.just(0), st.integers(-(2**63), 2**63 - 1), st.integers(NOW_MS - 10**12, NOW_MS + 10**12)
)


@st.composite
def events(draw: st.DrawFn) -> pb.Event:
    customer = draw(st.one_of(texts, st.sampled_from(["ok-1", "ok-2", SENTINEL])))
    return pb.Event(
        event_id=draw(texts),
        customer_id=customer,
        anonymous_id=draw(st.one_of(st.just(""), texts)),
        type=draw(st.one_of(texts, st.sampled_from(["page_view", "add_to_cart", "purchase"]))),
        channel=draw(texts),
        touchpoint=draw(texts),
        timestamp_ms=draw(timestamps),
        properties=draw(st.dictionaries(texts, values, max_size=draw(st.sampled_from([3, 80])))),
    )


@st.composite
def near_valid_events(draw: st.DrawFn) -> pb.Event:
    """A valid event with at most one field made random, so that the OK path and each single
    bad field are exercised too (a fully random event is almost never valid)."""
    event = pb.Event(
        event_id=draw(st.uuids()).hex,
        customer_id=draw(st.sampled_from(["ok-1", "ok-2"])),
        type=draw(st.sampled_from(["page_view", "product_view", "add_to_cart", "purchase"])),
        channel="web",
        timestamp_ms=draw(st.integers(NOW_MS - 10**9, NOW_MS)),
    )
    broken = draw(st.sampled_from([None, "event_id", "customer_id", "type", "channel",
                                   "touchpoint", "timestamp_ms", "properties"]))  # fmt: skip
    if broken == "timestamp_ms":
        event.timestamp_ms = draw(timestamps)
    elif broken == "properties":
        for name, value in draw(st.dictionaries(texts, values, max_size=80)).items():
            event.properties[name].CopyFrom(value)
    elif broken is not None:
        setattr(event, broken, draw(texts))
    return event


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = _start(tmp_path_factory.mktemp("bad-input"), _free_port())
    try:
        _wait_until_serving(server)
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def stub(served: Served) -> Iterator[pb_grpc.JourneyServiceStub]:
    """A client, with the sentinel customer in consideration before any random request."""
    with grpc.insecure_channel(served.address) as channel:
        stub = pb_grpc.JourneyServiceStub(channel)
        event = pb.Event(event_id="s-1", customer_id=SENTINEL, type="add_to_cart")
        stub.Decide(pb.DecideRequest(event=event), timeout=5)
        yield stub


@pytest.fixture(scope="module")
def answers() -> Iterator[Counter[str]]:
    """The answers to every random request of the module, printed as a table at its end."""
    tally: Counter[str] = Counter()
    yield tally
    _print_table(tally)


def _print_table(tally: Counter[str]) -> None:
    columns = ("sent", "acknowledged", "degraded", "INVALID_ARGUMENT", "ALREADY_EXISTS")
    print("\n" + " ".join(f"{c:>16}" for c in columns))
    print(" ".join(f"{tally[c]:>16}" for c in columns))
    print(
        "invariant: every answer OK, INVALID_ARGUMENT with a field violation per bad field, or "
        "ALREADY_EXISTS for an event id drawn twice; never UNKNOWN; the sentinel customer "
        f"unchanged after each of {tally['sentinel unchanged']} requests"
    )


def _sentinel(stub: pb_grpc.JourneyServiceStub) -> pb.CustomerView:
    return stub.GetCustomer(pb.GetCustomerRequest(customer_id=SENTINEL), timeout=5).customer


@settings(max_examples=150, deadline=None)
@given(
    event=st.one_of(events(), near_valid_events()),
    top_k=st.integers(-5, 60),
    explain=st.booleans(),
)
def test_any_decide_request_is_answered_or_refused_with_field_violations(
    stub: pb_grpc.JourneyServiceStub,
    answers: Counter[str],
    event: pb.Event,
    top_k: int,
    explain: bool,
) -> None:
    if event.customer_id == SENTINEL:
        event.customer_id = "ok-3"  # the sentinel only ever gets the events below
    before = _sentinel(stub)
    answers["sent"] += 1
    try:
        reply = stub.Decide(pb.DecideRequest(event=event, top_k=top_k, explain=explain), timeout=5)
    except grpc.RpcError as error:
        answers[error.code().name] += 1
        if error.code() == grpc.StatusCode.ALREADY_EXISTS:  # an event id drawn twice: refused
            assert "already used for a different event" in (error.details() or "")
            return
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
        status = rpc_status.from_call(error)
        assert status is not None, "INVALID_ARGUMENT without google.rpc.Status details"
        bad_request = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(bad_request)
        assert bad_request.field_violations and all(v.field for v in bad_request.field_violations)
    else:
        answers["degraded" if reply.decision.degraded else "acknowledged"] += 1
        assert reply.decision.journeys and not math.isnan(reply.decision.journeys[0].friction_score)
    assert _sentinel(stub) == before
    answers["sentinel unchanged"] += 1


def test_the_sentinel_is_a_real_customer(stub: pb_grpc.JourneyServiceStub) -> None:
    assert _sentinel(stub).journeys[0].stage == "consideration"
