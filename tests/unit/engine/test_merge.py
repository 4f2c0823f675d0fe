"""Identity stitching: what an anonymous visitor did counts for the customer they turn out to be."""

from __future__ import annotations

from engine.decide import decide
from engine.merge import merge_states
from engine.state import CustomerState, new_state
from tests.rulesets import T0_MS, event, retail

MINUTE_MS = 60_000


def _after(customer: str, types: list[str], start_ms: int = T0_MS) -> CustomerState:
    state = new_state(retail())
    for minute, type_ in enumerate(types):
        _, state = decide(retail(), state, event(type_, customer), start_ms + minute * MINUTE_MS)
    return state


def test_counters_add_up_across_the_two_histories() -> None:
    visitor = _after("anon-1", ["product_view", "product_view"])
    known = _after("c-1", ["page_view"], T0_MS + 10 * MINUTE_MS)
    merged = merge_states(retail(), known, visitor)
    decision, _ = decide(retail(), merged, event("product_view", "c-1"), T0_MS + 20 * MINUTE_MS)
    assert decision.stage == "consideration"  # 2 views as a visitor + 1 as the customer


def test_the_stage_further_along_the_journey_is_kept() -> None:
    visitor = _after("anon-2", ["add_to_cart", "checkout_started"])  # purchase
    known = _after("c-2", ["page_view"])  # awareness
    merged = merge_states(retail(), known, visitor)
    assert merged.journey(retail().journeys[0]).ints[0] == retail().journeys[0].stage_ids.index(
        "purchase"
    )
    decision, _ = decide(retail(), merged, event("page_view", "c-2"), T0_MS + 10 * MINUTE_MS)
    assert decision.stage == "purchase"


def test_an_action_shown_to_the_visitor_is_cooling_down_for_the_customer() -> None:
    visitor = _after("anon-3", ["page_view"])  # welcome discount shown (1 day cooldown)
    merged = merge_states(retail(), new_state(retail()), visitor)
    decision, _ = decide(retail(), merged, event("page_view", "c-3"), T0_MS + 10 * MINUTE_MS)
    assert "welcome_discount" not in decision.action_ids


def test_friction_adds_up_and_the_customers_traits_win() -> None:
    visitor = _after("anon-4", ["payment_error"]).with_traits({"tier": "silver", "city": "Ghent"})
    known = _after("c-4", ["payment_error"]).with_traits({"tier": "gold"})
    merged = merge_states(retail(), known, visitor)
    decision, _ = decide(retail(), merged, event("page_view", "c-4"), T0_MS + MINUTE_MS)
    assert decision.outcome.friction_level == "high"  # 4 + 4 points
    assert dict(merged.traits) == {"tier": "gold", "city": "Ghent"}


def test_event_ids_seen_by_either_are_still_recognised() -> None:
    visitor = _after("anon-5", ["page_view"])
    known = _after("c-5", ["page_view"])
    merged = merge_states(retail(), known, visitor)
    assert set(visitor.recent_event_ids) | set(known.recent_event_ids) == set(
        merged.recent_event_ids
    )


def test_merged_counters_read_as_of_the_merged_customers_clock() -> None:
    """Found by the property tests: a stored counter that was all zero keeps no head, so the
    merged window once ended at the visitor's older head, and a view read before the customer's
    last event still counted views the customer's clock had left behind."""
    from engine.codec import decode_state, encode_state
    from engine.view import customer_view

    visitor = _after("anon-9", ["product_view"])  # one view, 8 days before the customer's event
    known = _after("c-9", ["page_view"], T0_MS + 8 * 24 * 60 * MINUTE_MS)
    stored = decode_state(encode_state(retail(), known), retail())  # its counters all zero
    merged = merge_states(retail(), stored, visitor)
    (journey,) = customer_view(retail(), merged, T0_MS).journeys  # read before the clock
    assert journey.counters["product_views_7d"] == 0.0  # as of the customer's last event
