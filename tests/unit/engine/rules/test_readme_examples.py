"""Every YAML example in `rules/README.md` is valid, so the marketers' guide cannot drift from
the rules language.

A block that starts with `journey:` is loaded as it is. A block of sections (`stages:`,
`actions:`…) is loaded inside a small journey that defines the names the examples use; a block of
condition keys is loaded as an action's `when`. The scenario example is run against
`rules/retail.yaml` and must pass.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from engine.compile import compile_ruleset
from engine.rules.check import CONDITION_KEYS
from engine.rules.load import parse_journey, parse_journeys
from engine.rules.model import Journey
from engine.rules.yaml_tree import read_yaml
from engine.scenarios import parse_scenarios, run_scenario

RULES = Path(__file__).resolve().parents[4] / "rules"
README = RULES / "README.md"
_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.DOTALL | re.MULTILINE)
SECTIONS = {info.alias or name for name, info in Journey.model_fields.items()}

# The names the section and condition examples refer to.
SCAFFOLD: dict[str, Any] = {
    "journey": "readme",
    "version": 1,
    "stages": [{"id": s} for s in ("awareness", "consideration", "purchase", "churn_risk")],
    "segments": {
        "vip": {"when": {"trait": "tier", "in": ["gold", "platinum"]}},
        "newsletter": {"when": {"trait": "email_opt_in", "eq": True}},
    },
    "counters": {
        name: {"when": {"event": event}, "window": "52w", "precision": "4w"}
        for name, event in (("cart_adds_7d", "add_to_cart"), ("purchases_365d", "purchase"))
    },
    "friction": {
        "half_life": "30m",
        "levels": {"low": 0, "medium": 3, "high": 6},
        "signals": [{"id": "payment_error", "when": {"event": "payment_error"}, "weight": 4}],
    },
}


def yaml_blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in _YAML_BLOCK.finditer(text)]


BLOCKS = yaml_blocks()


def _kind(data: Any) -> str:
    if data is None:
        return "comment"
    if not isinstance(data, dict):
        return "unknown"
    if "scenarios" in data:
        return "scenarios"
    if "journey" in data:
        return "journey"
    if set(data) <= SECTIONS:
        return "sections"
    return "condition" if set(data) <= CONDITION_KEYS else "unknown"


def test_the_readme_has_examples_of_every_kind() -> None:
    kinds = {_kind(read_yaml(block, "README.md").data) for _, block in BLOCKS}
    assert {"journey", "sections", "condition", "scenarios"} <= kinds


@pytest.mark.parametrize(("line", "block"), BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_every_yaml_example_in_the_readme_is_valid(line: int, block: str) -> None:
    source = f"rules/README.md (block at line {line})"
    data = read_yaml(block, source).data
    kind = _kind(data)
    assert kind != "unknown", f"{source}: not a journey, sections, a condition or scenarios"
    if kind == "journey":
        parse_journey(block, source)
    elif kind == "sections":
        parse_journey(json.dumps({**SCAFFOLD, **data}), source)
    elif kind == "condition":
        action = {"id": "example", "when": data}
        parse_journey(json.dumps({**SCAFFOLD, "actions": [action]}), source)
    elif kind == "scenarios":
        _run_scenarios(block, source)


def _run_scenarios(block: str, source: str) -> None:
    loaded = parse_scenarios(block, source)
    files = [(RULES / "tests" / name).resolve() for name in loaded.spec.rules]
    ruleset = compile_ruleset(parse_journeys([(str(f), f.read_text()) for f in files]))
    for index in range(len(loaded.spec.scenarios)):
        result = run_scenario(loaded, index, ruleset)
        assert result.passed, "\n".join(result.failures)
