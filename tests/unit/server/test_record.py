"""A customer's record: the engine's state and the decision ring, in one compressed field; and
the layout before it, a state alone."""

from __future__ import annotations

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from server.store.record import (
    EMPTY_RING,
    FINGERPRINT_BYTES,
    LAYOUT,
    Ring,
    decode_record,
    encode_record,
    event_key,
)

EVENT_IDS = st.text(min_size=0, max_size=40)
KEPT = st.binary(max_size=300)


@given(
    state=st.binary(max_size=2_000),
    events=st.lists(st.tuples(EVENT_IDS, KEPT), max_size=40),
    window=st.integers(min_value=1, max_value=16),
    data=st.data(),
)
def test_a_record_reads_back_with_the_last_events_of_its_ring(
    state: bytes, events: list[tuple[str, bytes]], window: int, data: st.DataObject
) -> None:
    decisions = data.draw(st.integers(min_value=0, max_value=window), label="decisions")
    ring = EMPTY_RING
    for at in range(0, len(events), 3):  # a few events per commit, as a batch brings them
        ring = ring.then(events[at : at + 3], window, decisions)
    assert decode_record(encode_record(state, ring)) == (state, ring)
    # The reference: the last `window` events, oldest first, all but the last `decisions`
    # cut to their fingerprint.
    kept = events[-window:]
    kept = [
        (e, blob if at >= len(kept) - decisions else blob[:FINGERPRINT_BYTES])
        for at, (e, blob) in enumerate(kept)
    ]
    assert len(ring.entries) == len(kept)
    for event_id, _ in events:
        first_kept = next((blob for e, blob in kept if e == event_id), None)
        assert ring.find(event_id) == first_kept


def test_the_ring_keeps_the_newest_and_finds_by_event_id() -> None:
    ring = EMPTY_RING.then([("a", b"A"), ("b", b"B")], 2, 2).then([("c", b"C")], 2, 2)
    assert [ring.find(e) for e in ("a", "b", "c", "d")] == [None, b"B", b"C", None]
    assert ring.entries[0] == (event_key("b"), b"B")
    assert ring.then([], 2, 2) is ring


def test_a_key_that_shows_across_two_entries_is_not_found_there() -> None:
    key = event_key("e1")
    straddling = Ring(b"abcd" + key[:4] + key[4:] + b"wxyz", (b"first", b"second"))
    assert straddling.find("e1") is None
    also_whole = Ring(straddling.keys + key, (*straddling.kept, b"third"))
    assert also_whole.find("e1") == b"third"


def test_older_entries_keep_the_fingerprint_alone() -> None:
    kept = [(f"e{n}", bytes([n]) * FINGERPRINT_BYTES + b"decision") for n in range(5)]
    ring = EMPTY_RING.then(kept[:3], 4, 2).then(kept[3:], 4, 2)
    cut = [bytes([n]) * FINGERPRINT_BYTES for n in range(5)]
    assert [ring.find(f"e{n}") for n in range(5)] == [None, cut[1], cut[2], kept[3][1], kept[4][1]]


def test_a_state_written_before_the_ring_moved_reads_with_an_empty_ring() -> None:
    older = msgpack.packb({"v": 1, "tr": {}, "j": {}})  # a map: the engine's state alone
    assert older[:1] != LAYOUT
    assert decode_record(older) == (older, EMPTY_RING)
    assert decode_record(None) == (None, EMPTY_RING)


def test_a_damaged_record_comes_back_whole_for_the_engine_to_refuse() -> None:
    damaged = LAYOUT + b"not zstd"
    assert decode_record(damaged) == (damaged, EMPTY_RING)


def test_repeated_names_compress_far_below_their_size() -> None:
    decision = b"retail advocacy low slow_page rage_click retail@2026.11.23#1a67760a7c1b" * 2
    ring = EMPTY_RING.then([(f"event-{n}", decision) for n in range(16)], 16, 16)
    record = encode_record(bytes(800), ring)
    assert len(record) < (800 + 16 * len(decision)) / 4
