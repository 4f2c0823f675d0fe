"""Captured events: each accepted event appended, in the commit script, to its customer's stream
(`CustomerKeys.captured`, trimmed to `JOURNEYMAN_CAPTURE_DAYS`), and read back page by page for
`journeyman events export`.

An entry's one field `e` holds the event as a line of the export's JSON Lines format
(`event_line`), so exporting copies it out unchanged. A stream per customer shares the
customer's hash tag: the commit script appends to it in the same atomic step and round trip as
the state, and a Redis Cluster spreads the streams with the customers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from engine.event import Event

CAPTURED_FIELD = b"e"
PAGE = 500  # entries read per XRANGE, keys per SCAN: the export's memory bound


def event_line(event: Event, at_ms: int) -> str:
    """One event as a line of JSON Lines (the export format), without the newline."""
    item: dict[str, Any] = {
        "event_id": event.event_id,
        "customer_id": event.customer_id,
        "type": event.type,
        "timestamp_ms": at_ms,
    }
    if event.channel:
        item["channel"] = event.channel
    if event.touchpoint:
        item["touchpoint"] = event.touchpoint
    if event.properties:
        item["properties"] = dict(event.properties)
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))


async def captured_keys(client: Any, pattern: str) -> AsyncIterator[bytes]:
    """Every captured-events stream, PAGE keys per SCAN (each master of a cluster in turn)."""
    async for key in client.scan_iter(match=pattern, count=PAGE, _type="stream"):
        yield key


async def captured_lines(client: Any, key: bytes, since_ms: int) -> AsyncIterator[bytes]:
    """The captured events of one stream from `since_ms` (ms), oldest first, PAGE at a time."""
    start = f"{max(0, since_ms)}-0"
    while True:
        entries = await client.xrange(key, min=start, max="+", count=PAGE)
        for _, fields in entries:
            line = fields.get(CAPTURED_FIELD)
            if line is not None:
                yield line
        if len(entries) < PAGE:
            return
        last = entries[-1][0].decode() if isinstance(entries[-1][0], bytes) else entries[-1][0]
        start = "(" + last  # exclusive: after the last one read
