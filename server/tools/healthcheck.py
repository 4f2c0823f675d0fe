"""A small gRPC health client for container health checks:
`python -m server.tools.healthcheck [ADDRESS]`.

Asks the standard `grpc.health.v1.Health/Check` of the server at ADDRESS and exits 0 when it
answers SERVING, 1 for anything else: NOT_SERVING (kernels warming up, Redis not answering yet,
shutting down), an unknown service, nothing listening, or no answer within the timeout. ADDRESS
defaults to 127.0.0.1 on the port the settings give (`JOURNEYMAN_PORT`, else 50051); pass it when
`serve --port` chose another. `--service journeyman.v1.Store` asks about the store instead: SERVING
while Redis answers, NOT_SERVING while answers are degraded (the whole server stays SERVING then).
Only grpc, the health messages and the settings are imported (no numpy, no numba), so a check
starts in a fraction of a second.

The check runs beside the server (in its container) and reads the same `JOURNEYMAN_TLS_*`
settings: when the server has a certificate, the check speaks TLS, trusts that certificate (or
`--tls-ca`) and expects the name written in it; when the server asks for client certificates
(`JOURNEYMAN_TLS_CLIENT_CA`), the check presents the server's own certificate and key, which
that CA must then have signed (or `--tls-cert`/`--tls-key`). Health needs no token.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from engine.errors import JourneymanError
from server.core.certificate import expected_name
from server.core.config import ConfigError, Settings
from server.core.health import STORE_SERVICE

LOCAL_HOST = "127.0.0.1"  # the check runs beside the server (in its container)
DEFAULT_TIMEOUT_S = 2.0  # well inside the Dockerfile's HEALTHCHECK --timeout
EXIT_SERVING = 0
EXIT_NOT_SERVING = 1
# The typed stubs of grpcio-health-checking leave HealthStub's methods out; calling the method by
# its path with the messages' own (de)serializers keeps the call fully typed.
CHECK_METHOD = "/grpc.health.v1.Health/Check"


class CheckUnusable(JourneymanError):
    """The check cannot be set up (a setting or file it needs); says which and what to do."""


@dataclass(frozen=True, slots=True)
class CheckTLS:
    """How the check speaks TLS: the certificates it trusts, the certificate it presents when
    the server asks for one (mTLS), and the name it expects in the server's certificate (None:
    the host of the address). `sources` names where each came from, for messages."""

    trusted: bytes
    client_cert: bytes | None = None
    client_key: bytes | None = None
    server_name: str | None = None
    trusted_source: str = ""
    client_source: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.trusted, self.client_key, self.client_cert)


def _read(path: Path, source: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise CheckUnusable(
            f"cannot read {source} {path} ({reason}): the check needs the PEM files the server "
            "was started with; mount them here too, or fix the setting"
        ) from error


def check_tls(settings: Settings, host: str, args: argparse.Namespace) -> CheckTLS | None:
    """TLS for a check of the server that `settings` configure, reached at `host`: None for a
    plaintext server (no certificate, no --tls-ca)."""
    if settings.tls_cert is None and args.tls_ca is None:
        return None
    server_cert = _read(settings.tls_cert, "JOURNEYMAN_TLS_CERT") if settings.tls_cert else b""
    if args.tls_ca:
        trusted, trusted_source = _read(Path(args.tls_ca), "--tls-ca"), f"--tls-ca {args.tls_ca}"
    else:
        # gRPC accepts a trusted leaf certificate, so the server's own file is all the check
        # needs to trust: no CA file has to be mounted beside it.
        trusted, trusted_source = server_cert, f"JOURNEYMAN_TLS_CERT {settings.tls_cert}"
    name = args.tls_server_name or expected_name(server_cert, host)
    tls = CheckTLS(trusted, server_name=name, trusted_source=trusted_source)
    if args.tls_cert and args.tls_key:
        pair, sources = (Path(args.tls_cert), Path(args.tls_key)), ("--tls-cert", "--tls-key")
    elif settings.tls_client_ca and settings.tls_cert and settings.tls_key:
        # An mTLS server: present its own certificate, which its client CA must have signed.
        pair, sources = (
            (settings.tls_cert, settings.tls_key),
            ("JOURNEYMAN_TLS_CERT", "JOURNEYMAN_TLS_KEY"),
        )
    else:
        return tls
    return dataclasses.replace(
        tls, client_cert=_read(pair[0], sources[0]), client_key=_read(pair[1], sources[1]),
        client_source=f"{sources[0]} {pair[0]}",
    )  # fmt: skip


def check(
    address: str,
    service: str = "",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    tls: CheckTLS | None = None,
) -> str:
    """The health status name (`SERVING`, `NOT_SERVING`, …) the server at `address` reports
    for `service` ("" = the whole server), over TLS when `tls` is given. Raises grpc.RpcError
    when it cannot be asked within `timeout_s` seconds."""
    if tls is None:
        channel = grpc.insecure_channel(address)
    else:
        options = [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []
        channel = grpc.secure_channel(address, tls.credentials(), options=options)
    with channel:
        health_check = channel.unary_unary(
            CHECK_METHOD,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        # wait_for_ready stays False: a refused connection fails at once instead of waiting.
        response = health_check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def _describe(error: grpc.RpcError) -> str:
    """`UNAVAILABLE: failed to connect…`: the status code and details a failed call carries."""
    if isinstance(error, grpc.Call):  # what a failed unary call raises
        details = error.details()
        return f"{error.code().name}: {details}" if details else error.code().name
    return repr(error)


def _hint(error: grpc.RpcError, tls: CheckTLS | None) -> str | None:
    """What to do about a connection grpc's TLS layer refused, told apart by its details."""
    details = (error.details() if isinstance(error, grpc.Call) else "") or ""
    if "WRONG_VERSION_NUMBER" in details:
        return ("the server speaks plaintext: it was started without the JOURNEYMAN_TLS_* "
                "settings this check sees (give both the same settings)")  # fmt: skip
    if tls is not None and "Hostname Verification" in details:
        return (f"the server's certificate does not name {tls.server_name or 'this host'}: "
                "pass --tls-server-name with a name it lists")  # fmt: skip
    if tls is not None and "CERTIFICATE_VERIFY_FAILED" in details:
        return (f"the server's certificate is not the one in {tls.trusted_source} nor signed "
                "by it: pass --tls-ca with the CA that signed it")  # fmt: skip
    if "Socket closed" not in details:
        return None
    # A TLS server hangs up on a plaintext hello, an mTLS one on a missing or unknown client
    # certificate: both arrive as a closed socket.
    if tls is None:
        return ("the server may speak TLS: set JOURNEYMAN_TLS_CERT and JOURNEYMAN_TLS_KEY "
                "as the server has them (or pass --tls-ca)")  # fmt: skip
    if tls.client_cert is None:
        return ("the server may require client certificates: set JOURNEYMAN_TLS_CLIENT_CA as "
                "the server has it, or pass --tls-cert and --tls-key")  # fmt: skip
    return (
        f"the server refused the certificate in {tls.client_source}: its "
        "JOURNEYMAN_TLS_CLIENT_CA must have signed it (or pass --tls-cert and --tls-key)"
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m server.tools.healthcheck",
        description="Exit 0 when the journeyman server at ADDRESS says SERVING, 1 otherwise. "
        "Speaks TLS when JOURNEYMAN_TLS_CERT is set (as for the server) or --tls-ca is given.",
    )
    parser.add_argument(
        "address", nargs="?", metavar="ADDRESS",
        help=f"host:port of the server (default {LOCAL_HOST} on JOURNEYMAN_PORT or 50051)",
    )  # fmt: skip
    parser.add_argument(
        "--service",
        default="",
        help=f"the service to ask about (default: the whole server; {STORE_SERVICE}: Redis)",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
        help=f"give up after this long (default {DEFAULT_TIMEOUT_S:g} s)",
    )  # fmt: skip
    parser.add_argument(
        "--tls-ca", metavar="PEM", help="trust this CA (default: the server's JOURNEYMAN_TLS_CERT)"
    )
    parser.add_argument(
        "--tls-server-name", metavar="NAME",
        help="the name to expect in the server's certificate (default: one it lists)",
    )  # fmt: skip
    parser.add_argument(
        "--tls-cert", metavar="PEM",
        help="client certificate for an mTLS server (default: the server's own)",
    )  # fmt: skip
    parser.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together: pass both, or neither")
    return args


def _setup(args: argparse.Namespace) -> tuple[str, CheckTLS | None]:
    """The address to check and how to speak TLS to it, from the flags and the settings."""
    settings = Settings.from_env()
    address = args.address or f"{LOCAL_HOST}:{settings.port}"
    host = address.rsplit(":", 1)[0].strip("[]")
    return address, check_tls(settings, host, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Check once; print the status (or why there is none) and return the exit code."""
    args = _parse(argv)
    try:
        address, tls = _setup(args)
    except (ConfigError, CheckUnusable) as error:
        print(f"healthcheck: {error}", file=sys.stderr)
        return EXIT_NOT_SERVING
    try:
        status = check(address, args.service, args.timeout, tls)
    except grpc.RpcError as error:
        hint = _hint(error, tls)
        print(f"{address}: {_describe(error)}", file=sys.stderr)
        if hint:
            print(f"healthcheck: {hint}", file=sys.stderr)
        return EXIT_NOT_SERVING
    print(f"{address}: {status}")
    return EXIT_SERVING if status == "SERVING" else EXIT_NOT_SERVING


if __name__ == "__main__":
    sys.exit(main())
