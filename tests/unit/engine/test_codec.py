"""Customer state survives its bytes, stays small, and outlives the ruleset that wrote it: read
by name under another layout, in this process or in one that learned the layout."""

from __future__ import annotations

import struct

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import codec, history
from engine.codec import (
    SCHEMA_VERSION,
    decode_state,
    encode_state,
    layouts_of,
    learn_layout,
    unknown_layouts,
)
from engine.compile import Ruleset, compile_ruleset
from engine.decide import decide
from engine.errors import StateDecodeError, StateFromNewerServer
from engine.kernels import codes
from engine.rules.load import parse_journey
from engine.state import CustomerState, JourneyState, new_state
from tests.rulesets import T0_MS, event, from_text, loaded, retail

DAY_MS = 86_400_000


def _assert_same(a: CustomerState, b: CustomerState) -> None:
    assert a.journeys.keys() == b.journeys.keys()
    for name in a.journeys:
        np.testing.assert_array_equal(a.journeys[name].ints, b.journeys[name].ints)
        np.testing.assert_array_equal(a.journeys[name].floats, b.journeys[name].floats)
    assert dict(a.traits) == dict(b.traits)
    assert a.recent_event_ids == b.recent_event_ids


def _year_of_shopping(customer: str = "year") -> CustomerState:
    """A busy customer: a visit every day for a year, with carts, errors, orders and reviews."""
    ruleset = retail()
    state = new_state(ruleset).with_traits({"tier": "gold", "email_opt_in": True})
    for day in range(365):
        at = T0_MS + day * DAY_MS
        steps = ["page_view", "product_view", "add_to_cart", "payment_error", "purchase"]
        if day % 30 == 0:
            steps += ["delivery_confirmed", "review_written"]
        for minute, type_ in enumerate(steps):
            props = {"amount": 35.5, "load_ms": 4000.0}
            _, state = decide(ruleset, state, event(type_, customer, **props), at + minute * 60_000)
    return state


def test_round_trip_keeps_every_array_traits_and_event_ids() -> None:
    state = _year_of_shopping()
    _assert_same(decode_state(encode_state(retail(), state), retail()), state)


def test_arrays_read_as_they_are_are_the_processs_own() -> None:
    """Read under the layout they were written under, a journey's arrays are writable copies
    in the machine's own byte order, as the kernels write them."""
    state = decode_state(encode_state(retail(), _year_of_shopping()), retail())
    journey = state.journey(retail().journeys[0])
    assert journey.ints.flags.writeable and journey.floats.flags.writeable
    assert journey.fits(retail().journeys[0])


def test_a_year_of_activity_fits_in_two_kib() -> None:
    size = len(encode_state(retail(), _year_of_shopping()))
    print(f"retail state after a year of daily activity: {size} bytes")
    assert size <= 2048


def test_a_new_customer_encodes_small_and_decodes_to_a_new_state() -> None:
    data = encode_state(retail(), new_state(retail()))
    assert len(data) < 200
    _assert_same(decode_state(data, retail()), new_state(retail()))


OLD = """
journey: shop
version: 1
stages: [{id: browsing}, {id: buying}, {id: gone}]
counters:
  views: {when: {event: view}, window: 7d}
  carts: {when: {event: cart}, window: 7d}
transitions:
  - {from: browsing, to: buying, when: {event: cart}}
  - {from: "*", to: gone, when: {event: leave}}
actions:
  - {id: promo, cooldown: 1d, cap: {count: 3, per: 30d}}
  - {id: old_offer}
"""

NEW = """
journey: shop
version: 2
stages: [{id: browsing}, {id: buying}]
counters:
  views: {when: {event: view}, window: 7d}
  carts: {when: {event: cart}, window: 7d, precision: 6h}
  searches: {when: {event: search}, window: 7d}
transitions:
  - {from: browsing, to: buying, when: {event: cart}}
actions:
  - {id: promo, cooldown: 1d, cap: {count: 2, per: 30d}}
  - {id: brand_new}
"""


def _counter(ruleset_state: tuple[object, CustomerState], name: str) -> float:
    ruleset, state = ruleset_state
    journey = ruleset.journeys[0]  # type: ignore[attr-defined]
    index = journey.counter_names.index(name)
    first = journey.rules.counter_offset[index]
    floats = state.journey(journey).floats
    return float(floats[first : first + journey.rules.counter_buckets[index]].sum())


def _shopping_under(old: Ruleset) -> CustomerState:
    state = new_state(old)
    for day, type_ in enumerate(["view", "view", "cart", "search"]):
        _, state = decide(old, state, event(type_, "m"), T0_MS + day * 3_600_000)
    for day in range(3):  # promo: shown at T0, day 1 and day 2, then capped at three in 30 days
        _, state = decide(old, state, event("view", "m"), T0_MS + (day + 1) * DAY_MS)
    return state


def test_state_written_under_an_older_ruleset_keeps_what_still_means_the_same() -> None:
    old, new = from_text(OLD), from_text(NEW)
    state = _shopping_under(old)
    migrated = decode_state(encode_state(old, state), new)
    journey = new.journeys[0]
    ints = migrated.journey(journey).ints
    assert journey.stage_ids[ints[codes.INT_STAGE]] == "buying"
    assert _counter((new, migrated), "views") == _counter((old, state), "views")
    assert _counter((new, migrated), "carts") == 0  # precision changed: old buckets dropped
    assert _counter((new, migrated), "searches") == 0  # new counter starts empty
    cap = journey.rules.action_cap_offset[0]
    history = sorted(ints[cap : cap + 2].tolist())
    assert history == [T0_MS + DAY_MS, T0_MS + 2 * DAY_MS]  # a smaller cap keeps the latest
    assert ints[journey.rules.action_last_shown_index + 1] == codes.NEVER_MS  # brand_new


def test_a_customer_whose_stage_was_removed_re_enters_at_the_first_stage() -> None:
    old, new = from_text(OLD), from_text(NEW)
    _, state = decide(old, new_state(old), event("leave", "g"), T0_MS)
    assert state.journey(old.journeys[0]).ints[codes.INT_STAGE] == 2  # gone
    migrated = decode_state(encode_state(old, state), new)
    decision, _ = decide(new, migrated, event("view", "g"), T0_MS + 1000)
    assert decision.stage == "browsing"


def test_a_journey_added_later_starts_empty_for_existing_customers() -> None:
    data = encode_state(retail(), _year_of_shopping("added"))
    both = compile_ruleset([loaded("retail.yaml"), parse_journey(NEW, "new.yaml")])
    state = decode_state(data, both)
    assert state.journey(both.journeys[1]).ints[codes.INT_STAGE] == 0
    assert state.journey(both.journeys[0]).ints[codes.INT_STAGE] != 0  # retail kept its stage


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"not msgpack at all", msgpack.packb([1, 2, 3]), msgpack.packb({"j": {}})],
)
def test_bytes_that_are_not_a_state_raise_a_named_error(data: bytes) -> None:
    with pytest.raises(StateDecodeError):
        decode_state(data, retail())


def test_a_newer_schema_version_is_refused_not_read_as_damaged() -> None:
    # Not a StateDecodeError: those start the customer afresh, which would write over what the
    # newer journeyman kept.
    old = from_text(OLD)
    document = msgpack.unpackb(encode_state(old, _shopping_under(old)))
    document["js"][0] = b"\x00" * len(document["js"][0])  # a layout known nowhere
    unknown = msgpack.packb(document, use_bin_type=True)
    document["v"] = SCHEMA_VERSION + 1
    newer = msgpack.packb(document, use_bin_type=True)
    with pytest.raises(StateFromNewerServer, match="newer journeyman") as raised:
        decode_state(newer, old)
    assert not isinstance(raised.value, StateDecodeError)
    assert (raised.value.version, raised.value.readable) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert "upgrade" in str(raised.value)
    # Its digests are not this build's to look up in the layouts registry.
    assert unknown_layouts(unknown) == [document["js"][0]]
    assert unknown_layouts(newer) == []


_msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=64),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    journey=st.dictionaries(
        st.sampled_from(["st", "in", "at", "fa", "c", "f", "a", "zz"]), _msgpack_values, max_size=8
    ),
    traits=_msgpack_values,
    event_ids=_msgpack_values,
)
def test_decoding_a_damaged_state_never_crashes_and_stays_usable(
    journey: dict[str, object], traits: object, event_ids: object
) -> None:
    data = msgpack.packb({"v": 1, "tr": traits, "ev": event_ids, "j": {"retail": journey}})
    state = decode_state(data, retail())
    decision, _ = decide(retail(), state, event("page_view", "d"), T0_MS)
    assert decision.stage in retail().journeys[0].stage_ids


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256))
def test_decoding_random_bytes_either_works_or_raises_state_decode_error(data: bytes) -> None:
    try:
        decode_state(data, retail())
    except StateDecodeError:
        pass


SINCE_ONE = """
journey: trial
version: 1
stages: [{id: trying}]
actions:
  - {id: setup_call, when: {since: signup, lte: 7d}}
"""
SINCE_TWO = (
    SINCE_ONE
    + """
  - {id: upgrade, when: {since: pricing_view, lte: 1d}}
"""
)


def test_the_last_time_of_each_event_type_since_reads_is_kept_by_its_name() -> None:
    one, two = from_text(SINCE_ONE), from_text(SINCE_TWO)
    _, state = decide(one, new_state(one), event("signup", "ida"), T0_MS)
    migrated = decode_state(encode_state(one, state), two)  # a ruleset reading one more type
    journey = two.journeys[0]
    ints = migrated.journey(journey).ints
    slots = dict(zip(journey.since_types, ints[journey.rules.since_index :].tolist(), strict=False))
    assert slots == {"signup": T0_MS, "pricing_view": codes.NEVER_MS}


CONTACT = """
journey: mail
version: 1
stages: [{id: s}]
contact_policy:
  limits:
    - {channel: email, count: COUNT, per: 7d}
actions:
  - {id: news, channel: email}
"""


def test_contact_limit_offers_are_kept_by_channel_and_window_through_a_count_change() -> None:
    three, two = from_text(CONTACT.replace("COUNT", "3")), from_text(CONTACT.replace("COUNT", "2"))
    state = new_state(three)
    offered = []
    for day in range(4):
        decision, state = decide(three, state, event("visit", "cy"), T0_MS + day * DAY_MS)
        offered.append([a.action for a in decision.actions])
    assert offered == [["news"], ["news"], ["news"], []]  # three a week
    migrated = decode_state(encode_state(three, state), two)
    journey = two.journeys[0]
    first = int(journey.rules.limit_offset[0])
    kept = sorted(migrated.journey(journey).ints[first : first + 2].tolist())
    assert kept == [T0_MS + DAY_MS, T0_MS + 2 * DAY_MS]  # a smaller count keeps the latest


def test_a_state_written_by_name_before_schema_2_is_still_read() -> None:
    old = from_text(OLD)
    journey = old.journeys[0]
    rules = journey.rules
    width, n_buckets = int(rules.counter_width_ms[0]), int(rules.counter_buckets[0])
    buckets = [2.0] + [0.0] * (n_buckets - 1)
    document = {"v": 1, "tr": {"tier": "gold"}, "ev": struct.pack("<2Q", 7, 9), "j": {"shop": {
        "st": "buying", "in": T0_MS, "at": T0_MS + 5, "fa": codes.NEVER_MS,
        "c": {"views": [width, n_buckets, 42, struct.pack(f"<{n_buckets}d", *buckets)]},
        "f": {}, "a": {"promo": [T0_MS, struct.pack("<q", T0_MS)]},
        "h": [["buying", T0_MS], ["browsing", T0_MS - 10]],
    }}}  # fmt: skip
    state = decode_state(msgpack.packb(document), old)

    ints = state.journey(journey).ints
    assert journey.stage_ids[ints[codes.INT_STAGE]] == "buying"
    assert (ints[codes.INT_STAGE_ENTERED_MS], ints[codes.INT_LAST_EVENT_MS]) == (T0_MS, T0_MS + 5)
    assert _counter((old, state), "views") == 2.0
    assert ints[rules.counter_head_index] == 42
    assert ints[rules.action_last_shown_index] == T0_MS
    assert ints[rules.action_cap_offset[0]] == T0_MS
    assert history.entries(journey, state.journey(journey)) == [
        ("buying", T0_MS), ("browsing", T0_MS - 10)
    ]  # fmt: skip
    assert (dict(state.traits), state.recent_event_ids) == ({"tier": "gold"}, (7, 9))
    # Written again, it is schema 2 and reads back the same.
    again = encode_state(old, state)
    assert msgpack.unpackb(again)["v"] == SCHEMA_VERSION == 2
    _assert_same(decode_state(again, old), state)


def _as_a_new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget every layout: as a process that never compiled the rulesets of this test."""
    monkeypatch.setattr(codec, "_KNOWN", {})
    monkeypatch.setattr(codec, "_LAYOUTS", codec.per_object(codec._laid_out))


def test_a_state_from_another_process_is_read_once_its_layout_is_learned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = from_text(OLD), from_text(NEW)
    data = encode_state(old, _shopping_under(old))
    kept = layouts_of(old)  # what the writing process keeps for others
    in_the_writer = decode_state(data, new)

    _as_a_new_process(monkeypatch)
    (digest,) = kept
    assert unknown_layouts(data) == [digest]
    with pytest.raises(StateDecodeError, match=digest.hex()):
        decode_state(data, new)

    assert learn_layout(kept[digest]) == digest
    assert unknown_layouts(data) == []
    _assert_same(decode_state(data, new), in_the_writer)
    # The layout in force needs no learning: the reader lays its own journeys out.
    assert unknown_layouts(encode_state(new, decode_state(data, new))) == []


def test_a_layout_changes_with_where_the_parts_are_kept_not_with_the_rules_values() -> None:
    base = layouts_of(from_text(OLD))
    assert layouts_of(from_text(OLD)) == base  # compiled again
    assert layouts_of(from_text(OLD.replace("cooldown: 1d", "cooldown: 2d"))) == base
    assert layouts_of(from_text(OLD.replace("window: 7d}", "window: 14d}"))).keys() != base.keys()
    assert layouts_of(from_text(NEW)).keys() != base.keys()


@pytest.mark.parametrize(
    "description",
    [b"", b"\xc1", msgpack.packb([99, "shop"]), msgpack.packb([1, "shop", 4, 0, ["a"], 5]),
     msgpack.packb([1, "shop", "4", 0, ["a"], [], [], [], [], [], [0, 5], 4, 5, [], []])],
)  # fmt: skip
def test_bytes_that_are_not_a_layout_are_refused(description: bytes) -> None:
    with pytest.raises(StateDecodeError, match="layout"):
        learn_layout(description)


def test_a_customer_no_journey_has_seen_stores_no_arrays() -> None:
    both = compile_ruleset([loaded("retail.yaml"), parse_journey(NEW, "new.yaml")])
    _, state = decide(retail(), new_state(retail()), event("page_view", "n"), T0_MS)
    data = encode_state(both, decode_state(encode_state(retail(), state), both))
    arrays = msgpack.unpackb(data)["js"]
    assert len(arrays) == 3  # retail's digest and arrays; the new journey's are left out
    assert arrays[0] == layouts_of(retail()).popitem()[0]


_ints64 = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_damaged_arrays_under_the_layout_in_force_never_crash_a_decision(
    data: st.DataObject,
) -> None:
    """The kernels do not check bounds: a stored stage or exposure that is no index is read by
    name instead, where it is dropped."""
    ruleset = retail()
    rules = ruleset.journeys[0].rules
    ints = data.draw(st.lists(_ints64, min_size=rules.n_ints, max_size=rules.n_ints))
    floats = data.draw(st.lists(st.floats(), min_size=rules.n_floats, max_size=rules.n_floats))
    (digest,) = layouts_of(ruleset)
    stored = {"v": 2, "js": [
        digest, struct.pack(f"<{len(ints)}q", *ints), struct.pack(f"<{len(floats)}d", *floats)
    ]}  # fmt: skip
    state = decode_state(msgpack.packb(stored), ruleset)
    # Damaged times and scores make infinite or NaN arithmetic, which numpy warns of when the
    # kernels run as Python (NUMBA_DISABLE_JIT): what is checked is the decision.
    with np.errstate(all="ignore"):
        decision, after = decide(ruleset, state, event("page_view", "d"), T0_MS)
    assert decision.stage in ruleset.journeys[0].stage_ids
    decode_state(encode_state(ruleset, after), ruleset)


@pytest.mark.parametrize("sizes", [(0, 0), (8, 8), (-8, 0), (0, 8)])
def test_arrays_of_other_sizes_than_their_layouts_are_refused(sizes: tuple[int, int]) -> None:
    ruleset = retail()
    state = _year_of_shopping("sizes")
    document = msgpack.unpackb(encode_state(ruleset, state))
    ints, floats = document["js"][1:3]
    document["js"][1:3] = [ints[: len(ints) + sizes[0]] + b"\0" * max(sizes[0], 0),
                           floats + b"\0" * sizes[1]]  # fmt: skip
    if sizes == (0, 0):
        _assert_same(decode_state(msgpack.packb(document), ruleset), state)
        return
    with pytest.raises(StateDecodeError, match="sizes"):
        decode_state(msgpack.packb(document), ruleset)


@pytest.mark.parametrize("at", [2, 3])  # n_ints, n_floats
def test_a_layout_description_claiming_gigabytes_of_slots_is_refused(at: int) -> None:
    # Found by the test below: a damaged size passed every slot check (all slots lie inside
    # 3.7 billion), and a state laid out by it would be 30 GB.
    (description,) = layouts_of(from_text(OLD)).values()
    parts = msgpack.unpackb(description)
    parts[at] = 3_695_333_542
    with pytest.raises(StateDecodeError, match="more than any journey's"):
        learn_layout(msgpack.packb(parts))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_damaged_layout_description_is_refused_or_safe_to_read_with(data: st.DataObject) -> None:
    """Any change to a real description is refused, or makes a layout whose slots all lie
    inside its arrays: reading a state with it never fails but as `StateDecodeError`."""
    (description,) = layouts_of(from_text(OLD)).values()
    parts = msgpack.unpackb(description)
    at = data.draw(st.integers(0, len(parts) - 1))
    parts[at] = data.draw(_msgpack_values)
    try:
        digest = learn_layout(msgpack.packb(parts))
    except StateDecodeError:
        return
    layout = codec._KNOWN[digest]
    ints = struct.pack(f"<{layout.n_ints}q", *[0] * layout.n_ints)
    floats = struct.pack(f"<{layout.n_floats}d", *[1.0] * layout.n_floats)
    stored = msgpack.packb({"v": 2, "js": [digest, ints, floats]})
    try:
        decode_state(stored, from_text(NEW))
    except StateDecodeError:
        pass


def test_a_state_laid_out_for_another_ruleset_is_not_written_under_this_ones_layout() -> None:
    old, new = from_text(OLD), from_text(NEW)
    with pytest.raises(ValueError, match="another layout"):
        encode_state(new, _shopping_under(old))


@pytest.mark.parametrize("head", [-(2**63), -(2**63) + 1, 2**63 - 1, 2**63 - 2])
def test_a_counter_head_at_the_ends_of_int64_is_read_without_wrapping_around(head: int) -> None:
    """A stored counter's newest epoch near the int64 limits once wrapped `current - head` or
    `head + 1` in the kernels, which then emptied buckets for ~2**63 epochs."""
    ruleset = retail()
    journey = ruleset.journeys[0]
    state = _year_of_shopping("ends")
    ints = state.journey(journey).ints.copy()
    ints[journey.rules.counter_head_index] = head
    floats = state.journey(journey).floats
    damaged = CustomerState({journey.name: JourneyState(ints, floats)}, state.traits)
    with np.errstate(all="ignore"):
        decision, _ = decide(ruleset, damaged, event("page_view", "ends"), T0_MS + 400 * DAY_MS)
    assert decision.stage in journey.stage_ids
