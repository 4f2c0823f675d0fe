"""Loopback ports for servers a benchmark or a test starts as processes of their own."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Below the kernel's ephemeral range, as far down as this: ports nothing else here asks for.
PORTS_BELOW_EPHEMERAL = 12_000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port(headroom: int = 0) -> int:
    """A loopback port free now, below the ephemeral range, and `headroom` below it (for a port
    whose server also binds port + headroom: a cluster node's bus). A port from bind(0) lies
    in that range, where the kernel may hand it to any outgoing connection (a Redis client,
    gRPC) before the server started with it binds it: CI saw `Address already in use` so; and
    a client connecting to such a port may even be given it as its own and connect to itself."""
    low = _ephemeral_low() - headroom
    for _ in range(200):
        port = random.randrange(max(1_024, low - PORTS_BELOW_EPHEMERAL), low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use: draw again
            return port
    raise RuntimeError(f"no free loopback port found below {low}")
