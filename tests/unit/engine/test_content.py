"""Variants (an experiment's arms) and content per channel: each customer offered an action
gets one variant for good, in the proportions of the weights, independently of the holdout;
the content delivered is the action's, then its channel's, then the variant's."""

from __future__ import annotations

import math
from collections import Counter

from engine.decide import decide
from engine.event import Event
from engine.state import new_state
from tests.rulesets import T0_MS, from_text

JOURNEY = """
journey: shop
version: 1
stages:
  - id: browsing
goals:
  order:
    when: {event: purchase}
    window: 7d
actions:
  - id: discount
    holdout: 10
    content: {banner: discount, code: TEN}
    content_by_channel:
      email: {subject: A discount for you}
    variants:
      - id: ten_off
        weight: 3
      - id: twenty_off
        weight: 1
        content: {code: TWENTY}
        content_by_channel:
          email: {subject: "Twenty off, today"}
"""


def test_variants_split_customers_by_weight_for_good_and_leave_the_holdout_alone() -> None:
    ruleset = from_text(JOURNEY)
    arms: Counter[str] = Counter()
    for n in range(4_000):
        customer = f"c{n}"
        first, state = decide(ruleset, new_state(ruleset), Event("e1", customer, "view"), T0_MS)
        again, _ = decide(ruleset, state, Event("e2", customer, "view"), T0_MS + 1)
        if first.held_out:
            assert not first.actions  # a held-out customer gets no variant: the control
            arms["held out"] += 1
            continue
        (offered,) = first.actions
        assert [a.variant for a in again.actions] in ([], [offered.variant])  # for good
        arms[offered.variant] += 1
    treated = arms["ten_off"] + arms["twenty_off"]
    # Binomial: 3/4 of the treated in ten_off, within 4 standard deviations.
    assert abs(arms["ten_off"] - 0.75 * treated) < 4 * math.sqrt(treated * 0.75 * 0.25)
    assert abs(arms["held out"] - 400) < 4 * math.sqrt(4_000 * 0.1 * 0.9)


def test_the_content_is_the_actions_then_the_channels_then_the_variants() -> None:
    ruleset = from_text(JOURNEY)
    seen = {}
    for n in range(200):
        for channel in ("web", "email"):
            event = Event(f"e-{channel}", f"c{n}", "view", channel)
            decision, _ = decide(ruleset, new_state(ruleset), event, T0_MS)
            for offered in decision.actions:
                seen[offered.variant, channel] = dict(offered.content)
    assert seen["ten_off", "web"] == {"banner": "discount", "code": "TEN"}
    assert seen["ten_off", "email"] == {
        "banner": "discount",
        "code": "TEN",
        "subject": "A discount for you",
    }
    assert seen["twenty_off", "web"] == {"banner": "discount", "code": "TWENTY"}
    assert seen["twenty_off", "email"]["subject"] == "Twenty off, today"


def test_exposures_and_conversions_carry_the_variant() -> None:
    ruleset = from_text(JOURNEY)
    for n in range(50):
        customer = f"c{n}"
        decision, state = decide(ruleset, new_state(ruleset), Event("e1", customer, "view"), T0_MS)
        (exposure,) = decision.exposures
        bought, _ = decide(ruleset, state, Event("e2", customer, "purchase"), T0_MS + 60_000)
        (conversion,) = bought.conversions
        if exposure.treated:
            assert exposure.variant == decision.actions[0].variant == conversion.variant != ""
        else:
            assert exposure.variant == conversion.variant == ""
