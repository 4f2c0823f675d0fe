"""decide(): what a Decision says, and the promises around state and time."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from engine.codec import decode_state, encode_state
from engine.decide import decide, trait_features
from engine.decision import Decision
from engine.kernels import codes
from engine.state import new_state
from tests.rulesets import RULES_DIR, T0_MS, event, from_text, retail

MINUTE_MS = 60_000


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_stage_change_names_the_transition_and_its_line() -> None:
    decision, _ = decide(retail(), new_state(retail()), event("add_to_cart"), T0_MS)
    outcome = decision.outcome
    assert (outcome.previous_stage, outcome.stage) == ("awareness", "consideration")
    assert outcome.changed and outcome.transition == "started_comparing"
    text = (RULES_DIR / "retail.yaml").read_text()
    assert outcome.transition_line == _line_of(text, "- id: started_comparing")


def test_every_decision_names_the_ruleset_version_with_a_content_hash() -> None:
    decision, _ = decide(retail(), new_state(retail()), event("page_view"), T0_MS)
    declared, digest = decision.ruleset_version.split("#")
    assert declared == "retail@2026.11.23"
    # The digest is the documented one: sha256 over the files' sha256s, 12 hex digits.
    file_sha = hashlib.sha256((RULES_DIR / "retail.yaml").read_text().encode()).hexdigest()
    assert digest == hashlib.sha256(file_sha.encode()).hexdigest()[:12]
    changed = (RULES_DIR / "retail.yaml").read_text() + "\n# a comment changes the content\n"
    assert from_text(changed).version.split("#")[1] != digest


def test_actions_carry_score_channel_content_and_a_reason() -> None:
    state = new_state(retail()).with_traits({"tier": "gold"})
    decision, _ = decide(retail(), state, event("add_to_cart", channel="app"), T0_MS)
    shipping, welcome = decision.actions
    assert (shipping.action, shipping.score, shipping.channel) == ("free_shipping", 70.0, "app")
    assert shipping.content == {"banner": "free_shipping"}
    assert "priority 50" in shipping.reason and "segment" not in shipping.reason
    assert welcome.action == "welcome_discount" and welcome.score == 40.0


def test_explain_says_why_every_other_action_was_excluded() -> None:
    decision, _ = decide(retail(), new_state(retail()), event("page_view"), T0_MS, explain=True)
    reasons = {e.action: e.reason for e in decision.excluded}
    assert decision.action_ids == ("welcome_discount",)
    assert reasons == {
        "cart_reminder": "stage",
        "free_shipping": "stage",
        "live_chat": "condition",
        "review_request": "stage",
        "loyalty_invite": "stage",
        "win_back": "stage",
    }
    quiet, _ = decide(retail(), new_state(retail()), event("page_view"), T0_MS)
    assert quiet.excluded == ()


def test_top_k_limits_the_answer_and_the_rest_is_outranked() -> None:
    state = new_state(retail()).with_traits({"tier": "gold"})
    decision, _ = decide(retail(), state, event("add_to_cart"), T0_MS, top_k=1, explain=True)
    assert decision.action_ids == ("free_shipping",)
    assert ("welcome_discount", "rank") in {(e.action, e.reason) for e in decision.excluded}


def test_friction_reports_its_level_score_and_strongest_signals() -> None:
    state = new_state(retail())
    for minute, type_ in enumerate(["payment_error", "rage_click", "payment_error"]):
        decision, state = decide(retail(), state, event(type_), T0_MS + minute * MINUTE_MS)
    outcome = decision.outcome
    assert outcome.friction_level == "high"
    assert [s.signal for s in outcome.top_signals] == ["payment_error", "rage_click"]
    assert outcome.friction_score == pytest.approx(sum(s.score for s in outcome.top_signals))
    assert 9.5 < outcome.friction_score < 10  # 4 + 2 + 4, a little decayed


def test_decide_leaves_the_given_state_untouched() -> None:
    state = new_state(retail())
    before = {n: (j.ints.copy(), j.floats.copy()) for n, j in state.journeys.items()}
    decide(retail(), state, event("add_to_cart"), T0_MS)
    for name, (ints, floats) in before.items():
        np.testing.assert_array_equal(state.journeys[name].ints, ints)
        np.testing.assert_array_equal(state.journeys[name].floats, floats)


def test_a_repeated_event_id_changes_nothing() -> None:
    first, state = decide(retail(), new_state(retail()), event("add_to_cart", event_id="x"), T0_MS)
    again, same = decide(retail(), state, event("purchase", event_id="x"), T0_MS + MINUTE_MS)
    assert again.duplicate and not first.duplicate
    assert same is state
    assert again.stage == first.stage == "consideration" and again.actions == ()


def test_an_event_older_than_the_last_one_is_applied_at_the_last_ones_time() -> None:
    ruleset = retail()
    _, state = decide(ruleset, new_state(ruleset), event("page_view"), T0_MS + 10 * MINUTE_MS)
    _, state = decide(ruleset, state, event("page_view"), T0_MS)  # arrives late
    ints = state.journey(ruleset.journeys[0]).ints
    assert ints[codes.INT_LAST_EVENT_MS] == T0_MS + 10 * MINUTE_MS


def test_a_state_of_another_layout_is_refused_with_what_to_do() -> None:
    other = from_text("journey: retail\nversion: 1\nstages: [{id: one}]\n")
    with pytest.raises(ValueError, match="decode_state"):
        decide(retail(), new_state(other), event("page_view"), T0_MS)


TWO = """
journey: {name}
version: 1
stages: [{{id: start}}, {{id: done}}]
transitions: [{{from: start, to: done, when: {{event: finish}}}}]
actions:
  - {{id: {name}_tip, priority: {priority}}}
"""


def test_several_journeys_each_keep_a_stage_and_rank_their_actions_together() -> None:
    ruleset = from_text(
        TWO.format(name="onboarding", priority=10), TWO.format(name="support", priority=20)
    )
    decision, state = decide(ruleset, new_state(ruleset), event("finish"), T0_MS)
    assert [(o.journey, o.stage) for o in decision.journeys] == [
        ("onboarding", "done"),
        ("support", "done"),
    ]
    assert decision.action_ids == ("support_tip", "onboarding_tip")
    assert [a.journey for a in decision.actions] == ["support", "onboarding"]


def _vip_boosted(decision: Decision) -> bool:
    """Whether free_shipping (priority 50) had the vip segment's boost (+20): a gold tier's."""
    (score,) = [a.score for a in decision.actions if a.action == "free_shipping"]
    return score == 70.0


def test_the_next_decision_reads_the_traits_the_customer_has_now() -> None:
    # decide() keeps the traits as the kernels read them with the state it returns; a trait
    # changed since must not be answered from that kept view.
    basic = new_state(retail()).with_traits({"tier": "basic"})
    _, after = decide(retail(), basic, event("page_view", event_id="a"), T0_MS)
    assert after.trait_view is not None
    now_gold = after.with_traits({"tier": "gold"})
    decision, _ = decide(retail(), now_gold, event("add_to_cart", event_id="b"), T0_MS + MINUTE_MS)
    still_basic, _ = decide(retail(), after, event("add_to_cart", event_id="b"), T0_MS + MINUTE_MS)
    assert _vip_boosted(decision) and not _vip_boosted(still_basic)


def test_a_kept_traits_view_is_used_only_under_the_ruleset_it_was_made_for() -> None:
    gold = new_state(retail()).with_traits({"tier": "gold"})
    _, after = decide(retail(), gold, event("page_view", event_id="a"), T0_MS)
    assert after.trait_view is not None and after.trait_view[0] == retail().version
    kept = trait_features(retail(), {"tier": "gold"})
    for made, expected in zip(after.trait_view[1], kept, strict=True):
        np.testing.assert_array_equal(made, expected)
    # A view of other traits, as if made under another ruleset: ignored. Under this one: read
    # (so the decisions above came from the kept view, not from the traits again).
    wrong = trait_features(retail(), {"tier": "basic"})
    cart = event("add_to_cart", event_id="b")
    elsewhere = replace(after, trait_view=("another@1#000000000000", wrong))
    here = replace(after, trait_view=(retail().version, wrong))
    assert _vip_boosted(decide(retail(), elsewhere, cart, T0_MS + MINUTE_MS)[0])
    assert not _vip_boosted(decide(retail(), here, cart, T0_MS + MINUTE_MS)[0])


def test_the_kept_traits_view_is_neither_stored_nor_compared() -> None:
    _, after = decide(
        retail(), new_state(retail()).with_traits({"tier": "gold"}), event("page_view"), T0_MS
    )
    decoded = decode_state(encode_state(retail(), after), retail())
    assert decoded.trait_view is None and after.trait_view is not None
    assert decoded.traits == after.traits
    assert replace(after, trait_view=None) == after
