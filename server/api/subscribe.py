"""Subscribe: the outbox, followed for one client, filtered by journey and stage.

The outbox is a Redis Stream the commit script appends to (`server.decisions.outbox`); a
subscriber reads it with XREAD from the id it last saw, so a reconnecting client resumes where
it stopped and misses nothing that is still kept (`JOURNEYMAN_OUTBOX_MAX_LEN`). Delivery is at
least once: the same decision may come twice (a client resuming from an older id), always with
the same `decision_id`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from journeyman.v1 import journeyman_pb2 as pb
from server.protocol.errors import EventInvalid, FieldViolation
from server.store.timers import OutboxItem, TimerIndex

# How long one XREAD waits for news; the loop then checks the client is still there.
BLOCK_MS = 1_000
ENTRIES_PER_READ = 256
_STREAM_ID = re.compile(r"\d+(-\d+)?")


def subscribe_from(request: pb.SubscribeRequest) -> str:
    """The stream id to read after: `from_id`, "$" (only new) when empty. Raises EventInvalid
    for an id that is not a stream id."""
    if not request.from_id:
        return "$"
    if _STREAM_ID.fullmatch(request.from_id) is None:
        raise EventInvalid([FieldViolation(
            "from_id",
            f"{request.from_id[:64]!r} is not an outbox id; send an `OutboxEntry.id` you "
            "received (`<ms>-<n>`), \"0\" for the oldest kept, or nothing for new entries only",
        )])  # fmt: skip
    return request.from_id


def wanted(entry: pb.OutboxEntry, request: pb.SubscribeRequest) -> bool:
    """Whether `entry` passes the request's filters: it moved the customer in one of the
    requested journeys (any journey when none is named) into one of the requested stages (any
    stage when none is named). A journey the entry did not move never makes it pass: a decision
    carries every journey's outcome, moved or not."""
    journeys, stages = set(request.journeys), set(request.stages)
    return any(
        journey.changed
        and (not journeys or journey.journey in journeys)
        and (not stages or journey.stage in stages)
        for journey in entry.decision.journeys
    )


def _entry(item: OutboxItem) -> pb.OutboxEntry:
    entry = pb.OutboxEntry.FromString(item.entry)
    entry.id = item.id
    return entry


async def follow(
    index: TimerIndex, request: pb.SubscribeRequest
) -> AsyncIterator[pb.SubscribeResponse]:
    """The outbox entries after the request's `from_id` that pass its filters, then each new
    one as it comes, until the caller stops iterating. Redis errors end it (StoreUnavailable):
    the client resumes from the last id it saw."""
    after = subscribe_from(request)
    if after == "$":
        after = await index.last_outbox_id()  # a fixed point, so no entry falls between reads
    while True:
        items = await index.read_outbox(after, block_ms=BLOCK_MS, count=ENTRIES_PER_READ)
        for item in items:
            after = item.id
            entry = _entry(item)
            if wanted(entry, request):
                yield pb.SubscribeResponse(entry=entry)
