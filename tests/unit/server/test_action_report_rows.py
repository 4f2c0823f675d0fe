"""The action report's rows from outcome counts (no Redis): everyone offered an action, then
each of its variants, against the same control group."""

from __future__ import annotations

from collections import Counter

from server.analytics.action_report import goal_rows
from server.store.keys import conversion_field, exposure_field
from tests.rulesets import from_text

JOURNEY = """
journey: shop
version: 1
stages:
  - id: browsing
  - id: buying
transitions:
  - {from: browsing, to: buying, when: {event: cart}}
goals:
  order:
    when: {event: purchase}
    window: 7d
actions:
  - id: discount
    holdout: 10
    variants:
      - {id: ten_off, weight: 3}
      - {id: twenty_off, weight: 1}
"""


def _counts() -> Counter[str]:
    counts: Counter[str] = Counter()
    for stage, share in (("browsing", 2), ("buying", 1)):  # counted per stage of exposure
        counts[exposure_field("discount", stage, treated=True, variant="ten_off")] += 100 * share
        counts[exposure_field("discount", stage, treated=True, variant="twenty_off")] += 40 * share
        counts[exposure_field("discount", stage, treated=False)] += 15 * share
        counts[conversion_field("discount", "order", stage, treated=True, variant="ten_off")] += (
            10 * share
        )
        counts[
            conversion_field("discount", "order", stage, treated=True, variant="twenty_off")
        ] += 8 * share
        counts[conversion_field("discount", "order", stage, treated=False)] += share
    return counts


def test_a_row_for_the_action_then_one_per_variant_against_the_same_control() -> None:
    rows = goal_rows(from_text(JOURNEY).journeys[0], _counts())
    assert [(r.variant, r.treated_customers, r.treated_conversions) for r in rows] == [
        ("", 420, 54), ("ten_off", 300, 30), ("twenty_off", 120, 24),
    ]  # fmt: skip
    assert {(r.control_customers, r.control_conversions) for r in rows} == {(45, 3)}
    overall, ten_off, twenty_off = rows
    assert overall.holdout_percent == 10
    # Against the whole control, a quarter-weight arm expects 10 / (10 + 90 / 4) = 30.8 %.
    assert round(twenty_off.holdout_percent, 1) == 30.8
    assert round(ten_off.holdout_percent, 1) == 12.9
    assert not twenty_off.sample_ratio_mismatch  # 45 of 165 is 27 %, as expected
