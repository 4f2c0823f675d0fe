"""How the simulated shoppers answer actions (`benchmarks.traffic`): the truth the action report is
checked against in `tests/service/test_locust_report.py`.

Behaviour only: which exposures count, what a shopper draws, which orders it holds back.
"""

from __future__ import annotations

import random
from pathlib import Path

from benchmarks.traffic import (
    CLICK,
    CONVERSION_ODDS,
    ORDER,
    Attribution,
    CustomerOutcomes,
    Exposed,
    Reaction,
)
from engine.rules.load import parse_journeys

RETAIL = Path(__file__).resolve().parents[2] / "rules" / "retail.yaml"
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
ATTRIBUTION = Attribution(WEEK_MS, frozenset({"welcome_discount", "win_back"}))


class Always(random.Random):
    """Every draw comes out `value`: 0.0 reaches every goal with odds above 0, 0.999 none."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_the_odds_cover_every_action_and_goal_of_the_retail_journey() -> None:
    (journey,) = parse_journeys([(str(RETAIL), RETAIL.read_text(encoding="utf-8"))])
    assert set(CONVERSION_ODDS) == {action.id for action in journey.model.actions}
    for odds in CONVERSION_ODDS.values():
        assert set(odds) == set(journey.model.goals) == {ORDER, CLICK}
        assert odds[CLICK].control == 0.0  # held out, a shopper saw nothing to click


def test_the_attribution_is_read_from_the_rules() -> None:
    assert Attribution.from_rules(RETAIL) == ATTRIBUTION  # the longest window: order's 7 days


def test_an_exposure_counts_again_only_after_the_window_as_the_engine_records_it() -> None:
    outcomes = CustomerOutcomes(ATTRIBUTION, Always(0.999))
    first = outcomes.expose(["free_shipping"], ["welcome_discount"], 0)
    assert first == [Exposed("free_shipping", True), Exposed("welcome_discount", False)]
    assert outcomes.expose(["free_shipping"], ["welcome_discount"], WEEK_MS) == []  # within
    assert outcomes.expose(["free_shipping"], [], WEEK_MS + 1) == [Exposed("free_shipping", True)]


def test_a_shopper_clicks_what_it_was_offered_and_orders_once_for_the_action_under_test() -> None:
    outcomes = CustomerOutcomes(ATTRIBUTION, Always(0.0))
    exposed = [Exposed("free_shipping", True), Exposed("welcome_discount", False)]
    assert outcomes.react(exposed) == [
        Reaction(CLICK, "free_shipping", True),  # the held-out action is not clicked
        Reaction(ORDER, "welcome_discount", False),  # one order, the tested action's
    ]
    assert CustomerOutcomes(ATTRIBUTION, Always(0.999)).react(exposed) == []


def test_inside_a_tested_window_only_the_tested_actions_order_is_placed() -> None:
    outcomes = CustomerOutcomes(ATTRIBUTION, Always(0.999))
    assert outcomes.may_order(0)  # nothing under test yet
    outcomes.expose(["welcome_discount"], [], DAY_MS)
    assert not outcomes.may_order(DAY_MS + 60_000)  # the walk's own purchase
    assert not outcomes.may_order(DAY_MS + 60_000, Reaction(ORDER, "free_shipping", True))
    assert outcomes.may_order(DAY_MS + 60_000, Reaction(ORDER, "welcome_discount", True))
    assert outcomes.may_order(DAY_MS + WEEK_MS + 1)  # the window has closed
