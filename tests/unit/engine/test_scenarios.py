"""Every marketer scenario in rules/tests/ passes: the same files `journeyman rules test` runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import RuleProblem, RulesError
from engine.rules.schema import scenario_schema_text
from engine.scenarios import parse_scenarios, run_scenario
from server.rules.rulesource import load_ruleset
from tests.rulesets import CHAINED_TIMERS, RULES_DIR

SCENARIO_FILES = sorted((RULES_DIR / "tests").glob("*.yaml"))


def _cases() -> list[tuple[Path, int, str]]:
    cases = []
    for path in SCENARIO_FILES:
        loaded = parse_scenarios(path.read_text(encoding="utf-8"), str(path))
        cases += [(path, i, s.name) for i, s in enumerate(loaded.spec.scenarios)]
    return cases


@pytest.mark.parametrize(("path", "index", "name"), _cases(), ids=lambda v: str(v)[:60])
def test_scenario(path: Path, index: int, name: str) -> None:
    loaded = parse_scenarios(path.read_text(encoding="utf-8"), str(path))
    ruleset = load_ruleset([str(path.parent / rules) for rules in loaded.spec.rules])
    result = run_scenario(loaded, index, ruleset)
    assert result.passed, "\n".join(result.failures)


def test_every_example_journey_has_scenarios() -> None:
    tested = set()
    for path in SCENARIO_FILES:
        tested.update(
            (path.parent / r).resolve()
            for r in parse_scenarios(path.read_text(), str(path)).spec.rules
        )
    assert {p.resolve() for p in RULES_DIR.glob("*.yaml")} <= tested


FAILING = """
rules: [{rules}]
scenarios:
  - name: wrong on purpose
    steps:
      - event: add_to_cart
        expect: {{stage: purchase, actions: [live_chat]}}
"""


def test_a_failing_expectation_says_expected_got_and_which_rule_fired(tmp_path: Path) -> None:
    path = tmp_path / "fail.yaml"
    path.write_text(FAILING.format(rules=RULES_DIR / "retail.yaml"))
    loaded = parse_scenarios(path.read_text(), str(path))
    result = run_scenario(loaded, 0, load_ruleset(loaded.spec.rules))
    assert not result.passed
    stage, actions = result.failures
    assert stage.startswith(f"{path}:6: step 1 (add_to_cart): expected stage 'purchase'")
    assert "got 'consideration'" in stage and "transition `started_comparing`" in stage
    assert "expected actions ['live_chat'], got ['free_shipping', 'welcome_discount']" in actions


WRONG_CONVERSIONS = """
rules: [{rules}]
scenarios:
  - name: wrong on purpose
    customer: ana
    steps:
      - event: page_view
      - event: purchase
        properties: {{amount: 60}}
        expect: {{conversions: {{}}}}
      - event: purchase
        expect: {{conversions: {{welcome_discount: order}}}}
"""


def test_a_wrong_conversion_expectation_names_what_converted(tmp_path: Path) -> None:
    path = tmp_path / "fail.yaml"
    path.write_text(WRONG_CONVERSIONS.format(rules=RULES_DIR / "retail.yaml"))
    loaded = parse_scenarios(path.read_text(), str(path))
    result = run_scenario(loaded, 0, load_ruleset(loaded.spec.rules))
    first, second = result.failures
    assert "step 2 (purchase): expected conversions none, got welcome_discount -> order" in first
    assert "(treated)" in first
    assert "step 3 (purchase): expected conversions welcome_discount -> order, got none" in second


EXPLAINED = """
rules: [{rules}]
scenarios:
  - name: wrong on purpose
    customer: shopper0
    steps:
      - event: product_view
        expect: {{stage: consideration, offers: [welcome_discount]}}
      - event: product_view
        expect: {{transition: started_comparing, offers: [free_shiping]}}
"""


def test_a_failure_says_why_the_transition_did_not_fire_and_why_an_action_was_not_offered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fail.yaml"
    path.write_text(EXPLAINED.format(rules=RULES_DIR / "retail.yaml"))
    loaded = parse_scenarios(path.read_text(), str(path))
    result = run_scenario(loaded, 0, load_ruleset(loaded.spec.rules))
    stage, offers, unknown = result.failures
    assert "expected stage 'consideration'" in stage
    assert "`started_comparing` (line " in stage
    assert "did not fire: none of: counter product_views_7d = 1, needs ≥ 3" in stage
    assert "`welcome_discount` held out: this customer is in its control group" in offers
    assert "names action `free_shiping`, which the rules do not have" in unknown
    assert "did you mean `free_shipping`?" in unknown


def _only_problem(text: str) -> RuleProblem:
    with pytest.raises(RulesError) as error:
        parse_scenarios(text, "s.yaml")
    (problem,) = error.value.problems
    return problem


def test_a_malformed_scenario_file_is_refused_with_its_position() -> None:
    problem = _only_problem("rules: [a.yaml]\nscenarios:\n  - name: x\n    stepz: []\n")
    assert (problem.line, problem.column) == (4, 5)
    assert problem.message == "unknown key `stepz` in this scenario"
    assert problem.hint == "did you mean `steps`?"  # not also "missing `steps`": one mistake


ONE_STEP = """rules: [a.yaml]
scenarios:
  - name: x
    steps:
      - {step}
"""


@pytest.mark.parametrize(
    ("step", "position", "message", "hint"),
    [
        (
            "evnt: page_view",
            (5, 9),
            "unknown key `evnt` in this step",
            "did you mean `event`?",
        ),
        (
            "event: page_view\n        after: 5 minutes",
            (6, 16),
            "'5 minutes' is not a duration",
            "write `5m` (a whole number and a unit: `500ms`, `30s`, `15m`, `2h`, `7d` or `4w`)",
        ),
        (
            "event: page_view\n        after: 5",
            (6, 16),
            "`after: 5` has no unit",
            "add one: `5s`, `5m`, `5h` or `5d`",
        ),
        (
            "event: page_view\n        identify: {tier: gold}",
            (5, 9),
            "this step has both `event:` and `identify:`",
            "split it into two steps, the `identify:` first if the event should see the new traits",
        ),
    ],
    ids=["unknown key", "duration in words", "duration without unit", "event and identify"],
)
def test_a_mistake_in_a_step_is_explained_where_it_is_written(
    step: str, position: tuple[int, int], message: str, hint: str
) -> None:
    problem = _only_problem(ONE_STEP.format(step=step))
    assert ((problem.line, problem.column), problem.message, problem.hint) == (
        position,
        message,
        hint,
    )


def test_a_file_that_is_not_key_value_lines_is_refused_with_what_to_write() -> None:
    problem = _only_problem("- rules: [a.yaml]\n")
    assert (problem.line, problem.column) == (1, 1)
    assert problem.message == "the file should be `key: value` lines, found a list"
    assert problem.hint == "remove the `- ` before the first key and the indentation after it"
    empty = _only_problem("# nothing yet\n")
    assert (empty.message, empty.hint) == (
        "the file is empty",
        "start it with `rules:` and `scenarios:`; see rules/README.md for an example",
    )


def test_the_scenario_schema_is_current_and_every_scenario_file_names_it() -> None:
    schema = RULES_DIR / "tests" / "scenario.schema.json"
    assert schema.read_text() == scenario_schema_text(), "run `make schema` and commit the result"
    for path in SCENARIO_FILES:
        first_line = path.read_text().splitlines()[0]
        assert first_line == "# yaml-language-server: $schema=./scenario.schema.json", path


CHAINED_SCENARIO = """
rules: [chained.yaml]
scenarios:
  - name: the second timer is due the instant the first one fires
    steps:
      - event: page_view
      - advance: 1h
        expect: {stage: lapsed, transition: lapsed}
"""


def test_a_timer_into_a_stage_whose_timer_is_already_due_fires_that_one_too(
    tmp_path: Path,
) -> None:
    (tmp_path / "chained.yaml").write_text(CHAINED_TIMERS)
    path = tmp_path / "chained_test.yaml"
    path.write_text(CHAINED_SCENARIO)
    loaded = parse_scenarios(path.read_text(), str(path))
    result = run_scenario(loaded, 0, load_ruleset([str(tmp_path / "chained.yaml")]))
    assert result.passed, "\n".join(result.failures)
