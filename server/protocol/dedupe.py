"""What a customer's decision ring keeps per event id, and answering a repeat from it.

A kept decision is the event's fingerprint followed by the decision's bytes, so that an event id
reused for a different event is refused (ALREADY_EXISTS) rather than answered with another
event's decision. The decision is kept without its customer and event ids: the repeat brings
both. The ring itself (JOURNEYMAN_DEDUPE_WINDOW entries, the last JOURNEYMAN_DECISIONS_KEPT
with their decision, the older ones with the fingerprint alone) is stored with the customer's
state (`server/store/record.py`); this module makes the entries and reads them.
"""

from __future__ import annotations

import hashlib

from journeyman.v1 import journeyman_pb2 as pb
from server.protocol.errors import EventIdReused
from server.store.record import FINGERPRINT_BYTES


def event_fingerprint(event: pb.Event) -> bytes:
    """FINGERPRINT_BYTES that differ when anything the caller sent about the event differs."""
    serialized = event.SerializeToString(deterministic=True)
    return hashlib.blake2b(serialized, digest_size=FINGERPRINT_BYTES).digest()


def kept_decision(fingerprint: bytes, answer: pb.Decision) -> bytes:
    """The ring entry of an event answered with `answer`."""
    customer_id, event_id = answer.customer_id, answer.event_id
    answer.customer_id = answer.event_id = ""  # not kept: cleared for this serialisation only
    try:
        return fingerprint + answer.SerializeToString()
    finally:
        answer.customer_id, answer.event_id = customer_id, event_id


def replayed_or_refused(
    kept: bytes, fingerprint: bytes, customer_id: str, event_id: str
) -> pb.Decision | EventIdReused | None:
    """The original decision for a repeated event id, flagged `duplicate`, if the event is the
    same one (its `fingerprint` matches the kept one); None if it is but its decision is no
    longer kept (answered `duplicate` without it); else EventIdReused, to answer with."""
    if kept[:FINGERPRINT_BYTES] != fingerprint:
        return EventIdReused(
            f"event_id {event_id!r} was already used for a different event of this customer;"
            " send a new event_id (a retry must resend the same event)"
        )
    if len(kept) == FINGERPRINT_BYTES:
        return None
    decision = pb.Decision.FromString(kept[FINGERPRINT_BYTES:])
    decision.customer_id, decision.event_id = customer_id, event_id
    decision.duplicate = True
    return decision
