"""Warnings about valid journeys that are probably not what their author meant: each mistake of
issue 17's list is found at its line and column with a fix, can be kept on purpose with
`# allow: <code>`, and the example journeys have none."""

from __future__ import annotations

import pytest

from engine.errors import RuleProblem
from engine.rules.load import parse_journey
from tests.rulesets import RULES_DIR

HEAD = "journey: shop\nversion: 1\n"


def _warnings(body: str) -> list[RuleProblem]:
    return list(parse_journey(HEAD + body, "shop.yaml").warnings)


def _only(body: str) -> RuleProblem:
    (warning,) = _warnings(body)
    assert warning.severity == "warning"
    return warning


@pytest.mark.parametrize("name", ["retail.yaml", "loan_application.yaml", "trial.yaml"])
def test_the_example_journeys_have_no_warnings(name: str) -> None:
    path = RULES_DIR / name
    assert parse_journey(path.read_text(), str(path)).warnings == ()


def test_a_stage_nothing_leads_to_is_named_with_its_actions() -> None:
    warning, action = _warnings("""stages:
  - id: browsing
  - id: vip_lounge
transitions: []
actions:
  - id: lounge_offer
    stages: [vip_lounge]
""")
    assert (warning.line, warning.column, warning.code) == (5, 5, "unreachable-stage")
    assert "no customer ever enters stage `vip_lounge`" in warning.message
    assert (
        "lounge_offer" in warning.message
        and "add a transition with `to: vip_lounge`" in warning.hint
    )
    assert (action.line, action.code) == (9, "never-offered")
    assert "action `lounge_offer` is never offered: no customer enters vip_lounge" in action.message


def test_a_dead_end_before_stages_customers_move_on_from() -> None:
    warning = _only("""stages:
  - id: browsing
  - id: stuck
  - id: buying
transitions:
  - from: browsing
    to: stuck
    when: {event: view}
  - from: browsing
    to: buying
    when: {event: cart}
  - from: buying
    to: browsing
    when: {event: leave}
""")
    assert (warning.line, warning.code) == (5, "dead-end-stage")
    assert "customers who reach stage `stuck` stay there" in warning.message


def test_a_transition_an_earlier_catch_all_always_wins_over() -> None:
    warning = _only("""stages:
  - id: browsing
  - id: buying
  - id: lost
transitions:
  - id: any_purchase
    from: "*"
    to: buying
    when: {event: purchase}
  - id: first_purchase
    from: browsing
    to: buying
    when:
      all:
        - event: purchase
        - property: amount
          gt: 0
  - from: buying
    to: lost
    when: {time: idle, gte: 30d}
""")
    assert (warning.line, warning.code) == (12, "shadowed-transition")  # its first line
    assert "`any_purchase` (transition 1) comes first" in warning.message


def test_an_earlier_transition_into_the_customers_own_stage_does_not_shadow() -> None:
    assert (
        _warnings("""stages:
  - id: browsing
  - id: buying
transitions:
  - from: "*"
    to: buying
    when: {event: purchase}
  - from: buying
    to: browsing
    when: {event: purchase}
""")
        == []
    )


def test_an_action_whose_when_contradicts_its_segment() -> None:
    warning = _only("""stages:
  - id: browsing
segments:
  vip:
    when: {trait: tier, in: [gold, platinum]}
actions:
  - id: silver_deal
    segments: [vip]
    when: {trait: tier, eq: silver}
""")
    assert (warning.line, warning.code) == (11, "never-offered")
    assert "trait `tier` in ['silver']" in warning.message and "`vip`" in warning.message


def test_text_compared_with_a_number_is_a_type_mismatch() -> None:
    warning = _only("""stages:
  - id: browsing
segments:
  big_spenders:
    when: {trait: lifetime_value, gte: 1000}
actions:
  - id: vip_offer
    segments: [big_spenders]
  - id: round_number
    when: {trait: lifetime_value, eq: "500"}
""")
    assert (warning.line, warning.column, warning.code) == (12, 35, "type-mismatch")
    assert (
        "never holds" in warning.message and "write the number without quotes: 500" in warning.hint
    )


def test_a_counter_segment_or_friction_nobody_reads() -> None:
    warnings = _warnings("""stages:
  - id: browsing
segments:
  vip:
    when: {trait: tier, eq: gold}
counters:
  views_7d:
    when: {event: view}
    window: 7d
friction:
  half_life: 30m
  levels: {low: 0, high: 5}
  signals:
    - id: error
      when: {event: error}
      weight: 5
""")
    assert [(w.line, w.code) for w in warnings] == [(6, "unused"), (9, "unused"), (12, "unused")]
    assert "segment `vip`" in warnings[0].message and "counter `views_7d`" in warnings[1].message
    assert "friction is measured" in warnings[2].message


def test_a_warning_kept_on_purpose_is_silent() -> None:
    body = """stages:
  - id: browsing
  - id: archive   # allow: unreachable-stage
counters:
  # allow: unused
  views_7d:
    when: {event: view}
    window: 7d
"""
    assert _warnings(body) == []
    assert [w.code for w in _warnings(body.replace("# allow: unused", "# nothing"))] == ["unused"]


def test_a_contact_limit_on_a_channel_no_action_uses() -> None:
    body = """stages: [{id: s}]
contact_policy:
  limits:
    - channel: e-mail
      count: 1
      per: 1d
actions:
  - {id: news, channel: email}
"""
    warning = _only(body)
    assert (warning.line, warning.code) == (6, "unused")
    assert "no action is delivered on `e-mail`" in warning.message
    assert "(the actions' channels: `email`)" in warning.message
    # An action without a channel goes out on the event's: any limit may apply to it.
    assert _warnings(body.replace("channel: email}", "}")) == []
