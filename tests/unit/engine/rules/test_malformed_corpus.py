"""Every file in `malformed/` is a mistake marketers make; each states the problems it must get.

A corpus file starts with its expectations, one per problem, in comments:

    # expect: 14:5 unknown key `cooldwn`
    #   hint: did you mean `cooldown`?

`expect` gives the line, the column and a part of the message; the optional `hint` line below it a
part of the hint. Every problem of a file must be expected (all are reported at once), and every
problem must come with a hint: a message says what is wrong, where, and what to write instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.errors import RuleProblem, RulesError
from engine.rules.load import parse_journey, parse_journeys
from engine.rules.yaml_tree import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES

CORPUS = Path(__file__).parent / "malformed"
RULES = Path(__file__).resolve().parents[4] / "rules"
_EXPECT = re.compile(r"^# expect: (\d+):(\d+) (.+)$")
_HINT = re.compile(r"^#\s+hint: (.+)$")


@dataclass
class Expected:
    line: int
    column: int
    message: str
    hint: str = ""

    def matches(self, problem: RuleProblem) -> bool:
        return (
            (problem.line, problem.column) == (self.line, self.column)
            and self.message in problem.message
            and self.hint in problem.hint
        )


def expectations(text: str) -> list[Expected]:
    """The `# expect:` and `#   hint:` lines at the top of a corpus file."""
    expected: list[Expected] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if found := _EXPECT.match(line):
            expected.append(Expected(int(found[1]), int(found[2]), found[3]))
        elif (found := _HINT.match(line)) and expected:
            expected[-1].hint = found[1]
    return expected


def problems_of(text: str, source: str) -> list[RuleProblem]:
    with pytest.raises(RulesError) as caught:
        parse_journey(text, source)
    return caught.value.problems


def _describe(problems: list[RuleProblem]) -> str:
    return "\n".join(f"  {p.line}:{p.column} {p.message}\n      hint: {p.hint}" for p in problems)


CORPUS_FILES = sorted(CORPUS.glob("*.yaml"))


def test_the_corpus_covers_at_least_thirty_mistakes() -> None:
    assert len(CORPUS_FILES) >= 30


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.stem)
def test_each_malformed_file_reports_exactly_its_expected_problems(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    expected = expectations(text)
    assert expected, f"{path.name} states no `# expect:` line"
    problems = problems_of(text, path.name)
    unmatched = list(problems)
    for want in expected:
        found = next((p for p in unmatched if want.matches(p)), None)
        assert found is not None, (
            f"{path.name}: no problem matches {want}; got\n{_describe(problems)}"
        )
        unmatched.remove(found)
    assert not unmatched, f"{path.name}: unexpected problems\n{_describe(unmatched)}"


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.stem)
def test_every_problem_names_its_file_and_has_a_fix(path: Path) -> None:
    for problem in problems_of(path.read_text(encoding="utf-8"), path.name):
        assert problem.path == path.name
        assert problem.hint, f"{path.name}:{problem.line}:{problem.column} has no hint"
        assert str(problem).startswith(f"{path.name}:{problem.line}:{problem.column}: ")


def test_the_example_journeys_load() -> None:
    files = sorted(RULES.glob("*.yaml"))
    loaded = parse_journeys([(str(p), p.read_text(encoding="utf-8")) for p in files])
    assert "retail" in {journey.model.journey for journey in loaded}


def test_a_file_over_the_size_limit_is_refused_before_parsing() -> None:
    text = "journey: shop\n" + "# padding\n" * (MAX_FILE_BYTES // 10)
    [problem] = problems_of(text, "huge.yaml")
    assert (problem.line, problem.column) == (1, 1)
    assert "rules files are limited to" in problem.message
    assert "split the journey" in problem.hint


def _journey_with(action_lines: str) -> str:
    return (
        f"journey: shop\nversion: 1\nstages:\n  - id: browsing\nactions:\n  - id: a\n{action_lines}"
    )


def test_deep_flow_nesting_is_refused_before_the_parser_slows_down() -> None:
    depth = 100_000  # beyond Python's recursion limit; the YAML parser alone would take minutes
    text = _journey_with(f"    content: {'[' * depth}{']' * depth}\n")
    [problem] = problems_of(text, "deep.yaml")
    assert (problem.line, problem.column) == (7, len("    content: ") + MAX_DEPTH + 1)
    assert f"nest deeper than {MAX_DEPTH} levels" in problem.message
    assert "flatten" in problem.hint


def test_deep_block_nesting_is_one_problem_and_no_recursion_error() -> None:
    levels = 700  # one more space per level keeps the file under the size limit
    keys = "".join(f"{' ' * (6 + i)}k{i}:\n" for i in range(levels))
    [problem] = problems_of(_journey_with(f"    content:\n{keys}"), "deep.yaml")
    assert f"nest deeper than {MAX_DEPTH} levels" in problem.message


def _negated(times: int) -> str:
    condition = "{event: purchase}"
    for _ in range(times):
        condition = f"{{not: {condition}}}"
    return _journey_with(f"    when: {condition}\n")


def test_the_nesting_limit_is_exact() -> None:
    # the journey, `actions`, the action and `when` hold three levels; each `not` adds one
    within = MAX_DEPTH - 4
    assert parse_journey(_negated(within), "nested.yaml").model.actions[0].when is not None
    [problem] = problems_of(_negated(within + 1), "nested.yaml")
    assert f"nest deeper than {MAX_DEPTH} levels" in problem.message


def test_a_file_with_too_many_values_is_refused() -> None:
    values = ", ".join(["1"] * (MAX_NODES + 1))
    [problem] = problems_of(_journey_with(f"    content: {{x: [{values}]}}\n"), "many.yaml")
    assert f"more than {MAX_NODES:,} values" in problem.message


def test_the_same_journey_in_two_files_points_at_the_second_name() -> None:
    text = "# a copy\njourney: shop\nversion: 1\nstages:\n  - id: browsing\n"
    with pytest.raises(RulesError) as caught:
        parse_journeys([("a.yaml", text), ("b.yaml", text)])
    [problem] = caught.value.problems
    assert (problem.path, problem.line) == ("b.yaml", 2)
    assert "journey `shop` is also defined in a.yaml" in problem.message


def test_problems_of_several_files_are_reported_together() -> None:
    files = [(p.name, p.read_text(encoding="utf-8")) for p in CORPUS_FILES[:3]]
    with pytest.raises(RulesError) as caught:
        parse_journeys(files)
    assert {problem.path for problem in caught.value.problems} == {name for name, _ in files}
