"""The README's scope table as a check: every RPC of journeyman.v1.JourneyService, called with
every kind of token against a real server on a real Redis, ends with the status the table
promises and answers with no field beyond the caller's scopes. Health and reflection need no
token at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.core.config import Settings
from tests.conftest import Service

pytestmark = pytest.mark.service

Metadata = tuple[tuple[str, str], ...]
Stub = pb_grpc.JourneyServiceStub

CUSTOMER = "ada"
VISITOR = "visitor-ada"
# A trait only a `read` scope may see; it must not show up in any other answer, in any field.
EMAIL = "ada.lovelace.0123@example.com"
ALL_SCOPES = frozenset({"decide", "read", "admin"})


@dataclass(frozen=True)
class TokenKind:
    """A kind of caller: the token it sends (None: none) and the scopes the tokens file lists
    for it (None: the token is not in the file; empty: listed with no scope, so every scope)."""

    secret: str | None
    listed: tuple[str, ...] | None

    @property
    def known(self) -> bool:
        return self.secret is not None and self.listed is not None

    def allows(self, scope: str) -> bool:
        granted = frozenset(self.listed or ALL_SCOPES) if self.known else frozenset()
        return scope in granted or "admin" in granted

    def metadata(self) -> Metadata:
        return (("authorization", f"Bearer {self.secret}"),) if self.secret else ()


TOKEN_KINDS: Mapping[str, TokenKind] = {
    "no token": TokenKind(None, None),
    "unknown token": TokenKind("unknown-token-0123456789", None),
    "decide": TokenKind("decide-token-0123456789", ("decide",)),
    "read": TokenKind("read-token-0123456789ab", ("read",)),
    "decide and read": TokenKind("decide-read-token-012345", ("decide", "read")),
    "admin": TokenKind("admin-token-0123456789ab", ("admin",)),
    "no scope listed": TokenKind("every-scope-token-012345", ()),
}
SETUP = TOKEN_KINDS["admin"]


def _event(event_id: str, *, customer: str = "", visitor: str = "") -> pb.DecideRequest:
    event = pb.Event(
        event_id=event_id, customer_id=customer, anonymous_id=visitor, type="add_to_cart",
        channel="web",
    )  # fmt: skip
    return pb.DecideRequest(event=event)


async def _decide(stub: Stub, metadata: Metadata) -> Message:
    return await stub.Decide(_event("scoped-1", customer=CUSTOMER), metadata=metadata, timeout=10)


async def _decide_stream(stub: Stub, metadata: Metadata) -> Message:
    async def requests() -> AsyncIterator[pb.DecideStreamRequest]:
        yield pb.DecideStreamRequest(request=_event("scoped-1", customer=CUSTOMER))

    call = stub.DecideStream(requests(), metadata=metadata, timeout=10)
    (answer,) = [answer async for answer in call]
    return answer


async def _decide_batch(stub: Stub, metadata: Metadata) -> Message:
    batch = pb.DecideBatchRequest(requests=[_event("scoped-1", customer=CUSTOMER)])
    return await stub.DecideBatch(batch, metadata=metadata, timeout=10)


async def _identify(stub: Stub, metadata: Metadata) -> Message:
    request = pb.IdentifyRequest(customer_id=CUSTOMER, anonymous_id=VISITOR)
    return await stub.Identify(request, metadata=metadata, timeout=10)


async def _get_customer(stub: Stub, metadata: Metadata) -> Message:
    request = pb.GetCustomerRequest(customer_id=CUSTOMER)
    return await stub.GetCustomer(request, metadata=metadata, timeout=10)


async def _forget_customer(stub: Stub, metadata: Metadata) -> Message:
    request = pb.ForgetCustomerRequest(customer_id=CUSTOMER)
    return await stub.ForgetCustomer(request, metadata=metadata, timeout=10)


async def _get_ruleset(stub: Stub, metadata: Metadata) -> Message:
    return await stub.GetRuleset(pb.GetRulesetRequest(), metadata=metadata, timeout=10)


async def _record_response(stub: Stub, metadata: Metadata) -> Message:
    request = pb.RecordResponseRequest(
        customer_id=CUSTOMER, event_id="scoped-1", action="welcome_discount", response="click"
    )
    return await stub.RecordResponse(request, metadata=metadata, timeout=10)


async def _get_action_report(stub: Stub, metadata: Metadata) -> Message:
    request = pb.GetActionReportRequest(journey="retail")
    return await stub.GetActionReport(request, metadata=metadata, timeout=10)


async def _get_journey_stats(stub: Stub, metadata: Metadata) -> Message:
    request = pb.GetJourneyStatsRequest(journey="retail")
    return await stub.GetJourneyStats(request, metadata=metadata, timeout=10)


async def _subscribe(stub: Stub, metadata: Metadata) -> Message:
    """The first outbox entry (from the oldest kept), or an empty one if none comes in 0.5 s:
    a refused call fails at its first read."""
    call = stub.Subscribe(pb.SubscribeRequest(from_id="0"), metadata=metadata, timeout=10)
    try:
        return await asyncio.wait_for(call.read(), 0.5)  # type: ignore[no-any-return]
    except TimeoutError:
        return pb.SubscribeResponse()
    finally:
        call.cancel()


@dataclass(frozen=True)
class Rpc:
    """One row of the README's scope table: the scope a call needs, and the answer's fields by
    the scope that lets them out (a caller gets the fields of every scope it holds)."""

    call: Callable[[Stub, Metadata], Awaitable[Message]]
    scope: str
    carries: Mapping[str, frozenset[str]]
    # Fields that may be left at their default even when carried (counters that can be 0).
    may_be_empty: frozenset[str] = frozenset()

    def fields_for(self, kind: TokenKind) -> frozenset[str]:
        return frozenset().union(*(f for s, f in self.carries.items() if kind.allows(s)))


SCOPE_TABLE: Mapping[str, Rpc] = {
    "Decide": Rpc(_decide, "decide", {"decide": frozenset({"decision"})}),
    "DecideStream": Rpc(_decide_stream, "decide", {"decide": frozenset({"decision"})}),
    "DecideBatch": Rpc(
        _decide_batch, "decide", {"decide": frozenset({"results", "not_stored"})},
        may_be_empty=frozenset({"not_stored"}),
    ),
    "Identify": Rpc(
        _identify, "decide",
        {"decide": frozenset({"merged"}), "read": frozenset({"customer"})},
    ),
    "GetCustomer": Rpc(_get_customer, "read", {"read": frozenset({"customer", "known"})}),
    "ForgetCustomer": Rpc(_forget_customer, "admin", {"admin": frozenset({"deleted_keys"})}),
    "GetRuleset": Rpc(
        _get_ruleset, "read",
        {"read": frozenset({"version", "files", "loaded_at_ms", "reloads", "failed_reloads"})},
        may_be_empty=frozenset({"reloads", "failed_reloads"}),
    ),
    "RecordResponse": Rpc(_record_response, "decide", {"decide": frozenset({"decision"})}),
    "GetActionReport": Rpc(
        _get_action_report, "read",
        {"read": frozenset({"journey", "since", "until", "rows", "ruleset_version"})},
    ),
    "GetJourneyStats": Rpc(
        _get_journey_stats, "read",
        {"read": frozenset({
            "journey", "since", "until", "stages", "transitions", "stall_after_ms",
            "friction_levels", "description", "ruleset_version", "as_of_ms",
        })},
    ),
    "Subscribe": Rpc(
        _subscribe, "read",
        {"read": frozenset({"entry"})}, may_be_empty=frozenset({"entry"}),
    ),
}  # fmt: skip


@pytest.fixture
def service_settings(service_settings: Settings, tmp_path: Path) -> Settings:
    """The conftest's settings, with a tokens file holding every known kind of token."""
    tokens = tmp_path / "tokens"
    lines = [f"{k.secret} {' '.join(k.listed or ())}" for k in TOKEN_KINDS.values() if k.known]
    tokens.write_text("\n".join(["# one line per kind of caller", *lines]) + "\n")
    return replace(service_settings, auth_tokens_file=tokens)


async def _stored_customer_and_visitor(stub: Stub) -> int:
    """CUSTOMER stored with the EMAIL trait, VISITOR with an event for Identify to merge; the
    time of that event, in ms since the epoch."""
    traits = {"email": pb.Value(string_value=EMAIL)}
    setup = SETUP.metadata()
    await stub.Identify(pb.IdentifyRequest(customer_id=CUSTOMER, traits=traits), metadata=setup)
    decision = (await stub.Decide(_event("visit-1", visitor=VISITOR), metadata=setup)).decision
    assert not decision.degraded
    return decision.decided_at_ms


async def _stored_view(stub: Stub, at_ms: int) -> pb.GetCustomerResponse:
    """CUSTOMER as stored, read by the setup token at `at_ms` (so time alone changes nothing)."""
    request = pb.GetCustomerRequest(customer_id=CUSTOMER, as_of_ms=at_ms)
    return await stub.GetCustomer(request, metadata=SETUP.metadata(), timeout=10)


def test_the_table_names_every_rpc_of_the_service() -> None:
    service = pb.DESCRIPTOR.services_by_name["JourneyService"]
    assert set(SCOPE_TABLE) == {method.name for method in service.methods}


def _expected_code(rpc: Rpc, kind: TokenKind) -> grpc.StatusCode:
    if not kind.known:
        return grpc.StatusCode.UNAUTHENTICATED
    return grpc.StatusCode.OK if kind.allows(rpc.scope) else grpc.StatusCode.PERMISSION_DENIED


def _carries_a_customer_view(message: Message) -> bool:
    """Whether a CustomerView is set anywhere in `message`, at any depth."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.full_name == pb.CustomerView.DESCRIPTOR.full_name:
            return True
        values = value if field.is_repeated else [value]
        if any(isinstance(v, Message) and _carries_a_customer_view(v) for v in values):
            return True
    return False


@pytest.mark.parametrize("kind_name", TOKEN_KINDS)
@pytest.mark.parametrize("rpc_name", SCOPE_TABLE)
async def test_each_rpc_answers_each_token_within_its_scope(
    service: Service, rpc_name: str, kind_name: str
) -> None:
    rpc, kind = SCOPE_TABLE[rpc_name], TOKEN_KINDS[kind_name]
    at_ms = await _stored_customer_and_visitor(service.stub)
    expected = _expected_code(rpc, kind)
    if expected is not grpc.StatusCode.OK:
        before = await _stored_view(service.stub, at_ms)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await rpc.call(service.stub, kind.metadata())
        assert refused.value.code() == expected, refused.value.details()
        assert await _stored_view(service.stub, at_ms) == before  # a refused call did nothing
        return
    answer = await rpc.call(service.stub, kind.metadata())
    present = {field.name for field, _ in answer.ListFields()}
    allowed = rpc.fields_for(kind)
    assert allowed - rpc.may_be_empty <= present <= allowed, answer
    # The profile (traits such as the e-mail) travels only inside a customer view, and a view
    # only where the table lets one out: no other field carries it, whatever its name.
    profile = _carries_a_customer_view(answer)
    assert profile == ("customer" in allowed), answer
    assert (EMAIL.encode() in answer.SerializeToString()) == profile, answer


async def test_concurrent_calls_keep_their_own_scopes(service: Service) -> None:
    """The caller's scopes are per call: a decide-only Identify running alongside admin ones
    never gets the profile they get."""
    kinds = [TOKEN_KINDS["decide"], TOKEN_KINDS["admin"]] * 20
    # One customer per call, so that no call waits on another's commit.
    calls = (
        service.stub.Identify(pb.IdentifyRequest(customer_id=f"c{i}"), metadata=k.metadata())
        for i, k in enumerate(kinds)
    )
    answers = await asyncio.gather(*calls)
    for kind, answer in zip(kinds, answers, strict=True):
        assert _carries_a_customer_view(answer) == kind.allows("read")


@pytest.mark.parametrize("kind_name", TOKEN_KINDS)
async def test_health_needs_no_token(service: Service, kind_name: str) -> None:
    metadata = TOKEN_KINDS[kind_name].metadata()
    health = health_pb2_grpc.HealthStub(service.channel)
    for name in ("", "journeyman.v1.JourneyService"):
        request = health_pb2.HealthCheckRequest(service=name)
        reply = await health.Check(request, metadata=metadata, timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "reflection",
    ["grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"],
)
@pytest.mark.parametrize("kind_name", TOKEN_KINDS)
async def test_reflection_needs_no_token(service: Service, kind_name: str, reflection: str) -> None:
    info = service.channel.stream_stream(
        f"/{reflection}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    ask = reflection_pb2.ServerReflectionRequest(list_services="")
    call = info(iter([ask]), metadata=TOKEN_KINDS[kind_name].metadata(), timeout=10)
    (reply,) = [reply async for reply in call]
    names = {listed.name for listed in reply.list_services_response.service}
    assert "journeyman.v1.JourneyService" in names
