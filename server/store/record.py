"""What a customer's state hash keeps in its `blob` field: the engine's state and the decision
ring, compressed together.

Layout 2 (this one): ``b"\\x02"`` + zstd(msgpack ``[state, keys, [kept, kept, ...]]``), the
ring oldest first: `keys` the events' 8-byte `event_key`s end to end, and what is kept for each
event, the event's
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

from collections.abc import Sequence
from dataclasses import dataclass

import msgpack
import zstandard

from engine.state import event_id_hash

LAYOUT = b"\x02"
EVENT_KEY_BYTES = 8
# A reused event id passes for a repeat only if its different content has the same 64 bits.
FINGERPRINT_BYTES = 8
# zstd level -1 (negative levels trade ratio for speed): 5.7 us for a 2.1 KB record where level
# 1 took 12.1 (and zlib's level 1 five times that), its output within 1 % as small (a year-old
# customer's blob: 1,089 B mean, 1,086 at level 1). One of each per process: the store runs on
# the event loop's thread alone (a zstandard (de)compressor must not be used by two threads at
# once).
_COMPRESSOR = zstandard.ZstdCompressor(level=-1)
_DECOMPRESSOR = zstandard.ZstdDecompressor()


def event_key(event_id: str) -> bytes:
    """The ring's name for an event id: the engine's hash of it (`event_id_hash`, the one the
    state's recent event ids hold), 8 bytes where the id may take 128 (two of a customer's 16
    remembered event ids sharing a key: about a 1 in 2**57 chance)."""
    return event_id_hash(event_id).to_bytes(EVENT_KEY_BYTES, "little")


@dataclass(frozen=True, slots=True)
class Ring:
    """What is kept for a customer's last events, oldest first: their keys end to end (one
    bytes object, not a tuple each: every process caches thousands of rings) and the kept
    bytes of each."""

    keys: bytes = b""
    kept: tuple[bytes, ...] = ()

    @classmethod
    def of(cls, entries: Sequence[tuple[bytes, bytes]]) -> Ring:
        """The ring of (event key, kept bytes) `entries`, oldest first."""
        return cls(b"".join(key for key, _ in entries), tuple(kept for _, kept in entries))

    @property
    def entries(self) -> list[tuple[bytes, bytes]]:
        """(event key, kept bytes), oldest first."""
        keys = self.keys
        return [(keys[at * EVENT_KEY_BYTES : (at + 1) * EVENT_KEY_BYTES], kept)
                for at, kept in enumerate(self.kept)]  # fmt: skip

    def find(self, event_id: str) -> bytes | None:
        """What was kept for `event_id`, None if it is not in the ring."""
        if not self.kept:
            return None
        key, keys = event_key(event_id), self.keys
        at = keys.find(key)  # bytes.find: a slice and compare per entry in Python cost 2 us
        while at != -1:
            if at % EVENT_KEY_BYTES == 0:
                return self.kept[at // EVENT_KEY_BYTES]
            at = keys.find(key, at + 1)  # found across two keys: not one of them
        return None

    def then(self, events: Sequence[tuple[str, bytes]], window: int, decisions: int) -> Ring:
        """This ring with `events` (event id, kept bytes) added: the last `window` entries, the
        last `decisions` of them whole, the others cut to their fingerprint."""
        if not events:
            return self
        keys = self.keys + b"".join(event_key(event_id) for event_id, _ in events)
        kept = (self.kept + tuple(blob for _, blob in events))[-window:]
        keys = keys[-len(kept) * EVENT_KEY_BYTES :]
        old = len(kept) - decisions
        if old > 0:
            kept = tuple([blob[:FINGERPRINT_BYTES] for blob in kept[:old]]) + kept[old:]
        return Ring(keys, kept)


EMPTY_RING = Ring()


def encode_record(state: bytes, ring: Ring) -> bytes:
    """The `blob` field for `state` (the engine's bytes) and `ring`."""
    packed = msgpack.packb([state, ring.keys, ring.kept], use_bin_type=True)
    return LAYOUT + _COMPRESSOR.compress(packed)


def later_layout(blob: bytes) -> int | None:
    """The layout of a `blob` from a newer journeyman (a later layout than this one), or None.
    Its first byte says: a layout 1 state is a msgpack map (0x80 and up), never a small int."""
    first = blob[0] if blob else 0
    return first if LAYOUT[0] < first < 0x80 else None


def decode_record(blob: bytes | None) -> tuple[bytes | None, Ring]:
    """The engine's state bytes (None: no state) and the ring a `blob` field holds. A blob of
    layout 2 that does not decompress or unpack comes back whole, with an empty ring: the
    engine refuses it as a state like any unreadable bytes (`decode_or_new` starts afresh);
    so does a blob of a later layout (`decode_or_new` refuses it: `later_layout`)."""
    if not blob:
        return None, EMPTY_RING
    if blob[:1] != LAYOUT:
        return blob, EMPTY_RING  # layout 1: the state alone
    try:
        state, keys, kept = msgpack.unpackb(_DECOMPRESSOR.decompress(blob[1:]), raw=False)
        if len(keys) != len(kept) * EVENT_KEY_BYTES:
            raise ValueError("a key per kept entry")
    except (zstandard.ZstdError, ValueError, TypeError):
        return blob, EMPTY_RING
    return state, Ring(keys, tuple(kept))
