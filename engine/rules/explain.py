"""pydantic's validation errors on a YAML file → what is wrong, where, and what to write instead.

pydantic finds mistakes of shape (unknown keys, missing keys, wrong kinds of values) and says them
for a programmer; this module says each for a marketer, at the `file:line:column` of the value or
key at fault. It serves any model read from a `YamlTree`: journey files and scenario files. Words
for the parts of a journey ("in action `welcome`", how to add a missing `when:`) come from the
journey language; other files get plainer words made from their keys ("in this step").
"""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from engine.errors import RuleProblem
from engine.rules.check import CONDITION_KEYS, nice_duration
from engine.rules.model import (
    CLOCK_TIME_PATTERN,
    DURATION_PATTERN,
    Condition,
    Duration,
    Journey,
    duration_ms,
    fields_by_key,
    model_at,
)
from engine.rules.yaml_tree import Path, YamlTree

_MAPPING_TYPES = {"dict_type", "model_type", "model_attributes_type"}
_DATETIME_TYPES = {"datetime_type", "datetime_parsing", "datetime_from_date_parsing"}
_EXPECTED = {
    **dict.fromkeys(("float_type", "float_parsing"), "a number"),
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float"), "a whole number"),
    **dict.fromkeys(("bool_type", "bool_parsing"), "true or false"),
    **dict.fromkeys(_MAPPING_TYPES, "keys and values (`key: value` lines)"),
    **dict.fromkeys(_DATETIME_TYPES, "a date and time"),
    "finite_number": "a finite number",
    "string_type": "text",
    "list_type": "a list",
}
_NUMBER_TYPES = {"float_type", "float_parsing", "int_type", "int_parsing", "int_from_float"}
_BOUNDS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}

# Places in a journey, for messages: "unknown key `cooldwn` in this action". Models not named here
# are "this" and their name: "this stage", "this condition".
_PLACES = {
    "Journey": "the journey (top level)",
    "Friction": "`friction`",
    "Signal": "this friction signal",
    "Cap": "`cap`",
    "": "here",
}

# What to add when a key of a journey is missing, with an example a marketer can copy.
_MISSING_HINTS = {
    "journey": "add `journey: <name>` as the first key, e.g. `journey: retail`",
    "version": "add `version:` with your label for this revision, e.g. `version: 2026-11-23.1`",
    "stages": "add `stages:` with one `- id: <name>` line per stage, in journey order",
    "id": "add `id:` with a name of lower-case letters, digits and `_`, e.g. `id: free_shipping`",
    "from": 'add `from:` with the stage the customer must be in (a list, or "*" for any stage)',
    "to": "add `to:` with the stage the customer moves to",
    "when": "add `when:` with the condition indented below it, e.g. `event: purchase`",
    "window": "add `window:` with how far back to count, e.g. `window: 7d`",
    "half_life": "add `half_life:`, the time friction takes to fall to half, e.g. `30m`",
    "levels": "add `levels:` with one `name: threshold` line per level, the first at 0",
    "signals": "add `signals:` with at least one `- id:` that has a `when:` and a `weight:`",
    "weight": "add `weight:`, how much friction the signal adds, e.g. `weight: 2`",
    "count": "add `count:`, how many times at most, e.g. `count: 3`",
    "per": "add `per:`, the time window the cap counts in, e.g. `per: 30d`",
    "add": "add `add:`, the points added to the action's score, e.g. `add: 20`",
}


def _spellings(table: dict[str, str]) -> dict[str, str]:
    """{"eq": "equals is"} → {"equals": "eq", "is": "eq"}."""
    return {word: right for right, words in table.items() for word in words.split()}


# Comparison keys people bring from other tools.
_COMPARISON_SYNONYMS = _spellings({
    "eq": "equals equal is == =", "ne": "not_eq != is_not not_equal",
    "gt": "greater_than > more_than", "gte": "at_least >= min", "lt": "less_than <",
    "lte": "at_most <= max", "in": "one_of contains", "not_in": "none_of",
    "exists": "exist present",
})  # fmt: skip
# Units people write in durations.
_DURATION_UNITS = _spellings({
    "ms": "ms msec millisecond milliseconds", "s": "s sec secs second seconds",
    "m": "m min mins minute minutes", "h": "h hr hrs hour hours", "d": "d day days",
    "w": "w wk week weeks",
})  # fmt: skip


def problems_from_validation(
    error: ValidationError, tree: YamlTree, root: type[BaseModel], *, condition_shapes: bool = True
) -> list[RuleProblem]:
    """One problem per faulty value of `tree.data`, which failed `root.model_validate`.

    A condition's shape (one subject, one comparison) is reported only with `condition_shapes`:
    the journey loader leaves it to `engine.rules.check`, which points at the very key at fault.
    """
    return _Explainer(tree, root).problems(error, condition_shapes=condition_shapes)


# -- texts that need no model --------------------------------------------------------------------


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, list | dict):
        text = "a list" if isinstance(value, list) else "keys and values"
    else:
        text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _key_name(path: Path) -> str:
    names = [p for p in path if isinstance(p, str)]
    return names[-1] if names else "value"


def _name_suggestion(value: Any) -> str:
    text = re.sub(r"[^a-z0-9]+", "_", str(value).lower()).strip("_")
    if not text:
        return "write lower-case letters, digits and `_`, starting with a letter"
    if not text[0].isalpha():
        return "start it with a letter; use lower-case letters, digits and `_`"
    return f"use lower-case letters, digits and `_`, starting with a letter: `{text[:64]}`"


def _duration_suggestion(value: Any) -> str:
    units = "a whole number and a unit: `500ms`, `30s`, `15m`, `2h`, `7d` or `4w`"
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$", str(value))
    unit = _DURATION_UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        if match and match.group(2).lower().startswith("mo"):
            return "there is no month unit; write days or weeks, e.g. `30d` or `4w`"
        return f"write {units}"
    ms = float(match.group(1)) * duration_ms(f"1{unit}")
    if not ms.is_integer() or ms <= 0:
        return f"write {units}"
    written = f"{match.group(1)}{unit}" if match.group(1).isdigit() else nice_duration(int(ms))
    return f"write `{written}` ({units})"


def _number_hint(key: str, value: Any) -> str:
    cleaned = re.sub(r"[\s,%€$£_]", "", str(value))
    try:
        number = float(cleaned)
    except ValueError:
        return f"write a number, e.g. `{key}: 10`"
    return f"write the number alone, without units or signs: `{key}: {number:g}`"


def _unknown_key_hint(key: str, model: type[BaseModel] | None, known: list[str]) -> str:
    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
    if model is not Condition and key in CONDITION_KEYS and "when" in known:
        # `segment` in an action may be either mistake; `event` there is surely a condition.
        plural = f", or did you mean `{close[0]}`?" if close and close[0] == f"{key}s" else ""
        return f"`{key}:` is part of a condition: indent it under `when:`{plural}"
    if close:
        return f"did you mean `{close[0]}`?"
    if model is Condition and key.lower() in _COMPARISON_SYNONYMS:
        return f"write `{_COMPARISON_SYNONYMS[key.lower()]}:`"
    if known:
        return "write one of: " + ", ".join(f"`{k}`" for k in known)
    return "remove it"


def _plain_place(path: Path) -> str:
    """A place named after its keys, for files without words of their own: "this step" for an
    item of `steps`, "`expect`" for the mapping under `expect:`."""
    if not path:
        return "the file (top level)"
    if isinstance(path[-1], int) and len(path) > 1:
        items = str(path[-2])
        plural = items.endswith("s") and not items.endswith("ss")
        return f"this {items[:-1]}" if plural else f"this item of `{items}`"
    return f"`{path[-1]}`"


@dataclass(frozen=True, slots=True)
class _Explainer:
    """Explains the errors of one file: `tree` read from it, `root` the model it must fit."""

    tree: YamlTree
    root: type[BaseModel]

    def field_at(self, path: Path) -> FieldInfo | None:
        model = model_at(self.root, path[:-1])
        return fields_by_key(model).get(str(path[-1])) if model and path else None

    def is_duration_field(self, path: Path) -> bool:
        info = self.field_at(path)
        if info is None:
            return False
        # A required `Duration` field keeps its pattern in the field, not in its annotation.
        pattern = any(getattr(item, "pattern", None) == DURATION_PATTERN for item in info.metadata)
        return pattern or Duration in typing.get_args(info.annotation)

    def place(self, path: Path) -> str:
        if self.root is not Journey:
            return _plain_place(path)
        model = model_at(self.root, path)
        name = model.__name__ if model is not None else ""
        entry = self.value(path)
        if name == "Action" and isinstance(entry, dict) and isinstance(entry.get("id"), str):
            return f"action `{entry['id']}`"
        if name in ("Segment", "Counter") and path:
            return f"{name.lower()} `{path[-1]}`"
        return _PLACES.get(name, f"this {name.lower()}")

    def value(self, path: Path) -> Any:
        node = self.tree.data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        return node

    def data_path(self, loc: tuple[int | str, ...]) -> Path:
        """The part of pydantic's `loc` that names real keys and indices (union tags dropped)."""
        path: list[str | int] = []
        node = self.tree.data
        for index, part in enumerate(loc):
            if isinstance(node, dict) and isinstance(part, str) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            elif isinstance(node, dict) and isinstance(part, str) and index == len(loc) - 1:
                path.append(part)  # a missing or unknown key
                break
            else:
                continue  # a union member's tag, such as `list[str]`
            path.append(part)
        return tuple(path)

    def written(self, path: Path, value: Any) -> str:
        """The value as it is written in the file (`1.10` stays `1.10`)."""
        return self.tree.text_at.get(path, _shown(value).strip("'"))

    # -- one problem per kind of pydantic error ---------------------------------------------------

    def problems(self, error: ValidationError, *, condition_shapes: bool) -> list[RuleProblem]:
        by_path: dict[Path, list[ErrorDetails]] = {}
        for detail in error.errors(include_url=False):
            by_path.setdefault(self.data_path(detail["loc"]), []).append(detail)
        problems: list[RuleProblem] = []
        unknown = [path for path, found in by_path.items() if found[0]["type"] == "extra_forbidden"]
        too_deep = {path for path in unknown if self.belongs_above(path)}
        moved = {(*path[:-2], path[-1]) for path in too_deep}
        for path, details in by_path.items():
            kinds = {d["type"] for d in details}
            left_to_check = not condition_shapes and kinds == {"value_error"}
            if self.tree.is_refused(path) or _explained_inside(path, details, by_path):
                continue  # reported where the alias or tag is written, or by the value inside
            if path in too_deep:
                problems.append(self.indented_too_far(path))
            elif "extra_forbidden" in kinds:
                problems.append(self.unknown_key(path))
            elif "missing" in kinds:
                if not _misspelt(path, unknown) and path not in moved:
                    problems.append(self.missing_key(path))
            elif not (left_to_check and model_at(self.root, path) is Condition):
                problems.append(self.value_problem(path, details))
        return problems

    def belongs_above(self, path: Path) -> bool:
        """Whether an unknown key is a key of the mapping two levels up: written one level too
        deep (`window:` indented under a counter's `when:`)."""
        if len(path) < 3 or not isinstance(path[-2], str):
            return False
        above = model_at(self.root, path[:-2])
        return above is not None and str(path[-1]) in fields_by_key(above)

    def indented_too_far(self, path: Path) -> RuleProblem:
        key, under = str(path[-1]), str(path[-2])
        message = (
            f"`{key}` is indented under `{under}:`, so it reads as part of `{under}`; "
            f"it belongs to {self.place(path[:-2])}"
        )
        hint = f"move `{key}:` left, in line with `{under}:`"
        return self.tree.problem(path, message, hint, key=True)

    def unknown_key(self, path: Path) -> RuleProblem:
        key = str(path[-1])
        model = model_at(self.root, path[:-1])
        known = list(fields_by_key(model)) if model else []
        message = f"unknown key `{key}` in {self.place(path[:-1])}"
        return self.tree.problem(path, message, _unknown_key_hint(key, model, known), key=True)

    def missing_key(self, path: Path) -> RuleProblem:
        key = str(path[-1])
        hint = _MISSING_HINTS.get(key) if self.root is Journey else None
        if hint is None:
            info = self.field_at(path)
            hint = f"add `{key}:`" + (f", {info.description}" if info and info.description else "")
        return self.tree.problem(path[:-1], f"{self.place(path[:-1])} is missing `{key}`", hint)

    def value_problem(self, path: Path, details: list[ErrorDetails]) -> RuleProblem:
        kinds = {d["type"] for d in details}
        value = details[0]["input"]
        if not path and not isinstance(value, dict):
            return self.whole_file(value)
        if value is None:
            return self.empty_value(path, kinds)
        if "value_error" in kinds:
            return self.rule_broken(path, details)
        if "literal_error" in kinds:
            expected = str(details[0].get("ctx", {}).get("expected"))
            choices = re.findall(r"'([^']*)'", expected)
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
            hint = f"did you mean `{close[0]}`?" if close else f"write {expected}"
            message = f"`{_key_name(path)}` can be {expected}, not {_shown(value)}"
            return self.tree.problem(path, message, hint)
        if kinds & _BOUNDS:
            return self.range_problem(path, details)
        if "too_short" in kinds:
            return self.empty_list(path)
        if "string_too_long" in kinds:
            message = f"{_shown(value)} is longer than 64 characters"
            return self.tree.problem(path, message, "write a name of at most 64 characters")
        if any("pattern" in kind for kind in kinds):
            return self.pattern_problem(path, details)
        if self.is_duration_field(path) and isinstance(value, int | float):
            return self.not_a_duration(path, value)
        return self.type_problem(path, details)

    def not_a_duration(self, path: Path, value: float) -> RuleProblem:
        """A number (or true/false) where a duration belongs: most often a missing unit."""
        written = self.written(path, value)
        if isinstance(value, bool) or value <= 0 or not float(value).is_integer():
            return self.tree.problem(path, f"{written} is not a duration", _duration_suggestion(""))
        units = f"add one: `{written}s`, `{written}m`, `{written}h` or `{written}d`"
        return self.tree.problem(path, f"`{_key_name(path)}: {written}` has no unit", units)

    def rule_broken(self, path: Path, details: list[ErrorDetails]) -> RuleProblem:
        """A value that a validator of the model refused, with the validator's own words."""
        message, value = str(details[0].get("ctx", {}).get("error")), details[0]["input"]
        if model_at(self.root, path) is Condition:
            return self.tree.problem(path, message, "see the conditions in rules/README.md")
        if isinstance(value, dict):  # the model's rule across its keys: "what; what to write"
            what, _, fix = message.partition("; ")
            hint = fix or f"see rules/README.md for how to write {self.place(path)}"
            return self.tree.problem(path, what, hint)
        key = _key_name(path)
        hint = "write a duration longer than zero, e.g. `30m`"
        if not self.is_duration_field(path):
            hint = f"see rules/README.md for what `{key}` takes"
        return self.tree.problem(path, f"`{key}: {self.written(path, value)}`: {message}", hint)

    def whole_file(self, value: Any) -> RuleProblem:
        """The file is empty, or something other than `key: value` lines."""
        required = [f"`{k}:`" for k, info in fields_by_key(self.root).items() if info.is_required()]
        start = f"start it with {' and '.join(required)}; see rules/README.md for an example"
        if value is None:
            return self.tree.problem((), "the file is empty", start)
        message = f"the file should be `key: value` lines, found {_shown(value)}"
        if isinstance(value, list):
            start = "remove the `- ` before the first key and the indentation after it"
        return self.tree.problem((), message, start)

    def empty_value(self, path: Path, kinds: set[str]) -> RuleProblem:
        key = _key_name(path)
        if kinds & (_MAPPING_TYPES | {"list_type"}):
            hint = f"indent the lines that belong to `{key}:` by two more spaces than `{key}:`"
        else:
            info = self.field_at(path)
            optional = info is not None and not info.is_required()
            hint = f"write a value after `{key}:`" + (", or remove the key" if optional else "")
        key_written = path in self.tree.key_at
        return self.tree.problem(path, f"`{key}` has no value", hint, key=key_written)

    def range_problem(self, path: Path, details: list[ErrorDetails]) -> RuleProblem:
        key, value = _key_name(path), details[0]["input"]
        low, high = self.bounds(path, details)
        if low and high and low.startswith("at least") and high.startswith("at most"):
            allowed = f"from {low.removeprefix('at least ')} to {high.removeprefix('at most ')}"
        else:
            allowed = " and ".join(bound for bound in (low, high) if bound)
        info = self.field_at(path)
        whole = "whole " if info is not None and info.annotation is int else ""
        hint = f"write a {whole}number " + ("" if allowed.startswith("from") else "that is ")
        message = f"`{key}` must be {allowed}, found {_shown(value)}"
        return self.tree.problem(path, message, hint + allowed)

    def bounds(self, path: Path, details: list[ErrorDetails]) -> tuple[str, str]:
        """The lowest and highest allowed values, in words: from the field, else from the error."""
        found: dict[str, Any] = {}
        info = self.field_at(path)
        for item in info.metadata if info else []:
            for name in ("ge", "gt", "le", "lt"):
                if isinstance(getattr(item, name, None), int | float):
                    found[name] = getattr(item, name)
        for detail in details:
            ctx = detail.get("ctx", {})
            found |= {k: v for k, v in ctx.items() if k in ("ge", "gt", "le", "lt")}
        low = f"at least {found['ge']:g}" if "ge" in found else ""
        low = f"above {found['gt']:g}" if "gt" in found else low
        high = f"at most {found['le']:g}" if "le" in found else ""
        high = f"below {found['lt']:g}" if "lt" in found else high
        return low, high

    def pattern_problem(self, path: Path, details: list[ErrorDetails]) -> RuleProblem:
        value, kinds = details[0]["input"], {d["type"] for d in details}
        if "float_parsing" in kinds:  # gt/gte/lt/lte take a number, or a duration with `time:`
            return self.tree.problem(
                path,
                f"{_shown(value)} is neither a number nor a duration",
                "compare with a number, e.g. `gte: 3`, or, with `time:`, a duration, "
                "e.g. `gte: 2d`",
            )
        pattern = next(
            str(d.get("ctx", {}).get("pattern")) for d in details if "pattern" in d["type"]
        )
        if pattern == DURATION_PATTERN:
            message = f"{_shown(value)} is not a duration"
            return self.tree.problem(path, message, _duration_suggestion(value))
        if pattern == CLOCK_TIME_PATTERN:
            message = f"{_shown(value)} is not a time of day"
            hint = 'write hours and minutes on a 24-hour clock, in quotes: "21:00", "08:30"'
            return self.tree.problem(path, message, hint)
        message = f"{_shown(value)} is not a valid name"
        return self.tree.problem(path, message, _name_suggestion(value))

    def type_problem(self, path: Path, details: list[ErrorDetails]) -> RuleProblem:
        value, kinds = details[0]["input"], {d["type"] for d in details}
        expected = " or ".join(
            dict.fromkeys(_EXPECTED[d["type"]] for d in details if d["type"] in _EXPECTED)
        )
        message = f"`{_key_name(path)}` should be {expected}, found {_shown(value)}"
        return self.tree.problem(path, message, self.type_hint(path, kinds, value))

    def type_hint(self, path: Path, kinds: set[str], value: Any) -> str:
        key = _key_name(path)
        written = self.written(path, value)
        if kinds & _MAPPING_TYPES:
            return self.mapping_hint(key, path, value)
        if "list_type" in kinds and "string_type" not in kinds:
            return f"write a list: `{key}: [{written}]`"
        if isinstance(value, list) and key in ("eq", "ne"):
            return (
                f"to match any of several values, write `{'in' if key == 'eq' else 'not_in'}:` "
                f"instead of `{key}:`"
            )
        if isinstance(value, list):
            only = f": `{key}: {self.written((*path, 0), value[0])}`" if len(value) == 1 else ""
            return f"write one value here, not a list{only}"
        if kinds & {"bool_type", "bool_parsing"}:
            return f"write `{key}: true` or `{key}: false`"
        if kinds & _NUMBER_TYPES and "string_type" not in kinds:
            return _number_hint(key, value)
        if "string_type" in kinds:
            return f'put it in quotes: `{key}: "{written}"`'
        if kinds & _DATETIME_TYPES:
            return f"write the date, time and time zone, e.g. `{key}: 2026-01-05T09:00:00Z`"
        return f"see rules/README.md for what `{key}` takes"

    def mapping_hint(self, key: str, path: Path, value: Any) -> str:
        model = model_at(self.root, path)
        if model is Condition:
            if key == "not" and isinstance(value, list):
                return "`not:` takes one condition; to rule out several, write `any:` under `not:`"
            if isinstance(value, list):
                return (
                    "a list of conditions needs `all:` (every one holds) or `any:` (one holds) "
                    "above it"
                )
            return f"write the condition on the lines below `{key}:`, e.g. `event: {value}`"
        required = (
            [k for k, info in fields_by_key(model).items() if info.is_required()] if model else []
        )
        if isinstance(path[-1], int) and required:
            return (
                f"write each entry of `{key}` as `- {required[0]}: …` with its other keys lined "
                "up below it"
            )
        if required:
            keys = " and ".join(f"`{k}:`" for k in required)
            return f"write {keys} on the lines below `{key}:`, indented by two more spaces"
        return f"write `name: value` lines below `{key}:`, indented by two more spaces"

    def empty_list(self, path: Path) -> RuleProblem:
        key = _key_name(path)
        hint = f"write at least one entry under `{key}:`"
        if key == "stages" and self.root is Journey:
            hint = "list the stages in journey order, one `- id: <name>` line each"
        elif model_at(self.root, path[:-1]) is Condition:
            hint = f"list at least one condition under `{key}:`, or remove `{key}:`"
        return self.tree.problem(path, f"`{key}` is empty", hint)


def _explained_inside(
    path: Path, details: list[ErrorDetails], by_path: dict[Path, list[ErrorDetails]]
) -> bool:
    """Whether a list or mapping failed only because of a value inside it, reported there. A
    union such as "a stage or a list of stages" fails as a whole as well; saying "should be
    text" about a list that was allowed would mislead."""
    container = isinstance(details[0]["input"], list | dict)
    deeper = any(other[: len(path)] == path and len(other) > len(path) for other in by_path)
    return container and deeper and {d["type"] for d in details} <= set(_EXPECTED)


def _misspelt(missing: Path, unknown: list[Path]) -> bool:
    """Whether a missing key is written, misspelt, beside it (`Stages:`): one mistake, which the
    unknown key's message already explains."""
    key = str(missing[-1])
    return any(
        path[:-1] == missing[:-1] and difflib.get_close_matches(str(path[-1]).lower(), [key])
        for path in unknown
    )
