"""What a customer's decision ring keeps per event id, and answering a repeat from it.

A kept decision is the event's fingerprint followed by the decision's bytes, so that an event id
reused for a different event is refused (ALREADY_EXISTS) rather than answered with another
event's decision. The ring itself (its size, JOURNEYMAN_DECISIONS_KEPT) lives in Redis
(`server/store/lua/commit.lua`); this module is the one place that knows the layout of an entry.
"""

from __future__ import annotations

import hashlib

from journeyman.v1 import journeyman_pb2 as pb
from server.protocol.errors import EventIdReused

FINGERPRINT_BYTES = 16


def event_fingerprint(event: pb.Event) -> bytes:
    """FINGERPRINT_BYTES that differ when anything the caller sent about the event differs."""
    serialized = event.SerializeToString(deterministic=True)
    return hashlib.blake2b(serialized, digest_size=FINGERPRINT_BYTES).digest()


def kept_decision(fingerprint: bytes, answer: pb.Decision) -> bytes:
    """The ring entry of an event answered with `answer`."""
    return fingerprint + answer.SerializeToString()


def replayed_or_refused(
    kept: bytes, fingerprint: bytes, event_id: str
) -> pb.Decision | EventIdReused:
    """The original decision for a repeated event id, flagged `duplicate`, if the event is the
    same one (its `fingerprint` matches the kept one); else EventIdReused, to answer with."""
    if kept[:FINGERPRINT_BYTES] != fingerprint:
        return EventIdReused(
            f"event_id {event_id!r} was already used for a different event of this customer;"
            " send a new event_id (a retry must resend the same event)"
        )
    decision = pb.Decision.FromString(kept[FINGERPRINT_BYTES:])
    decision.duplicate = True
    return decision
