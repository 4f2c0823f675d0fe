"""`journeyman events export`: the events a service captured (`JOURNEYMAN_CAPTURE_DAYS`), out of
Redis into a JSON Lines file (gzipped when it ends in `.gz`) that `journeyman replay` reads.

Customer by customer, each one's events in the order they were accepted; a page of keys and a
page of entries at a time (`server.store.capture.PAGE`), so memory stays bounded whatever the
number of events. On a terminal, a progress line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import re
import sys
import time
from pathlib import Path
from typing import BinaryIO, cast

EXIT_OK, EXIT_INVALID = 0, 2
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def add_events_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = commands.add_parser("events", help="the events a service captured")
    events_commands = events.add_subparsers(dest="events_command", required=True)
    export = events_commands.add_parser(
        "export",
        help="write captured events to a JSON Lines file (for journeyman replay)",
        description="Page through the captured events in Redis (a service with "
        "JOURNEYMAN_CAPTURE_DAYS above 0 keeps them) and write them, customer by customer in "
        "the order they were accepted, as JSON Lines; gzipped when the file ends in .gz.",
    )
    export.add_argument("--since", default="30d", help="how far back, e.g. 30d, 12h (default 30d)")
    export.add_argument("-o", "--output", required=True, help="file to write, e.g. events.jsonl.gz")
    export.add_argument(
        "--redis-url", help="the service's Redis (default: JOURNEYMAN_REDIS_URL, else the "
        "embedded one under --data-dir)",
    )  # fmt: skip
    export.add_argument("--data-dir", help="the service's --data-dir (embedded Redis)")
    export.set_defaults(handler=run_export)


def since_ms(text: str, now_ms: int) -> int:
    """`30d` → the time 30 days before `now_ms`."""
    found = _DURATION.match(text.strip())
    if not found:
        raise ValueError(f"--since {text!r}: write a number and a unit, e.g. 30d, 12h, 90m")
    return now_ms - int(found[1]) * _UNIT_MS[found[2]]


def _redis_url(args: argparse.Namespace) -> str:
    from server.core.config import Settings

    settings = Settings.from_env()
    if args.redis_url:
        return str(args.redis_url)
    if settings.redis_url:
        return settings.redis_url
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    for socket in (data_dir / "redis" / "redis.sock", data_dir / "redis.sock"):
        if socket.exists():
            return f"unix://{socket.resolve()}"
    raise ValueError(
        f"no Redis to read: no --redis-url, no JOURNEYMAN_REDIS_URL, and no embedded Redis "
        f"socket under {data_dir}; pass --redis-url (journeyman serve prints its socket)"
    )


def run_export(args: argparse.Namespace) -> int:
    from server.core.config import ConfigError

    try:
        url = _redis_url(args)
        since = since_ms(args.since, int(time.time() * 1000))
    except (ValueError, ConfigError) as error:
        print(f"journeyman events export: {error}", file=sys.stderr)
        return EXIT_INVALID
    output = Path(args.output)
    opened = (
        cast(BinaryIO, gzip.open(output, "wb")) if output.suffix == ".gz" else output.open("wb")
    )
    with opened as out:
        customers, events = asyncio.run(export(url, since, out, _progress()))
    print(f"wrote {events:,} events of {customers:,} customers to {output}", file=sys.stderr)
    return EXIT_OK


def _progress() -> _Progress:
    return _Progress(sys.stderr.isatty())


class _Progress:
    """A line on a terminal, rewritten at most every 0.2 s: customers and events so far."""

    def __init__(self, on: bool) -> None:
        self.on, self.shown_at = on, 0.0

    def __call__(self, customers: int, events: int, *, done: bool = False) -> None:
        now = time.monotonic()
        if not self.on or (not done and now - self.shown_at < 0.2):
            return
        self.shown_at = now
        end = "\n" if done else ""
        print(f"\rexported {events:,} events of {customers:,} customers", end=end, file=sys.stderr)


async def export(url: str, since: int, out: BinaryIO, progress: _Progress) -> tuple[int, int]:
    """Write every captured event since `since` (ms) to `out`; returns (customers, events)."""
    from server.core.config import Settings
    from server.store.capture import captured_keys, captured_lines
    from server.store.connection import connect
    from server.store.keys import Keyspace

    settings = Settings.from_env()
    client = connect(url, timeout_s=max(5.0, settings.redis_timeout_ms / 1000), max_connections=4)
    customers = events = 0
    try:
        async for key in captured_keys(client, Keyspace(settings.key_prefix).captured_pattern()):
            wrote = 0
            async for line in captured_lines(client, key, since):
                out.write(line + b"\n")
                wrote += 1
            customers += wrote > 0
            events += wrote
            progress(customers, events)
    finally:
        await client.aclose()
    progress(customers, events, done=True)
    return customers, events
