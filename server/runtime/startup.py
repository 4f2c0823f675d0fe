"""What `journeyman serve` tells the person who ran it at start, and its HTTP port."""

from __future__ import annotations

import sys

from server.core.config import Settings
from server.runtime.app import PortInUse, load_tokens
from server.runtime.http_port import serve_http


def say(message: str) -> None:
    """Start-up facts for the person who ran the command, on stderr like the logs."""
    print(message, file=sys.stderr, flush=True)


def start_http(settings: Settings, grpc_port: int) -> None:
    """The HTTP port (/metrics, the journey map) on the settings' port, or nothing when it is
    0; its JSON asks the gRPC server on `grpc_port`. Raises PortInUse."""
    if not settings.http_port:
        return
    try:
        serve_http(settings, grpc_port, load_tokens(settings))
    except OSError as error:
        raise PortInUse(
            f"cannot serve HTTP (metrics, the journey map) on port {settings.http_port}: "
            f"{error.strerror}; choose another with --http-port (0 turns it off)"
        ) from error
    base = f"http://{settings.host}:{settings.http_port}"
    say(f"journeyman: Prometheus metrics on {base}/metrics, the journey map on {base}/map")


def security(settings: Settings) -> str:
    """How callers reach the port, for the start line: TLS or plaintext, and token auth."""
    if settings.tls_cert is None:
        transport = "TLS off"
    elif settings.tls_client_ca is not None:
        transport = "TLS on, client certificates required"
    else:
        transport = "TLS on"
    tokens = settings.auth_tokens_file is not None or bool(settings.auth_tokens)
    return f"{transport}, token auth {'on' if tokens else 'off'}"
