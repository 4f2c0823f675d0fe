"""Access: TLS and mTLS on the gRPC port, bearer tokens with scopes, health exempt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.api.auth import TokensInvalid, parse_tokens
from server.core.config import Settings
from server.runtime.app import Running
from tests.conftest import start_retail_server

pytestmark = pytest.mark.service

DECIDER = "decider-token-0123456789"
READER = "reader-token-0123456789"
ADMIN = "admin-token-0123456789ab"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pems(tmp_path: Path, ca: trustme.CA) -> dict[str, Path]:
    """The server's certificate and key, the CA, and a client certificate it signed."""
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("client.example")
    files = {
        "cert": server_cert.cert_chain_pems[0].bytes(),
        "key": server_cert.private_key_pem.bytes(),
        "ca": ca.cert_pem.bytes(),
        "client_cert": client_cert.cert_chain_pems[0].bytes(),
        "client_key": client_cert.private_key_pem.bytes(),
    }
    for name, data in files.items():
        (tmp_path / f"{name}.pem").write_bytes(data)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# who may call\n{DECIDER} decide\n{READER} read\n{ADMIN}\n")
    return {name: tmp_path / f"{name}.pem" for name in files} | {"tokens": tokens}


@pytest.fixture
async def tls_server(
    pems: dict[str, Path], redis_url: str, key_prefix: str
) -> AsyncIterator[Running]:
    settings = Settings(
        host="127.0.0.1", port=0, key_prefix=key_prefix, tls_cert=pems["cert"],
        tls_key=pems["key"], auth_tokens_file=pems["tokens"],
    )  # fmt: skip
    running = await start_retail_server(settings, redis_url)
    yield running
    await running.stop(0.5)


def _credentials(pems: dict[str, Path], *, client_cert: bool = False) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pems["ca"].read_bytes(),
        private_key=pems["client_key"].read_bytes() if client_cert else None,
        certificate_chain=pems["client_cert"].read_bytes() if client_cert else None,
    )


def _decide(token: str | None) -> tuple[pb.DecideRequest, tuple[tuple[str, str], ...]]:
    event = pb.Event(event_id=f"a-{token}", customer_id="alex", type="page_view")
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return pb.DecideRequest(event=event), metadata


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, grpc.StatusCode.UNAUTHENTICATED),
        ("not-a-known-token-at-all", grpc.StatusCode.UNAUTHENTICATED),
        (READER, grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_decide_needs_a_known_token_with_the_decide_scope(
    tls_server: Running, pems: dict[str, Path], token: str | None, code: grpc.StatusCode
) -> None:
    async with grpc.aio.secure_channel(f"localhost:{tls_server.port}", _credentials(pems)) as ch:
        request, metadata = _decide(token)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await pb_grpc.JourneyServiceStub(ch).Decide(request, metadata=metadata)
        assert error.value.code() == code


async def test_scopes_allow_what_they_name_and_admin_allows_everything(
    tls_server: Running, pems: dict[str, Path]
) -> None:
    async with grpc.aio.secure_channel(f"localhost:{tls_server.port}", _credentials(pems)) as ch:
        stub = pb_grpc.JourneyServiceStub(ch)
        request, metadata = _decide(DECIDER)
        assert (await stub.Decide(request, metadata=metadata)).decision.journeys[0].stage
        forget = pb.ForgetCustomerRequest(customer_id="alex")
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.ForgetCustomer(forget, metadata=metadata)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        admin = (("authorization", f"Bearer {ADMIN}"),)
        assert (await stub.ForgetCustomer(forget, metadata=admin)).deleted_keys > 0
        reader = (("authorization", f"Bearer {READER}"),)
        assert (await stub.GetRuleset(pb.GetRulesetRequest(), metadata=reader)).version


async def test_health_needs_no_token_and_plaintext_clients_are_refused(
    tls_server: Running, pems: dict[str, Path]
) -> None:
    async with grpc.aio.secure_channel(f"localhost:{tls_server.port}", _credentials(pems)) as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tls_server.port}") as plain:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await health_pb2_grpc.HealthStub(plain).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_refuses_clients_without_a_certificate_from_the_client_ca(
    pems: dict[str, Path], redis_url: str, key_prefix: str
) -> None:
    settings = Settings(
        host="127.0.0.1", port=0, key_prefix=key_prefix, tls_cert=pems["cert"],
        tls_key=pems["key"], tls_client_ca=pems["ca"],
    )  # fmt: skip
    running = await start_retail_server(settings, redis_url)
    try:
        address = f"localhost:{running.port}"
        async with grpc.aio.secure_channel(address, _credentials(pems)) as anonymous:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await health_pb2_grpc.HealthStub(anonymous).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        async with grpc.aio.secure_channel(address, _credentials(pems, client_cert=True)) as ch:
            request, _ = _decide("mtls")
            assert (await pb_grpc.JourneyServiceStub(ch).Decide(request)).decision.journeys
    finally:
        await running.stop(0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{DECIDER} decide writes\n", "tokens:1: unknown scope 'writes'; write one of decide"),
        ("short decide\n", "tokens:1: a token needs at least 16 characters"),
        ("# nothing\n", "tokens: no token found"),
    ],
)  # fmt: skip
def test_a_bad_tokens_file_says_where_and_what_to_write(text: str, message: str) -> None:
    with pytest.raises(TokensInvalid, match=message):
        parse_tokens(text, "tokens")
