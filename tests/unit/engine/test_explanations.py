"""`decide(..., explain=True)` answers "why not" in a marketer's words: the failing condition
with the values seen, when a cooldown or cap ends, the holdout, and for each transition from the
customer's stage that did not fire, the first part of its `when` that failed."""

from __future__ import annotations

from engine.decide import decide
from engine.decision import Decision
from engine.state import CustomerState, new_state
from tests.rulesets import T0_MS, event, from_text, retail

MINUTE_MS = 60_000
DAY_MS = 86_400_000


def _run(customer: str, types: list[str]) -> tuple[Decision, CustomerState]:
    state = new_state(retail())
    decision = None
    for minute, type_ in enumerate(types):
        decision, state = decide(
            retail(), state, event(type_, customer), T0_MS + minute * MINUTE_MS, explain=True
        )
    assert decision is not None
    return decision, state


def _detail(decision: Decision, action: str) -> tuple[str, str]:
    (found,) = [e for e in decision.excluded if e.action == action]
    return found.reason, found.detail


def test_a_failed_condition_names_the_value_seen_and_the_value_needed() -> None:
    decision, _ = _run("ana", ["page_view"])
    assert _detail(decision, "free_shipping") == (
        "stage", "offered in consideration, purchase; the customer is in awareness",
    )  # fmt: skip
    decision, _ = _run("cy", ["product_view", "product_view", "product_view"])
    assert _detail(decision, "free_shipping") == (
        "condition", "counter cart_adds_7d = 0, needs ≥ 1",
    )  # fmt: skip


def test_a_cooldown_says_when_it_ends_in_a_time_a_person_reads() -> None:
    decision, _ = _run("ana", ["page_view", "page_view"])
    assert _detail(decision, "welcome_discount") == (
        "cooldown",
        "offered 2026-01-05 08:00 UTC; its 1d cooldown ends 2026-01-06 08:00 UTC",
    )


def test_a_held_out_action_is_listed_as_held_out_not_as_excluded() -> None:
    decision, _ = _run("shopper0", ["page_view"])  # in the welcome discount's control group
    assert decision.held_out == ("welcome_discount",)
    assert "welcome_discount" not in [e.action for e in decision.excluded]


def test_transitions_that_did_not_fire_say_why() -> None:
    decision, _ = _run("dee", ["product_view"])
    why = {t.transition: t.reason for t in decision.not_fired}
    assert why["started_comparing"] == (
        "none of: counter product_views_7d = 1, needs ≥ 3; event = product_view, needs add_to_cart"
    )
    assert why["checkout_started"] == "event = product_view, needs checkout_started"
    assert "went_quiet" not in why  # it does not start from awareness
    fired, _ = _run("eve", ["add_to_cart"])
    assert fired.outcome.transition == "started_comparing" and fired.not_fired == ()


SINCE_RULES = """
journey: trial
version: 1
stages: [{id: trying}]
actions:
  - id: setup_call
    when: {since: signup, lte: 7d}
"""


def test_a_since_condition_names_the_time_since_the_event_or_that_it_never_came() -> None:
    ruleset = from_text(SINCE_RULES)
    state = new_state(ruleset)
    decision, state = decide(ruleset, state, event("login", "sol"), T0_MS, explain=True)
    assert _detail(decision, "setup_call") == ("condition", "since signup = never sent, needs ≤ 7d")
    _, state = decide(ruleset, state, event("signup", "sol", event_id="s"), T0_MS + MINUTE_MS)
    decision, _ = decide(
        ruleset, state, event("login", "sol", event_id="l"), T0_MS + 8 * DAY_MS, explain=True
    )
    assert _detail(decision, "setup_call") == ("condition", "since signup = 7d 23h, needs ≤ 7d")


UNTIL_RULES = """
journey: trial
version: 1
stages: [{id: trying}]
actions:
  - id: last_call
    when:
      all:
        - {until: trial_ends_at, lte: 2d}
        - {until: trial_ends_at, gt: 0s}
"""


def test_an_until_condition_names_the_time_left_or_that_the_date_passed() -> None:
    ruleset = from_text(UNTIL_RULES)
    ends = "2026-01-10T18:00:00Z"  # T0 is 2026-01-05T08:00:00Z
    state = new_state(ruleset).with_traits({"trial_ends_at": ends})
    decision, _ = decide(ruleset, state, event("login", "una"), T0_MS, explain=True)
    assert _detail(decision, "last_call") == (
        "condition",
        "until trial_ends_at = 5d 10h, needs ≤ 2d",
    )
    decision, _ = decide(ruleset, state, event("login", "una"), T0_MS + 4 * DAY_MS, explain=True)
    assert [offered.action for offered in decision.actions] == ["last_call"]
    late = T0_MS + 6 * DAY_MS
    decision, _ = decide(ruleset, state, event("login", "una", event_id="x"), late, explain=True)
    assert _detail(decision, "last_call") == (
        "condition", "until trial_ends_at = passed 14h ago, needs > 0s",
    )  # fmt: skip
    undated = state.with_traits({"trial_ends_at": "next week"})
    decision, _ = decide(ruleset, undated, event("login", "una"), T0_MS, explain=True)
    assert _detail(decision, "last_call") == (
        "condition", "until trial_ends_at = no date (trait trial_ends_at = next week), needs ≤ 2d",
    )  # fmt: skip


TOPIC_RULES = """
journey: trial
version: 1
stages: [{id: trying}]
friction:
  half_life: 1d
  levels: {low: 0, medium: 3}
  signals:
    - {id: pricing_view, topic: pricing, when: {event: pricing_view}, weight: 1}
    - {id: setup_failed, topic: onboarding, when: {event: setup_failed}, weight: 3}
actions:
  - id: onboarding_help
    when: {friction: medium, topic: onboarding}
"""


def test_a_friction_topic_condition_names_the_topic_and_its_level() -> None:
    ruleset = from_text(TOPIC_RULES)
    state = new_state(ruleset)
    for minute in range(4):  # four pricing views: medium overall, none of it onboarding
        decision, state = decide(
            ruleset, state, event("pricing_view", "fay", event_id=f"p{minute}"),
            T0_MS + minute * MINUTE_MS, explain=True,
        )  # fmt: skip
    assert decision.outcome.friction_level == "medium"
    assert _detail(decision, "onboarding_help") == (
        "condition", "friction on onboarding low, needs medium or higher",
    )  # fmt: skip
    decision, _ = decide(ruleset, state, event("setup_failed", "fay"), T0_MS + 5 * MINUTE_MS)
    assert [offered.action for offered in decision.actions] == ["onboarding_help"]


QUIET_RULES = """
journey: trial
version: 1
stages: [{id: trying}]
contact_policy:
  quiet_hours: {from: "21:00", to: "08:00", channels: [email]}
actions:
  - {id: news, channel: email, priority: 10}
  - {id: banner, channel: web}
"""


def test_quiet_hours_keep_an_email_back_at_night_on_the_customers_clock() -> None:
    ruleset = from_text(QUIET_RULES)
    state = new_state(ruleset).with_traits({"time_zone": "Asia/Tokyo"})  # T0 is 17:00 there
    evening = T0_MS + 4 * 60 * MINUTE_MS + 14 * MINUTE_MS  # 21:14 in Tokyo
    decision, _ = decide(ruleset, state, event("visit", "gil"), evening, explain=True)
    assert [offered.action for offered in decision.actions] == ["banner"]  # the next best
    assert _detail(decision, "news") == (
        "quiet_hours", "email is quiet from 21:00 to 08:00 in Asia/Tokyo, where it is 21:14; "
        "offered again from 08:00",
    )  # fmt: skip
    decision, _ = decide(ruleset, state, event("visit", "gil"), T0_MS)  # 17:00 in Tokyo
    assert [offered.action for offered in decision.actions][:1] == ["news"]
    unknown = state.with_traits({"time_zone": "Mars/Olympus"})  # the default, UTC: 12:14
    decision, _ = decide(ruleset, unknown, event("visit", "gil"), evening)
    assert [offered.action for offered in decision.actions][:1] == ["news"]
