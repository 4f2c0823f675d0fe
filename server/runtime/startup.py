"""What `journeyman serve` tells the person who ran it at start, and its /metrics port."""

from __future__ import annotations

import sys

from server.core.config import Settings
from server.core.metrics import serve_metrics
from server.runtime.app import PortInUse


def say(message: str) -> None:
    """Start-up facts for the person who ran the command, on stderr like the logs."""
    print(message, file=sys.stderr, flush=True)


def start_metrics(settings: Settings) -> None:
    """/metrics on the settings' port, or nothing when it is 0. Raises PortInUse."""
    if not settings.metrics_port:
        return
    try:
        serve_metrics(
            settings.metrics_port, settings.host,
            multiprocess_dir=settings.metrics_multiprocess_dir,
        )  # fmt: skip
    except OSError as error:
        raise PortInUse(
            f"cannot serve metrics on port {settings.metrics_port}: {error.strerror}; "
            "choose another with --metrics-port (0 turns metrics off)"
        ) from error
    say(f"journeyman: Prometheus metrics on http://{settings.host}:{settings.metrics_port}/metrics")


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
