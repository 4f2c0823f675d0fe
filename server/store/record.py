"""What a customer's state hash keeps in its `blob` field: the engine's state and the decision
ring, compressed together.

Layout 2 (this one): ``b"\\x02"`` + zstd(msgpack ``[state, [key, kept, key, kept, ...]]``), the
ring oldest first: each event's 8-byte `event_key` and what is kept for it, the event's
FINGERPRINT_BYTES and then its decision (`server.protocol.dedupe` makes both), the decision
only for the newest entries: the older ones of the window keep the fingerprint alone, enough
to tell a repeat from an event id reused for another event. One field instead of a hash of
decisions beside the state: a customer costs Redis one small hash, and the decisions of a
customer's events, which repeat the same journey, stage, signal and ruleset names, compress to
a fraction.

The ring is read and written by the server, not by the commit script: the commit's version
check makes that safe (a ring read at a version is the ring of that version; a concurrent
commit changes the version, so the later one is refused and decides again on what won).

Layout 1 (journeyman before the ring moved here) stored the engine's msgpack state alone, a map,
never starting with 0x02, and kept decisions in the customer's decisions hash: read as a state
with an empty ring (a repeat of one of those events is still recognised by the state's own
recent event ids, and answered `duplicate` without its actions); the next commit deletes the
decisions hash (commit.lua).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import msgpack
import zstandard

LAYOUT = b"\x02"
EVENT_KEY_BYTES = 8
# A reused event id passes for a repeat only if its different content has the same 64 bits.
FINGERPRINT_BYTES = 8
# zstd level 1: ~11 us for a year-old customer (2.3 KB in, ~1.2 KB out), as small as zlib's
# level 1 in a fifth of its time. One of each per process: the store runs on the event loop's
# thread alone (a zstandard (de)compressor must not be used by two threads at once).
_COMPRESSOR = zstandard.ZstdCompressor(level=1)
_DECOMPRESSOR = zstandard.ZstdDecompressor()


def event_key(event_id: str) -> bytes:
    """The ring's name for an event id: 8 bytes where the id may take 128 (two event ids of a
    customer's last few sharing a key is a 1 in 2**60 chance)."""
    return hashlib.blake2b(event_id.encode(), digest_size=EVENT_KEY_BYTES).digest()


@dataclass(frozen=True, slots=True)
class Ring:
    """The decisions kept for a customer's last events: (event key, kept bytes), oldest first."""

    entries: tuple[tuple[bytes, bytes], ...] = ()

    def find(self, event_id: str) -> bytes | None:
        """What was kept for `event_id`, None if it is not in the ring."""
        if not self.entries:
            return None
        key = event_key(event_id)
        for entry_key, kept in self.entries:
            if entry_key == key:
                return kept
        return None

    def then(self, events: Sequence[tuple[str, bytes]], window: int, decisions: int) -> Ring:
        """This ring with `events` (event id, kept bytes) added: the last `window` entries, the
        last `decisions` of them whole, the others cut to their fingerprint."""
        if not events:
            return self
        added = tuple((event_key(event_id), kept) for event_id, kept in events)
        entries = (self.entries + added)[-window:]
        old = len(entries) - decisions
        if old > 0:
            entries = tuple(
                (key, kept[:FINGERPRINT_BYTES]) if at < old else (key, kept)
                for at, (key, kept) in enumerate(entries)
            )
        return Ring(entries)


EMPTY_RING = Ring()


def encode_record(state: bytes, ring: Ring) -> bytes:
    """The `blob` field for `state` (the engine's bytes) and `ring`."""
    flat = [part for entry in ring.entries for part in entry]
    packed = msgpack.packb([state, flat], use_bin_type=True)
    return LAYOUT + _COMPRESSOR.compress(packed)


def decode_record(blob: bytes | None) -> tuple[bytes | None, Ring]:
    """The engine's state bytes (None: no state) and the ring a `blob` field holds. A blob of
    layout 2 that does not decompress or unpack comes back whole, with an empty ring: the
    engine refuses it as a state like any unreadable bytes (`decode_or_new` starts afresh)."""
    if not blob:
        return None, EMPTY_RING
    if blob[:1] != LAYOUT:
        return blob, EMPTY_RING  # layout 1: the state alone
    try:
        state, flat = msgpack.unpackb(_DECOMPRESSOR.decompress(blob[1:]), raw=False)
        entries = tuple(zip(flat[::2], flat[1::2], strict=True))
    except (zstandard.ZstdError, ValueError, TypeError):
        return blob, EMPTY_RING
    return state, Ring(entries)
