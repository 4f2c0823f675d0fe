"""Adaptive arbitration: an adaptive action's score is multiplied by a draw from its learned
posterior (Thompson sampling), reproducibly per event, without touching holdouts.

The truth the kernels are held to is computed here independently: how often one Beta draw
beats another, by numpy's own sampler."""

from __future__ import annotations

import numpy as np
import pytest

from engine.compile import CompiledJourney, Ruleset
from engine.decide import decide
from engine.errors import RulesError
from engine.event import Event
from engine.propensity import propensity_table
from engine.state import new_state
from tests.rulesets import T0_MS, from_text

JOURNEY = """
journey: shop
version: 1
top_k: {top_k}
arbitration: {arbitration}
stages:
  - id: browsing
  - id: buying
goals:
  click:
    when:
      response: click
    window: 1d
actions:
  - id: banner_a
    priority: 10
    holdout: {holdout}
  - id: banner_b
    priority: 10
"""


def _ruleset(arbitration: str = "adaptive", top_k: int = 1, holdout: float = 0) -> Ruleset:
    return from_text(JOURNEY.format(arbitration=arbitration, top_k=top_k, holdout=holdout))


def _learned(journey: CompiledJourney, a: tuple[int, int], b: tuple[int, int]) -> np.ndarray:
    """Banner a and b exposed and converted (exposed, converted) in stage browsing."""
    return propensity_table(journey, {("banner_a", "browsing"): a, ("banner_b", "browsing"): b})


def _first_choices(ruleset: Ruleset, learned: np.ndarray | None, n: int) -> list[str]:
    propensities = None if learned is None else {"shop": learned}
    state = new_state(ruleset)
    firsts = []
    for i in range(n):
        event = Event(f"e{i}", f"c{i}", "page_view")
        decision, _ = decide(ruleset, state, event, T0_MS, propensities=propensities)
        firsts.append((decision.action_ids + decision.held_out)[0])
    return firsts


def _p_first_beats_second(a: tuple[int, int], b: tuple[int, int]) -> float:
    """P(Beta(1 + conv_a, 1 + rest_a) > Beta(1 + conv_b, 1 + rest_b)), by numpy, 200,000 draws."""
    rng = np.random.default_rng(0)
    draws_a = rng.beta(1 + a[1], 1 + a[0] - a[1], 200_000)
    draws_b = rng.beta(1 + b[1], 1 + b[0] - b[1], 200_000)
    return float(np.mean(draws_a > draws_b))


@pytest.mark.parametrize(
    ("a", "b"),
    [((1000, 900), (1000, 100)), ((10, 6), (10, 4)), ((0, 0), (0, 0)), ((50, 5), (4, 1))],
)
def test_the_first_choice_follows_the_posteriors(a: tuple[int, int], b: tuple[int, int]) -> None:
    ruleset = _ruleset()
    firsts = _first_choices(ruleset, _learned(ruleset.journeys[0], a, b), 3_000)
    share_a = firsts.count("banner_a") / len(firsts)
    # 3,000 independent events: a binomial share's standard deviation is at most 0.9 points.
    assert share_a == pytest.approx(_p_first_beats_second(a, b), abs=0.035)


def test_an_event_is_decided_the_same_way_every_time() -> None:
    ruleset = _ruleset(top_k=2)
    learned = {"shop": _learned(ruleset.journeys[0], (10, 5), (10, 5))}
    event = Event("same-id", "ann", "page_view")
    first, _ = decide(ruleset, new_state(ruleset), event, T0_MS, propensities=learned)
    again, _ = decide(ruleset, new_state(ruleset), event, T0_MS, propensities=learned)
    assert [(a.action, a.score) for a in first.actions] == [
        (a.action, a.score) for a in again.actions
    ]
    orders = {tuple(_first_choices(ruleset, learned["shop"], 40))}
    assert len(set(next(iter(orders)))) == 2  # different events do explore both


def test_priority_arbitration_ignores_what_was_learned() -> None:
    ruleset = _ruleset(arbitration="priority")
    learned = _learned(ruleset.journeys[0], (1000, 0), (1000, 1000))
    assert set(_first_choices(ruleset, learned, 200)) == {"banner_a"}  # file order breaks ties


def test_holdouts_are_drawn_as_without_adaptive_arbitration() -> None:
    adaptive, fixed = _ruleset(holdout=50, top_k=2), _ruleset("priority", holdout=50, top_k=2)
    learned = {"shop": _learned(adaptive.journeys[0], (100, 10), (100, 90))}
    for i in range(300):
        event = Event(f"e{i}", f"c{i}", "page_view")
        with_learning, _ = decide(adaptive, new_state(adaptive), event, T0_MS, propensities=learned)
        without, _ = decide(fixed, new_state(fixed), event, T0_MS)
        assert with_learning.held_out == without.held_out


def test_a_table_of_the_wrong_shape_is_refused() -> None:
    ruleset = _ruleset()
    with pytest.raises(ValueError, match="propensity table of journey 'shop'"):
        decide(ruleset, new_state(ruleset), Event("e", "c", "page_view"), T0_MS,
               propensities={"shop": np.zeros((3, 2, 2))})  # fmt: skip


def test_adaptive_arbitration_without_a_goal_is_refused_with_a_fix() -> None:
    text = JOURNEY.format(arbitration="adaptive", top_k=1, holdout=0)
    text = text.split("goals:")[0] + "actions:" + text.split("actions:")[1]
    with pytest.raises(RulesError) as raised:
        from_text(text)
    (problem,) = raised.value.problems
    assert "has no `goals:`" in problem.message and "arbitration: priority" in problem.hint


def test_an_unknown_adaptive_goal_is_refused_with_a_suggestion() -> None:
    text = JOURNEY.format(arbitration="adaptive", top_k=1, holdout=0)
    with pytest.raises(RulesError) as raised:
        from_text(
            text.replace("arbitration: adaptive", "arbitration: adaptive\nadaptive_goal: clik")
        )
    (problem,) = raised.value.problems
    assert "unknown goal `clik`" in problem.message and "click" in problem.hint
