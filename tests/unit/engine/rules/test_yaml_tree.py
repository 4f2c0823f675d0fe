"""Safe YAML reading: plain data, positions, and refusals (the corpus covers the messages)."""

from __future__ import annotations

import pytest

from engine.errors import RulesError
from engine.rules.yaml_tree import MAX_DEPTH, parse_yaml, read_yaml


def test_plain_scalars_follow_yaml_1_2() -> None:
    tree = read_yaml("a: yes\nb: 1.10\nc: '1'\nd: ~\ne: true\nf: 007\n", "t.yaml")
    assert tree.data == {"a": "yes", "b": 1.1, "c": "1", "d": None, "e": True, "f": 7}
    assert tree.text_at[("b",)] == "1.10"  # as written, for hints such as `version: "1.10"`
    assert ("c",) in tree.quoted and ("a",) not in tree.quoted


def test_every_key_and_value_has_its_line_and_column() -> None:
    tree = read_yaml("stages:\n  - id: browsing\n    label: Browsing\n", "t.yaml")
    assert tree.key_at[("stages",)] == (1, 1)
    assert tree.value_at[("stages", 0)] == (2, 5)
    assert tree.key_at[("stages", 0, "label")] == (3, 5)
    assert tree.value_at[("stages", 0, "label")] == (3, 12)
    assert tree.position(("stages", 0, "missing")) == (2, 5)  # the nearest enclosing value


@pytest.mark.parametrize(
    "text",
    ["a: &x 1\nb: *x\n", "a: !!str 1\n", "a: 1\na: 2\n", "a: 1\n---\nb: 2\n"],
    ids=["anchor", "tag", "duplicate key", "two documents"],
)
def test_read_yaml_raises_for_unsafe_yaml(text: str) -> None:
    with pytest.raises(RulesError):
        read_yaml(text, "t.yaml")


def test_parse_yaml_keeps_refusals_so_other_mistakes_are_reported_with_them() -> None:
    tree = parse_yaml("a: &x 1\nb: *x\n", "t.yaml")
    assert [(p.line, p.column) for p in tree.problems] == [(1, 4), (2, 4)]
    assert tree.is_refused(("b",)) and tree.is_refused(("b", "inside"))
    assert not tree.is_refused(("c",))


def test_brackets_in_quotes_and_comments_do_not_count_as_nesting() -> None:
    brackets = "[" * (MAX_DEPTH + 5)
    text = f"a: '{brackets}'\nb: \"{brackets}\"\n# {brackets}\nc: 'it''s {brackets}'\n"
    assert read_yaml(text, "t.yaml").data["a"] == brackets


def test_a_control_character_is_a_rules_problem_not_a_crash() -> None:
    """Found by tests/fuzz/fuzz_rules.py: ruamel's ReaderError escaped the loader."""
    from engine.errors import RulesError
    from engine.rules.yaml_tree import read_yaml

    with pytest.raises(RulesError) as error:
        read_yaml("journey: x\nversion: 1\x00\n", "f.yaml")
    (problem,) = error.value.problems
    assert (problem.line, problem.column) == (2, 11)
    assert "control character (code 0x00)" in problem.message and problem.hint
