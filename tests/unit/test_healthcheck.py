"""`python -m server.tools.healthcheck`: the container's HEALTHCHECK, run as Docker runs it (a
process), against a real grpc.aio health servicer on a loopback port: plaintext, TLS and mTLS,
with real certificates from trustme."""

from __future__ import annotations

import asyncio
import datetime
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from server.core.certificate import certificate_names, expected_name
from server.tools.healthcheck import EXIT_NOT_SERVING, EXIT_SERVING

REPO = Path(__file__).resolve().parents[2]
# A refused connection must fail at once, not after the timeout: generous for a slow CI machine
# (interpreter and grpc start-up included), far below the Dockerfile's HEALTHCHECK --timeout.
QUICK_S = 4.0


@dataclass
class Checked:
    code: int
    out: str
    err: str
    elapsed_s: float


async def run_healthcheck(*args: str) -> Checked:
    """The check as a child process; awaited, so this event loop's server keeps answering."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.tools.healthcheck", *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return Checked(process.returncode, out.decode(), err.decode(), time.monotonic() - started)


@dataclass
class HealthServer:
    address: str
    servicer: health.aio.HealthServicer


@pytest.fixture
async def health_server() -> AsyncIterator[HealthServer]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield HealthServer(f"127.0.0.1:{port}", servicer)
    finally:
        await server.stop(None)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) but never speaks HTTP/2."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting is refused, and no other test can take it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


async def test_serving_exits_0(health_server: HealthServer) -> None:
    await health_server.servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    checked = await run_healthcheck(health_server.address)
    assert checked.code == EXIT_SERVING, checked.err
    assert checked.out.strip() == f"{health_server.address}: SERVING"


async def test_not_serving_exits_1(health_server: HealthServer) -> None:
    await health_server.servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    checked = await run_healthcheck(health_server.address)
    assert checked.code == EXIT_NOT_SERVING
    assert checked.out.strip() == f"{health_server.address}: NOT_SERVING"


async def test_graceful_shutdown_exits_1(health_server: HealthServer) -> None:
    """What a stopping server says: the container is unhealthy while it drains."""
    await health_server.servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_server.servicer.enter_graceful_shutdown()
    assert (await run_healthcheck(health_server.address)).code == EXIT_NOT_SERVING


async def test_one_service_can_be_asked_about(health_server: HealthServer) -> None:
    await health_server.servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    service = "journeyman.v1.JourneyService"
    await health_server.servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    asked = await run_healthcheck(health_server.address, "--service", service)
    assert asked.code == EXIT_NOT_SERVING
    unknown = await run_healthcheck(health_server.address, "--service", "no.such.Service")
    assert unknown.code == EXIT_NOT_SERVING
    assert "NOT_FOUND" in unknown.err


async def test_nothing_listening_exits_1_at_once(closed_port: int) -> None:
    address = f"127.0.0.1:{closed_port}"
    checked = await run_healthcheck(address, "--timeout", "10")
    assert checked.code == EXIT_NOT_SERVING
    assert checked.err.startswith(f"{address}: UNAVAILABLE")
    assert checked.elapsed_s < QUICK_S, "a refused connection should not wait for the timeout"


async def test_a_server_that_never_answers_exits_1_after_the_timeout(silent_port: int) -> None:
    checked = await run_healthcheck(f"127.0.0.1:{silent_port}", "--timeout", "0.5")
    assert checked.code == EXIT_NOT_SERVING
    assert "DEADLINE_EXCEEDED" in checked.err
    assert 0.5 <= checked.elapsed_s < 0.5 + QUICK_S


async def test_default_address_is_the_configured_port_on_loopback(
    health_server: HealthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await health_server.servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = health_server.address.rsplit(":", 1)[1]
    monkeypatch.setenv("JOURNEYMAN_PORT", port)  # the child process inherits it
    checked = await run_healthcheck()
    assert checked.code == EXIT_SERVING, checked.err
    assert checked.out.strip() == f"127.0.0.1:{port}: SERVING"


async def test_a_bad_port_setting_exits_1_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYMAN_PORT", "fifty")
    checked = await run_healthcheck()
    assert checked.code == EXIT_NOT_SERVING
    assert "JOURNEYMAN_PORT='fifty'" in checked.err


# --- TLS and mTLS: the check reads the server's own JOURNEYMAN_TLS_* settings ----------------

SERVER_NAME = "journeyman.internal"  # not 127.0.0.1: the check must take the name from the cert


@dataclass
class Pems:
    """PEM files of a CA, a server certificate it signed for SERVER_NAME, and a client one."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def write_pems(folder: Path, ca: trustme.CA, *, chain: bool = False) -> Pems:
    """Files for `ca`; with `chain`, the server certificate comes from an intermediate CA and
    its file holds the chain (leaf, then intermediate), as a real deployment's does."""
    folder.mkdir(parents=True, exist_ok=True)
    issuer = ca.create_child_ca() if chain else ca
    server, client = issuer.issue_cert(SERVER_NAME), issuer.issue_cert("client.example")
    pems = Pems(*(folder / f"{n}.pem" for n in ("ca", "cert", "key", "client_cert", "client_key")))
    ca.cert_pem.write_to_path(str(pems.ca))
    pems.cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(pems.key))
    pems.client_cert.write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    client.private_key_pem.write_to_path(str(pems.client_key))
    return pems


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pems(tmp_path: Path, ca: trustme.CA) -> Pems:
    return write_pems(tmp_path / "server", ca)


@asynccontextmanager
async def secure_health_server(pems: Pems, client_ca: Path | None = None) -> AsyncIterator[int]:
    """A SERVING health servicer on a TLS port (mTLS with `client_ca`); yields the port."""
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    credentials = grpc.ssl_server_credentials(
        [(pems.key.read_bytes(), pems.cert.read_bytes())],
        root_certificates=client_ca.read_bytes() if client_ca else None,
        require_client_auth=client_ca is not None,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


def as_server_is_configured(
    monkeypatch: pytest.MonkeyPatch, port: int, pems: Pems | None, client_ca: Path | None = None
) -> None:
    """The environment the server runs with in its container, which the check inherits."""
    monkeypatch.setenv("JOURNEYMAN_PORT", str(port))
    for name in ("CERT", "KEY", "CLIENT_CA"):
        monkeypatch.delenv(f"JOURNEYMAN_TLS_{name}", raising=False)
    if pems is not None:
        monkeypatch.setenv("JOURNEYMAN_TLS_CERT", str(pems.cert))
        monkeypatch.setenv("JOURNEYMAN_TLS_KEY", str(pems.key))
    if client_ca is not None:
        monkeypatch.setenv("JOURNEYMAN_TLS_CLIENT_CA", str(client_ca))


@pytest.mark.parametrize("chain", [False, True], ids=["signed-by-root", "with-intermediate"])
async def test_a_tls_server_is_checked_over_tls_trusting_its_own_certificate(
    tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch, chain: bool
) -> None:
    pems = write_pems(tmp_path, ca, chain=chain)
    async with secure_health_server(pems) as port:
        as_server_is_configured(monkeypatch, port, pems)
        checked = await run_healthcheck()
    assert checked.code == EXIT_SERVING, checked.err
    assert checked.out.strip() == f"127.0.0.1:{port}: SERVING"


async def test_an_mtls_server_is_checked_with_its_own_certificate(
    pems: Pems, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with secure_health_server(pems, client_ca=pems.ca) as port:
        as_server_is_configured(monkeypatch, port, pems, client_ca=pems.ca)
        checked = await run_healthcheck()
    assert checked.code == EXIT_SERVING, checked.err


async def test_an_mtls_server_whose_client_ca_did_not_sign_its_certificate_needs_a_client_pair(
    pems: Pems, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clients = write_pems(tmp_path / "clients", trustme.CA())  # another CA signs the clients
    async with secure_health_server(pems, client_ca=clients.ca) as port:
        as_server_is_configured(monkeypatch, port, pems, client_ca=clients.ca)
        refused = await run_healthcheck()
        pair = ("--tls-cert", str(clients.client_cert), "--tls-key", str(clients.client_key))
        with_pair = await run_healthcheck(*pair)
    assert refused.code == EXIT_NOT_SERVING
    assert "JOURNEYMAN_TLS_CLIENT_CA must have signed it" in refused.err
    assert f"JOURNEYMAN_TLS_CERT {pems.cert}" in refused.err
    assert with_pair.code == EXIT_SERVING, with_pair.err


async def test_a_tls_server_checked_in_plaintext_says_to_give_the_check_its_settings(
    pems: Pems, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with secure_health_server(pems) as port:
        as_server_is_configured(monkeypatch, port, None)
        checked = await run_healthcheck()
    assert checked.code == EXIT_NOT_SERVING
    assert "the server may speak TLS: set JOURNEYMAN_TLS_CERT and JOURNEYMAN_TLS_KEY" in checked.err


async def test_a_plaintext_server_checked_with_tls_says_it_speaks_plaintext(
    health_server: HealthServer, pems: Pems, monkeypatch: pytest.MonkeyPatch
) -> None:
    await health_server.servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    as_server_is_configured(monkeypatch, int(health_server.address.rsplit(":", 1)[1]), pems)
    checked = await run_healthcheck()
    assert checked.code == EXIT_NOT_SERVING
    assert "the server speaks plaintext" in checked.err


async def test_the_ca_and_the_server_name_can_be_given(
    pems: Pems, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with secure_health_server(pems) as port:
        as_server_is_configured(monkeypatch, port, None)  # e.g. the server got TLS by flags
        by_ca = await run_healthcheck("--tls-ca", str(pems.ca), "--tls-server-name", SERVER_NAME)
        wrong_name = await run_healthcheck("--tls-ca", str(pems.ca), "--tls-server-name", "x.test")
        other_ca = await run_healthcheck(
            "--tls-ca", str(write_pems(pems.ca.parent / "other", trustme.CA()).ca),
            "--tls-server-name", SERVER_NAME,
        )  # fmt: skip
    assert by_ca.code == EXIT_SERVING, by_ca.err
    assert wrong_name.code == EXIT_NOT_SERVING
    assert "does not name x.test: pass --tls-server-name with a name it lists" in wrong_name.err
    assert other_ca.code == EXIT_NOT_SERVING
    assert "pass --tls-ca with the CA that signed it" in other_ca.err


async def test_an_unreadable_certificate_exits_1_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "cert.pem"
    monkeypatch.setenv("JOURNEYMAN_TLS_CERT", str(missing))
    monkeypatch.setenv("JOURNEYMAN_TLS_KEY", str(missing))
    checked = await run_healthcheck()
    assert checked.code == EXIT_NOT_SERVING
    assert f"cannot read JOURNEYMAN_TLS_CERT {missing}" in checked.err


# --- the names read from a certificate, against cryptography's reading ----------------------


def test_certificate_names_are_the_alt_names_dns_first(ca: trustme.CA) -> None:
    issued = ca.issue_cert("127.0.0.1", "journeyman.internal", "::1", "*.svc.example")
    pem = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
    parsed = x509.load_pem_x509_certificate(pem)
    alt = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    expected = alt.get_values_for_type(x509.DNSName) + [
        str(ip) for ip in alt.get_values_for_type(x509.IPAddress)
    ]
    assert certificate_names(pem) == expected == [
        "journeyman.internal", "*.svc.example", "127.0.0.1", "::1"
    ]  # fmt: skip
    assert expected_name(pem, "127.0.0.1") is None  # the address's host is in it: no override
    assert expected_name(pem, "10.0.0.7") == "journeyman.internal"
    wildcard_only = b"".join(b.bytes() for b in ca.issue_cert("*.svc.example").cert_chain_pems)
    assert expected_name(wildcard_only, "127.0.0.1") == "journeyman.svc.example"


def test_a_certificate_without_alt_names_is_known_by_its_common_name(ca: trustme.CA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "legacy.example")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    assert certificate_names(certificate.public_bytes(serialization.Encoding.PEM)) == [
        "legacy.example"
    ]


def test_a_file_without_a_certificate_names_nothing_and_leaves_the_name_to_the_address() -> None:
    with pytest.raises(ValueError, match="no PEM certificate"):
        certificate_names(b"not a certificate")
    assert (
        expected_name(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "h") is None
    )
