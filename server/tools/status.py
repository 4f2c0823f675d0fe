"""`journeyman status`: health, the ruleset in force and the key counters of a running server.

It reaches servers the way other clients must: over TLS when the server has a certificate
(`--tls-ca`, or `--tls` for a publicly signed one), with a client certificate when it asks for
one (mTLS: `--tls-cert`, `--tls-key`), and with a bearer token when tokens are configured
(`--token-file`, else `JOURNEYMAN_STATUS_TOKEN`; `GetRuleset` needs the `read` scope). When the
server refuses, the error says what to pass instead. The token is sent, never printed.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from engine.errors import JourneymanError
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.core.health import STORE_SERVICE

TOKEN_VARIABLE = "JOURNEYMAN_STATUS_TOKEN"
KEY_COUNTERS = (
    ("journeyman_decisions", "decisions"),
    ("journeyman_degraded_answers", "degraded answers"),
    ("journeyman_cas_conflicts", "CAS conflicts"),
    ("journeyman_shed_calls", "shed calls"),
    ("journeyman_rules_reload_failures", "refused reloads"),
)


class StatusError(JourneymanError):
    """The server could not be asked: what happened, and what to pass or fix instead."""


@dataclass(frozen=True, slots=True)
class Access:
    """How status reaches a server: plaintext by default; TLS when a CA, `tls` or a client
    certificate is given; a bearer token when one is. `token_source` names where the token
    came from, for messages; the token itself is kept out of repr()."""

    tls: bool = False  # TLS trusting gRPC's bundled public CAs when no tls_ca is given
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_server_name: str | None = None  # the name to check in the server's certificate
    token: str | None = field(default=None, repr=False)
    token_source: str = ""

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise StatusError("--tls-cert and --tls-key go together: pass both, or neither")

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_ca is not None or self.tls_cert is not None

    def channel(self, address: str) -> grpc.Channel:
        """A channel to `address`: secure when TLS is asked for, else plaintext."""
        if not self.uses_tls:
            return grpc.insecure_channel(address)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read_pem(self.tls_ca, "--tls-ca", "the CA's PEM certificate"),
            private_key=_read_pem(self.tls_key, "--tls-key", "the PEM key of --tls-cert"),
            certificate_chain=_read_pem(self.tls_cert, "--tls-cert", "a PEM client certificate"),
        )
        options = []
        if self.tls_server_name:
            options.append(("grpc.ssl_target_name_override", self.tls_server_name))
        return grpc.secure_channel(address, credentials, options=options)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def read_token(
    token_file: Path | None, environ: Mapping[str, str] | None = None
) -> tuple[str | None, str]:
    """(token, where it came from) for status: the one token in `token_file` (`#` comment lines
    skipped), else JOURNEYMAN_STATUS_TOKEN, else (None, ""). The token is a client's secret,
    not a server setting, so it is read here rather than in `Settings`."""
    if token_file is None:
        token = (os.environ if environ is None else environ).get(TOKEN_VARIABLE, "").strip()
        return (token, TOKEN_VARIABLE) if token else (None, "")
    text = _read(token_file, "--token-file", "a file holding one token")
    words = [
        w
        for line in text.decode(errors="replace").splitlines()
        if not line.startswith("#")
        for w in line.split()
    ]
    if len(words) != 1:
        # Never echo the file: it holds secrets. The server's tokens file (token + scopes,
        # several lines) is the usual mix-up.
        raise StatusError(
            f"--token-file {token_file}: found {len(words)} words, expected one token; write "
            "only the token (no scopes, not the server's whole tokens file)"
        )
    return words[0], f"--token-file {token_file}"


def _read(path: Path, flag: str, expected: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise StatusError(f"cannot read {flag} {path} ({reason}): pass {expected}") from error


def _read_pem(path: Path | None, flag: str, expected: str) -> bytes | None:
    return None if path is None else _read(path, flag, expected)


def _hint(error: grpc.RpcError, access: Access, method: str) -> str:
    """What to do about a failed call, from its status code and grpc's details."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (error.details() if isinstance(error, grpc.Call) else "") or ""
    if code == grpc.StatusCode.UNAUTHENTICATED:
        if access.token is None:
            return (f"the server wants a bearer token with the `read` scope for {method}: "
                    f"pass --token-file FILE or set {TOKEN_VARIABLE}")  # fmt: skip
        return (f"the server does not know the token from {access.token_source}: use one "
                "listed in its --auth-tokens-file or JOURNEYMAN_AUTH_TOKENS")  # fmt: skip
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return (f"the token from {access.token_source} lacks the `read` scope {method} needs: "
                "use a token granted `read` or `admin`")  # fmt: skip
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "check that --address is journeyman's gRPC port, or raise --timeout"
    if code != grpc.StatusCode.UNAVAILABLE:
        return "check that --address is journeyman's gRPC port"
    return _connection_hint(details, access)


def _connection_hint(details: str, access: Access) -> str:
    """Why a connection failed, told apart by the words grpc's TLS layer puts in `details`."""
    if "Connection refused" in details:
        return "nothing listens there: start the server, or fix --address"
    if "errors resolving" in details or "DNS resolution failed" in details:
        return "the host in --address does not resolve: fix --address"
    if "WRONG_VERSION_NUMBER" in details:
        return "the server speaks plaintext: leave out --tls, --tls-ca, --tls-cert and --tls-key"
    if "Hostname Verification" in details:
        return ("the server's certificate does not name the host in --address: connect by a "
                "name it lists, or pass --tls-server-name NAME")  # fmt: skip
    if "CERTIFICATE_VERIFY_FAILED" in details:
        trusted = f"--tls-ca {access.tls_ca}" if access.tls_ca else "gRPC's public CAs"
        return (f"the server's certificate is not signed by {trusted}: pass --tls-ca with "
                "the CA that signed it")  # fmt: skip
    if "Socket closed" in details or "handshake" in details.lower():
        # A TLS server hangs up on a plaintext hello, and an mTLS server on a client without
        # an acceptable certificate: both arrive as a closed socket.
        if not access.uses_tls:
            return ("the server may speak TLS: pass --tls-ca CA.pem (the CA of its certificate), "
                    "and --tls-cert/--tls-key if it asks for client certificates")  # fmt: skip
        if access.tls_cert is None:
            return ("the server may require a client certificate (mTLS): pass --tls-cert and "
                    "--tls-key of one signed by its --tls-client-ca")  # fmt: skip
        return (f"the server refused the client certificate {access.tls_cert}: pass one "
                "signed by its --tls-client-ca")  # fmt: skip
    return "check --address, and that the server is running"


def call_failed(error: grpc.RpcError, address: str, access: Access, method: str) -> StatusError:
    """The StatusError for a refused or unanswered call: what happened and what to do."""
    code = error.code() if isinstance(error, grpc.Call) else None
    name = code.name if code is not None else type(error).__name__
    unanswered = code in (None, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    what = f"no answer from {address} to {method}" if unanswered else f"{address} refused {method}"
    return StatusError(f"{what} ({name}): {_hint(error, access, method)}")


def _counters(metrics_url: str, timeout_s: float) -> list[str]:
    try:
        with urllib.request.urlopen(metrics_url, timeout=timeout_s) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return [f"metrics: not reachable at {metrics_url} ({error})"]
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        totals[family.name] = sum(s.value for s in family.samples if s.name.endswith("_total"))
    return [f"{label}: {totals.get(name, 0.0):g}" for name, label in KEY_COUNTERS]


@dataclass(frozen=True, slots=True)
class Health:
    """Status names (`SERVING`, ...) of the server and of its store (None: not reported)."""

    server: str
    store: str | None


def _status_name(reply: health_pb2.HealthCheckResponse) -> str:
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def _store_health(stub: health_pb2_grpc.HealthStub, timeout_s: float) -> str | None:
    try:
        reply = stub.Check(  # type: ignore[attr-defined]
            health_pb2.HealthCheckRequest(service=STORE_SERVICE), timeout=timeout_s
        )
    except grpc.RpcError as error:
        if isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.NOT_FOUND:
            return None  # a server from before the store had a health of its own
        raise
    return _status_name(reply)


def _ask(address: str, access: Access, timeout_s: float) -> tuple[Health, pb.GetRulesetResponse]:
    """Health of the server and its store (no token needed), then the ruleset (a `read` token
    when tokens are on)."""
    with access.channel(address) as channel:
        method = "Health/Check"
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            server = stub.Check(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
            health = Health(_status_name(server), _store_health(stub, timeout_s))
            method = "GetRuleset"
            ruleset = pb_grpc.JourneyServiceStub(channel).GetRuleset(
                pb.GetRulesetRequest(), timeout=timeout_s, metadata=access.metadata
            )
        except grpc.RpcError as error:
            raise call_failed(error, address, access, method) from error
    return health, ruleset


def status_lines(
    address: str, metrics_url: str, timeout_s: float = 2.0, access: Access | None = None
) -> tuple[bool, list[str]]:
    """(serving, lines to print) for the server at `address`, reached as `access` says
    (plaintext, no token by default). Raises StatusError, saying what to do, when the server
    cannot be asked."""
    health, ruleset = _ask(address, access or Access(), timeout_s)
    loaded = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ruleset.loaded_at_ms / 1000))
    lines = [
        f"health: {health.server}",
        _store_line(health.store),
        f"ruleset: {ruleset.version} (loaded {loaded}; "
        f"{ruleset.reloads} reloads, {ruleset.failed_reloads} refused)",
        *(f"  {f.path}: journey {f.journey} {f.declared_version}" for f in ruleset.files),
        *refusal_lines(ruleset),
        *_counters(metrics_url, timeout_s),
    ]
    return health.server == "SERVING", lines


def refusal_lines(ruleset: pb.GetRulesetResponse) -> list[str]:
    """The files on disk that were refused, with every problem; the ruleset above stays."""
    if not ruleset.refused_reason:
        return []
    at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ruleset.refused_at_ms / 1000))
    problems = ruleset.refused_reason.splitlines()
    return [f"rules on disk REFUSED at {at}; the ruleset above stays in force:",
            *(f"  {line}" for line in problems)]  # fmt: skip


def _store_line(status: str | None) -> str:
    if status is None:
        return f"store ({STORE_SERVICE}): not reported by this server"
    if status == "SERVING":
        return f"store ({STORE_SERVICE}): SERVING (Redis answers)"
    return f"store ({STORE_SERVICE}): {status} (Redis does not answer: answers are degraded)"
