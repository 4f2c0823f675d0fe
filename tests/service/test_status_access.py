"""`journeyman status` against servers with TLS, mTLS and bearer tokens: real servers on loopback
ports, real certificates from trustme, the real command line. Every refusal says what to pass
instead, and no token is ever printed."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from server.core.config import Settings
from server.runtime.app import Running
from server.tools.cli import EXIT_INVALID, EXIT_OK, main
from server.tools.status import TOKEN_VARIABLE
from tests.conftest import Service, start_retail_server

pytestmark = pytest.mark.service

READER = "reader-token-0123456789"
DECIDER = "decider-token-0123456789"
ADMIN = "admin-token-0123456789ab"
SECRETS = (READER, DECIDER, ADMIN, "unknown-token-0123456789")
NO_METRICS = "http://127.0.0.1:9/metrics"  # nothing there: status says so and goes on


@dataclass
class Outcome:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def files(tmp_path: Path, ca: trustme.CA) -> dict[str, Path]:
    """The server's certificate (for `localhost` only, so 127.0.0.1 does not match it) and key,
    the CA, a client certificate it signed, one from another CA, and token files."""
    server = ca.issue_cert("localhost")
    client = ca.issue_cert("status.example")
    stranger = trustme.CA().issue_cert("status.example")
    blobs = {
        "cert": server.cert_chain_pems[0].bytes(),
        "key": server.private_key_pem.bytes(),
        "ca": ca.cert_pem.bytes(),
        "client_cert": client.cert_chain_pems[0].bytes(),
        "client_key": client.private_key_pem.bytes(),
        "stranger_cert": stranger.cert_chain_pems[0].bytes(),
        "stranger_key": stranger.private_key_pem.bytes(),
        "other_ca": trustme.CA().cert_pem.bytes(),
        "server_tokens": f"{READER} read\n{DECIDER} decide\n{ADMIN}\n".encode(),
        "reader": f"# status's token\n{READER}\n".encode(),
        "decider": DECIDER.encode(),
        "unknown": SECRETS[-1].encode(),
    }
    for name, blob in blobs.items():
        (tmp_path / name).write_bytes(blob)
    return {name: tmp_path / name for name in blobs}


@pytest.fixture
async def tls_server(
    files: dict[str, Path], redis_url: str, key_prefix: str
) -> AsyncIterator[Running]:
    """TLS and bearer tokens (reader, decider, admin)."""
    settings = Settings(
        host="127.0.0.1", port=0, key_prefix=key_prefix, tls_cert=files["cert"],
        tls_key=files["key"], auth_tokens_file=files["server_tokens"],
    )  # fmt: skip
    running = await start_retail_server(settings, redis_url)
    yield running
    await running.stop(0.5)


@pytest.fixture
async def mtls_server(
    files: dict[str, Path], redis_url: str, key_prefix: str
) -> AsyncIterator[Running]:
    """mTLS: clients need a certificate the CA signed; no tokens."""
    settings = Settings(
        host="127.0.0.1", port=0, key_prefix=key_prefix, tls_cert=files["cert"],
        tls_key=files["key"], tls_client_ca=files["ca"],
    )  # fmt: skip
    running = await start_retail_server(settings, redis_url)
    yield running
    await running.stop(0.5)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


@pytest.fixture(autouse=True)
def no_token_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)


async def status(capsys: pytest.CaptureFixture[str], address: str, *flags: str) -> Outcome:
    """`journeyman status` as a user types it; in a thread, so this loop's server answers."""
    argv = ["status", "--address", address, "--metrics-url", NO_METRICS, *flags]
    code = await asyncio.to_thread(main, argv)
    captured = capsys.readouterr()
    for secret in SECRETS:
        assert secret not in captured.out + captured.err, "a token was printed"
    return Outcome(code, captured.out, captured.err)


def tls_flags(files: dict[str, Path], *names: str) -> list[str]:
    flags = {"ca": "--tls-ca", "client_cert": "--tls-cert", "client_key": "--tls-key"}
    return [word for name in names for word in (flags[name], str(files[name]))]


async def test_status_over_tls_with_a_read_token_from_a_file(
    tls_server: Running, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = await status(
        capsys, f"localhost:{tls_server.port}", *tls_flags(files, "ca"),
        "--token-file", str(files["reader"]),
    )  # fmt: skip
    assert outcome.code == EXIT_OK, outcome.err
    lines = outcome.out.splitlines()
    assert lines[0] == "health: SERVING"
    assert lines[1].startswith("store (journeyman.v1.Store): SERVING")
    assert lines[2].startswith("ruleset: retail@")
    assert lines[-1].startswith(f"metrics: not reachable at {NO_METRICS}")


async def test_the_token_can_come_from_the_environment(
    tls_server: Running,
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, ADMIN)  # admin grants every scope, `read` too
    outcome = await status(capsys, f"localhost:{tls_server.port}", *tls_flags(files, "ca"))
    assert outcome.code == EXIT_OK, outcome.err
    assert outcome.out.startswith("health: SERVING\nstore (journeyman.v1.Store): SERVING")
    assert "\nruleset: retail@" in outcome.out


async def test_the_server_name_can_differ_from_the_address(
    tls_server: Running, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    flags = [*tls_flags(files, "ca"), "--token-file", str(files["reader"])]
    by_ip = f"127.0.0.1:{tls_server.port}"  # the certificate names localhost only
    refused = await status(capsys, by_ip, *flags)
    assert refused.code == EXIT_INVALID
    assert "does not name the host in --address" in refused.err
    assert "pass --tls-server-name NAME" in refused.err
    named = await status(capsys, by_ip, *flags, "--tls-server-name", "localhost")
    assert named.code == EXIT_OK, named.err


@pytest.mark.parametrize(
    ("ca_file", "token_file", "told"),
    [
        (None, "reader", "the server may speak TLS: pass --tls-ca CA.pem"),
        ("other_ca", "reader", "is not signed by --tls-ca"),
        ("ca", None, "pass --token-file FILE or set JOURNEYMAN_STATUS_TOKEN"),
        ("ca", "unknown", "the server does not know the token from --token-file"),
        ("ca", "decider", "lacks the `read` scope GetRuleset needs"),
    ],
    ids=["plaintext", "wrong-ca", "no-token", "unknown-token", "decide-only-token"],
)
async def test_each_refusal_says_what_to_pass_instead(
    tls_server: Running,
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    ca_file: str | None,
    token_file: str | None,
    told: str,
) -> None:
    flags = ["--tls-ca", str(files[ca_file])] if ca_file else []
    flags += ["--token-file", str(files[token_file])] if token_file else []
    outcome = await status(capsys, f"localhost:{tls_server.port}", *flags)
    assert outcome.code == EXIT_INVALID
    assert outcome.out == ""
    verb = "refused GetRuleset" if token_file != "reader" else "to Health/Check (UNAVAILABLE)"
    assert outcome.err.startswith("journeyman: ") and verb in outcome.err
    assert told in outcome.err


async def test_mtls_needs_a_client_certificate_the_server_trusts(
    mtls_server: Running, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    address = f"localhost:{mtls_server.port}"
    anonymous = await status(capsys, address, *tls_flags(files, "ca"))
    assert anonymous.code == EXIT_INVALID
    assert "may require a client certificate (mTLS): pass --tls-cert and --tls-key" in (
        anonymous.err
    )
    stranger = await status(
        capsys, address, *tls_flags(files, "ca"),
        "--tls-cert", str(files["stranger_cert"]), "--tls-key", str(files["stranger_key"]),
    )  # fmt: skip
    assert stranger.code == EXIT_INVALID
    assert f"refused the client certificate {files['stranger_cert']}" in stranger.err
    trusted = await status(capsys, address, *tls_flags(files, "ca", "client_cert", "client_key"))
    assert trusted.code == EXIT_OK, trusted.err
    assert trusted.out.startswith("health: SERVING")


async def test_a_plaintext_server_asked_over_tls_says_to_leave_tls_out(
    service: Service, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = await status(capsys, service.address, *tls_flags(files, "ca"))
    assert outcome.code == EXIT_INVALID
    assert "the server speaks plaintext: leave out --tls" in outcome.err


async def test_nothing_listening_says_so(
    closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = await status(capsys, f"127.0.0.1:{closed_port}")
    assert outcome.code == EXIT_INVALID
    assert "nothing listens there: start the server, or fix --address" in outcome.err


@pytest.mark.parametrize(
    ("flags", "told"),
    [
        (["--token-file", "{server_tokens}"], "found 5 words, expected one token"),
        (["--token-file", "{missing}"], "cannot read --token-file {missing}"),
        (["--tls-ca", "{missing}"], "cannot read --tls-ca {missing}"),
        (["--tls-cert", "{client_cert}"], "--tls-cert and --tls-key go together"),
    ],
    ids=["server-tokens-file", "missing-token-file", "missing-ca", "cert-without-key"],
)
async def test_unusable_flags_are_named_before_anything_is_sent(
    files: dict[str, Path],
    closed_port: int,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    told: str,
) -> None:
    names = {name: str(path) for name, path in files.items()}
    names["missing"] = str(files["ca"].parent / "missing.pem")
    outcome = await status(capsys, f"127.0.0.1:{closed_port}", *(f.format(**names) for f in flags))
    assert outcome.code == EXIT_INVALID
    assert told.format(**names) in outcome.err
