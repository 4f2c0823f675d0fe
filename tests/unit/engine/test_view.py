"""The single customer view reads the state as of a moment: windows and friction move on."""

from __future__ import annotations

import pytest

from engine.decide import decide
from engine.state import new_state
from engine.view import customer_view
from tests.rulesets import T0_MS, event, retail

DAY_MS = 86_400_000


def test_a_view_names_stage_counters_friction_traits_and_shown_actions() -> None:
    state = new_state(retail()).with_traits({"tier": "gold"})
    for minute, type_ in enumerate(["page_view", "product_view", "add_to_cart", "payment_error"]):
        _, state = decide(retail(), state, event(type_, "v"), T0_MS + minute * 60_000)
    view = customer_view(retail(), state, T0_MS + 3 * 60_000)
    (journey,) = view.journeys
    assert journey.stage == "consideration" and journey.stage_entered_ms == T0_MS + 2 * 60_000
    assert journey.counters["product_views_7d"] == 1 and journey.counters["cart_adds_7d"] == 1
    assert journey.friction_score == pytest.approx(4.0) and journey.friction_level == "medium"
    assert list(journey.last_shown_ms) == ["live_chat", "free_shipping", "welcome_discount"]
    assert view.traits == {"tier": "gold"} and view.last_event_ms == T0_MS + 3 * 60_000


def test_later_views_see_windows_and_friction_move_on() -> None:
    _, state = decide(retail(), new_state(retail()), event("payment_error", "w"), T0_MS)
    _, state = decide(retail(), state, event("product_view", "w"), T0_MS)
    (later,) = customer_view(retail(), state, T0_MS + 8 * DAY_MS).journeys
    assert later.counters["product_views_7d"] == 0
    assert later.friction_score < 1e-100 and later.friction_level == "low"


def test_a_customer_never_seen_has_the_first_stage_and_zero_times() -> None:
    view = customer_view(retail(), new_state(retail()), T0_MS)
    assert view.last_event_ms == 0 and view.journeys[0].stage == "awareness"
    assert view.journeys[0].stage_entered_ms == 0 and view.journeys[0].last_shown_ms == {}
