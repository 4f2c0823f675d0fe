"""The journey `benchmarks.goals_cost` reads the retail goals against: the same file, no goals.

Behaviour only; the costs themselves are measured by the benchmark, never here.
"""

from __future__ import annotations

import pytest

from benchmarks.goals_cost import RETAIL, without_goals
from engine.compile import compile_ruleset
from engine.rules.load import parse_journeys


def test_the_retail_journey_without_goals_is_the_same_journey_less_its_goals() -> None:
    text = RETAIL.read_text(encoding="utf-8")
    (with_goals,) = parse_journeys([("retail.yaml", text)])
    (without,) = parse_journeys([("retail.yaml", without_goals(text))])
    assert with_goals.model.goals and not without.model.goals
    assert without.model.model_dump(exclude={"goals"}) == with_goals.model.model_dump(
        exclude={"goals"}
    )
    (journey,) = compile_ruleset([without]).journeys
    assert journey.goal_names == ()


def test_only_the_goals_block_and_the_comment_above_it_go() -> None:
    text = (
        "journey: j\n# about the goals\ngoals:\n  order:\n\n    window: 7d\n# next\nactions: []\n"
    )
    assert without_goals(text) == "journey: j\n# next\nactions: []\n"


def test_a_journey_without_goals_has_nothing_to_take_out() -> None:
    with pytest.raises(ValueError, match="no `goals:`"):
        without_goals("journey: j\nactions: []\n")
