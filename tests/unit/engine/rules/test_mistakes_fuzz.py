"""Random mistakes in a real journey: the loader reports them, it never crashes on them.

Hypothesis edits `rules/retail.yaml` (replaces values with values of other kinds, deletes keys,
misspells them) and the result must either load or raise `RulesError` whose every problem has a
position inside the file, a message and a hint. The corpus in `malformed/` pins exact wording;
this test covers the combinations nobody thought to write down.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import RulesError
from engine.rules.load import parse_journey
from engine.rules.yaml_tree import read_yaml

RETAIL = Path(__file__).resolve().parents[4] / "rules" / "retail.yaml"
Json = Any
Location = tuple[str | int, ...]


def _locations(node: Json, here: Location = ()) -> list[Location]:
    found = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _locations(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _locations(value, (*here, index))
    return found


RETAIL_DATA = read_yaml(RETAIL.read_text(encoding="utf-8"), str(RETAIL)).data
LOCATIONS = [loc for loc in _locations(RETAIL_DATA) if loc]

# Values marketers (or their copy and paste) put where something else belonged.
_WORDS = ("considration", "7 days", "gold", "*", "1,000", "10%", "yes", "high", "Browsing", "2d")
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-10, 500)
    | st.floats(-1e6, 1e6, allow_nan=False)
    | st.sampled_from(_WORDS)
    | st.text("abcz_: *-[]{}'\"", max_size=8)
)
VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(("event", "gte", "trait", "when", "id", "xx")), inner)
    ),
    max_leaves=6,
)
EDITS = st.tuples(st.sampled_from(("replace", "delete", "misspell")), st.sampled_from(LOCATIONS))


def _apply(data: Json, kind: str, location: Location, value: Json) -> None:
    parent = data
    for part in location[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return  # an earlier edit removed the way there
    last = location[-1]
    if isinstance(parent, dict) and last in parent:
        if kind == "delete":
            del parent[last]
        elif kind == "misspell" and isinstance(last, str):
            parent[last[:-1] + "x"] = parent.pop(last)
        else:
            parent[last] = value
    elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        parent[last] = value


@settings(max_examples=300, deadline=None)
@given(edits=st.lists(st.tuples(EDITS, VALUES), min_size=1, max_size=4))
def test_any_mistake_is_reported_with_a_position_and_a_fix(
    edits: list[tuple[tuple[str, Location], Json]],
) -> None:
    data = copy.deepcopy(RETAIL_DATA)
    for (kind, location), value in edits:
        _apply(data, kind, location, value)
    text = json.dumps(data, indent=2)  # JSON is YAML
    n_lines = text.count("\n") + 1
    try:
        parse_journey(text, "edited.json")
    except RulesError as error:
        assert error.problems
        for problem in error.problems:
            assert 1 <= problem.line <= n_lines and problem.column >= 1, problem
            assert problem.message and problem.hint, problem


RETAIL_TEXT = RETAIL.read_text(encoding="utf-8")
TYPING_SLIPS = st.sampled_from(
    ("\t", ":", " ", "  ", "'", '"', "[", "]", "{", "-", "*", "&", "#", "\n")
)


@settings(max_examples=300, deadline=None)
@given(
    slips=st.lists(
        st.tuples(st.integers(0, len(RETAIL_TEXT) - 1), st.integers(0, 3), TYPING_SLIPS),
        min_size=1,
        max_size=3,
    )
)
def test_any_typing_slip_is_reported_with_a_position_and_a_fix(
    slips: list[tuple[int, int, str]],
) -> None:
    text = RETAIL_TEXT
    for at, deleted, typed in slips:  # replace `deleted` characters at `at` with `typed`
        text = text[:at] + typed + text[at + deleted :]
    try:
        parse_journey(text, "typed.yaml")
    except RulesError as error:
        assert error.problems
        for problem in error.problems:
            assert 1 <= problem.line <= text.count("\n") + 1 and problem.column >= 1, problem
            assert problem.message and problem.hint, problem
