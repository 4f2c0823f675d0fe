"""Rules text → validated `Journey`, or every mistake in the file at once with `file:line:column`.

Reading files is the caller's job (`server.rulesource`); this module only sees text. pydantic finds
mistakes of shape (unknown keys, missing keys, wrong kinds of values); this module turns each into
what is wrong, where, and what to write instead, for a marketer rather than a programmer.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from engine.errors import RuleProblem, RulesError
from engine.rules.check import CONDITION_KEYS, check_journey, nice_duration
from engine.rules.model import DURATION_PATTERN, Condition, Duration, Journey, duration_ms
from engine.rules.yaml_tree import Path, YamlTree, parse_yaml


@dataclass(frozen=True, slots=True)
class LoadedJourney:
    """A journey that passed every check, with what compilation and explanations need."""

    model: Journey
    source: str
    digest: str  # sha256 of the text
    transition_lines: tuple[int, ...]
    name_line: int = 1  # where `journey:` is written, for problems across files


_MAPPING_TYPES = {"dict_type", "model_type", "model_attributes_type"}
_EXPECTED = {
    **dict.fromkeys(("float_type", "float_parsing"), "a number"),
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float"), "a whole number"),
    **dict.fromkeys(("bool_type", "bool_parsing"), "true or false"),
    **dict.fromkeys(_MAPPING_TYPES, "keys and values (`key: value` lines)"),
    "finite_number": "a finite number",
    "string_type": "text",
    "list_type": "a list",
}
_NUMBER_TYPES = {"float_type", "float_parsing", "int_type", "int_parsing", "int_from_float"}
_BOUNDS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}

# Places, for messages: "unknown key `cooldwn` in this action".
_PLACES = {
    "Journey": "the journey (top level)",
    "Stage": "this stage",
    "Segment": "this segment",
    "Counter": "this counter",
    "Friction": "`friction`",
    "Signal": "this friction signal",
    "Transition": "this transition",
    "Action": "this action",
    "Cap": "`cap`",
    "Boost": "this boost",
    "Condition": "this condition",
}

# What to add when a key is missing, with an example a marketer can copy.
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


# -- the model behind a path ---------------------------------------------------------------------


def _unwrap(current: Any, part: int | str) -> Any:
    """Step through Annotated and unions to the type that validates `part`."""
    while True:
        origin, args = typing.get_origin(current), typing.get_args(current)
        if origin is typing.Annotated:
            current = args[0]
        elif origin in (typing.Union, types.UnionType):
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            containers = [a for a in args if typing.get_origin(a) in (list, dict)]
            if models and isinstance(part, str):
                current = models[0]
            else:
                current = containers[0] if containers else None
        else:
            return current


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _model_at(loc: Path) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc` (for key names and descriptions)."""
    current: Any = Journey
    for part in loc:
        current = _unwrap(current, part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = _fields(current).get(str(part))
            current = info.annotation if info else None
        elif typing.get_origin(current) in (list, dict):
            current = typing.get_args(current)[-1]
        else:
            return None
    current = _unwrap(current, "")
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _field_at(path: Path) -> FieldInfo | None:
    model = _model_at(path[:-1])
    return _fields(model).get(str(path[-1])) if model and path else None


def _is_duration_field(path: Path) -> bool:
    info = _field_at(path)
    annotation = info.annotation if info else None
    return annotation == Duration or Duration in typing.get_args(annotation)


def _place(tree: YamlTree, path: Path) -> str:
    model = _model_at(path)
    place = _PLACES.get(model.__name__, "here") if model else "here"
    entry = _value(tree, path)
    if model is not None and model.__name__ == "Action" and isinstance(entry, dict):
        if isinstance(entry.get("id"), str):
            return f"action `{entry['id']}`"
    if model is not None and model.__name__ in ("Segment", "Counter") and path:
        return f"{model.__name__.lower()} `{path[-1]}`"
    return place


def _value(tree: YamlTree, path: Path) -> Any:
    node = tree.data
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    return node


def _data_path(tree: YamlTree, loc: tuple[int | str, ...]) -> Path:
    """The part of pydantic's `loc` that names real keys and indices (union tags dropped)."""
    path: list[str | int] = []
    node = tree.data
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


# -- texts ---------------------------------------------------------------------------------------


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


def _written(tree: YamlTree, path: Path, value: Any) -> str:
    """The value as it is written in the file (`1.10` stays `1.10`)."""
    return tree.text_at.get(path, _shown(value).strip("'"))


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
    shown = f"{number:g}"
    return f"write the number alone, without units or signs: `{key}: {shown}`"


# -- one problem per kind of pydantic error -------------------------------------------------------


def _unknown_key(tree: YamlTree, path: Path) -> RuleProblem:
    key = str(path[-1])
    model = _model_at(path[:-1])
    known = list(_fields(model)) if model else []
    message = f"unknown key `{key}` in {_place(tree, path[:-1])}"
    return tree.problem(path, message, _unknown_key_hint(key, model, known), key=True)


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


def _missing_key(tree: YamlTree, path: Path) -> RuleProblem:
    key = str(path[-1])
    hint = _MISSING_HINTS.get(key, f"add `{key}:`")
    return tree.problem(path[:-1], f"{_place(tree, path[:-1])} is missing `{key}`", hint)


def _empty_value(tree: YamlTree, path: Path, kinds: set[str]) -> RuleProblem:
    key = _key_name(path)
    if kinds & (_MAPPING_TYPES | {"list_type"}):
        hint = f"indent the lines that belong to `{key}:` by two more spaces than `{key}:`"
    else:
        info = _field_at(path)
        optional = info is not None and not info.is_required()
        hint = f"write a value after `{key}:`" + (", or remove the key" if optional else "")
    return tree.problem(path, f"`{key}` has no value", hint, key=path in tree.key_at)


def _range_problem(tree: YamlTree, path: Path, details: list[ErrorDetails]) -> RuleProblem:
    key, value = _key_name(path), details[0]["input"]
    low, high = _bounds(path, details)
    if low and high and low.startswith("at least") and high.startswith("at most"):
        allowed = f"from {low.removeprefix('at least ')} to {high.removeprefix('at most ')}"
    else:
        allowed = " and ".join(bound for bound in (low, high) if bound)
    info = _field_at(path)
    whole = "whole " if info is not None and info.annotation is int else ""
    return tree.problem(
        path,
        f"`{key}` must be {allowed}, found {_shown(value)}",
        f"write a {whole}number {allowed}"
        if allowed.startswith("from")
        else f"write a {whole}number that is {allowed}",
    )


def _bounds(path: Path, details: list[ErrorDetails]) -> tuple[str, str]:
    """The lowest and highest allowed values, in words: from the field, else from the error."""
    found: dict[str, Any] = {}
    info = _field_at(path)
    for item in info.metadata if info else []:
        for name in ("ge", "gt", "le", "lt"):
            if isinstance(getattr(item, name, None), int | float):
                found[name] = getattr(item, name)
    for detail in details:
        found |= {k: v for k, v in detail.get("ctx", {}).items() if k in ("ge", "gt", "le", "lt")}
    low = f"at least {found['ge']:g}" if "ge" in found else ""
    low = f"above {found['gt']:g}" if "gt" in found else low
    high = f"at most {found['le']:g}" if "le" in found else ""
    high = f"below {found['lt']:g}" if "lt" in found else high
    return low, high


def _pattern_problem(tree: YamlTree, path: Path, details: list[ErrorDetails]) -> RuleProblem:
    value, kinds = details[0]["input"], {d["type"] for d in details}
    if "float_parsing" in kinds:  # gt/gte/lt/lte take a number, or a duration with `time:`
        return tree.problem(
            path,
            f"{_shown(value)} is neither a number nor a duration",
            "compare with a number, e.g. `gte: 3`, or, with `time:`, a duration, e.g. `gte: 2d`",
        )
    pattern = next(str(d.get("ctx", {}).get("pattern")) for d in details if "pattern" in d["type"])
    if pattern == DURATION_PATTERN:
        return tree.problem(path, f"{_shown(value)} is not a duration", _duration_suggestion(value))
    return tree.problem(path, f"{_shown(value)} is not a valid name", _name_suggestion(value))


def _type_problem(tree: YamlTree, path: Path, details: list[ErrorDetails]) -> RuleProblem:
    value, kinds = details[0]["input"], {d["type"] for d in details}
    key = _key_name(path)
    expected = " or ".join(
        dict.fromkeys(_EXPECTED[d["type"]] for d in details if d["type"] in _EXPECTED)
    )
    message = f"`{key}` should be {expected}, found {_shown(value)}"
    return tree.problem(path, message, _type_hint(tree, path, kinds, value))


def _type_hint(tree: YamlTree, path: Path, kinds: set[str], value: Any) -> str:
    key = _key_name(path)
    written = _written(tree, path, value)
    if kinds & _MAPPING_TYPES:
        return _mapping_hint(key, path, value)
    if "list_type" in kinds and "string_type" not in kinds:
        return f"write a list: `{key}: [{written}]`"
    if isinstance(value, list) and key in ("eq", "ne"):
        return (
            f"to match any of several values, write `{'in' if key == 'eq' else 'not_in'}:` "
            f"instead of `{key}:`"
        )
    if isinstance(value, list):
        only = f": `{key}: {_written(tree, (*path, 0), value[0])}`" if len(value) == 1 else ""
        return f"write one value here, not a list{only}"
    if kinds & {"bool_type", "bool_parsing"}:
        return f"write `{key}: true` or `{key}: false`"
    if kinds & _NUMBER_TYPES and "string_type" not in kinds:
        return _number_hint(key, value)
    if "string_type" in kinds:
        return f'put it in quotes: `{key}: "{written}"`'
    return f"see rules/README.md for what `{key}` takes"


def _mapping_hint(key: str, path: Path, value: Any) -> str:
    model = _model_at(path)
    if model is Condition:
        if key == "not" and isinstance(value, list):
            return "`not:` takes one condition; to rule out several, write `any:` under `not:`"
        if isinstance(value, list):
            return (
                "a list of conditions needs `all:` (every one holds) or `any:` (one holds) above it"
            )
        return f"write the condition on the lines below `{key}:`, e.g. `event: {value}`"
    required = [k for k, info in _fields(model).items() if info.is_required()] if model else []
    if isinstance(path[-1], int) and required:
        return (
            f"write each entry of `{key}` as `- {required[0]}: …` with its other keys lined "
            "up below it"
        )
    if required:
        keys = " and ".join(f"`{k}:`" for k in required)
        return f"write {keys} on the lines below `{key}:`, indented by two more spaces"
    return f"write `name: value` lines below `{key}:`, indented by two more spaces"


def _empty_list(tree: YamlTree, path: Path) -> RuleProblem:
    key = _key_name(path)
    hint = f"write at least one entry under `{key}:`"
    if key == "stages":
        hint = "list the stages in journey order, one `- id: <name>` line each"
    elif _model_at(path[:-1]) is Condition:
        hint = f"list at least one condition under `{key}:`, or remove `{key}:`"
    return tree.problem(path, f"`{key}` is empty", hint)


def _value_problem(tree: YamlTree, path: Path, details: list[ErrorDetails]) -> RuleProblem:
    kinds = {d["type"] for d in details}
    value = details[0]["input"]
    if value is None:
        return _empty_value(tree, path, kinds)
    if "value_error" in kinds:
        message = str(details[0].get("ctx", {}).get("error"))
        if _model_at(path) is Condition:
            return tree.problem(path, message, "see the conditions in rules/README.md")
        written = f"`{_key_name(path)}: {_written(tree, path, value)}`"
        hint = "write a duration longer than zero, e.g. `30m`"
        return tree.problem(
            path,
            f"{written}: {message}",
            hint
            if _is_duration_field(path)
            else f"see rules/README.md for what `{_key_name(path)}` takes",
        )
    if "literal_error" in kinds:
        expected = str(details[0].get("ctx", {}).get("expected"))
        choices = re.findall(r"'([^']*)'", expected)
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
        hint = f"did you mean `{close[0]}`?" if close else f"write {expected}"
        return tree.problem(
            path, f"`{_key_name(path)}` can be {expected}, not {_shown(value)}", hint
        )
    if kinds & _BOUNDS:
        return _range_problem(tree, path, details)
    if "too_short" in kinds:
        return _empty_list(tree, path)
    if "string_too_long" in kinds:
        return tree.problem(
            path,
            f"{_shown(value)} is longer than 64 characters",
            "write a name of at most 64 characters",
        )
    if any("pattern" in kind for kind in kinds):
        return _pattern_problem(tree, path, details)
    if _is_duration_field(path) and isinstance(value, int | float):
        written = _written(tree, path, value)
        return tree.problem(
            path,
            f"`{_key_name(path)}: {written}` has no unit",
            f"add one: `{written}s`, `{written}m`, `{written}h` or `{written}d`",
        )
    return _type_problem(tree, path, details)


def _problems_from(
    error: ValidationError, tree: YamlTree, *, condition_shapes: bool
) -> list[RuleProblem]:
    """One problem per faulty value. A condition's shape (one subject, one comparison) is left
    to `engine.rules.check` unless `condition_shapes`: it points at the very key at fault."""
    by_path: dict[Path, list[ErrorDetails]] = {}
    for detail in error.errors(include_url=False):
        by_path.setdefault(_data_path(tree, detail["loc"]), []).append(detail)
    problems: list[RuleProblem] = []
    unknown = [path for path, details in by_path.items() if details[0]["type"] == "extra_forbidden"]
    for path, details in by_path.items():
        kinds = {d["type"] for d in details}
        if tree.is_refused(path) or _explained_inside(path, details, by_path):
            continue  # reported where the alias or tag is written, or by the value inside
        if "extra_forbidden" in kinds:
            problems.append(_unknown_key(tree, path))
        elif "missing" in kinds:
            if not _misspelt(path, unknown):
                problems.append(_missing_key(tree, path))
        elif condition_shapes or kinds != {"value_error"} or _model_at(path) is not Condition:
            problems.append(_value_problem(tree, path, details))
    return problems


# -- entry points --------------------------------------------------------------------------------


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


def _not_a_journey(tree: YamlTree) -> RuleProblem:
    example = "see rules/README.md for a complete example"
    if tree.data is None:
        return tree.problem(
            (),
            "this file has no journey in it",
            f"start it with `journey: <name>`, `version:` and `stages:`; {example}",
        )
    if isinstance(tree.data, list):
        return tree.problem(
            (),
            "a journey file is `key: value` lines, not a list",
            "remove the `- ` before `journey:` and the indentation after it",
        )
    return tree.problem(
        (),
        "a journey file is `key: value` lines, starting with `journey: <name>`",
        f"start the file with `journey: <name>`; {example}",
    )


def _once(problems: list[RuleProblem]) -> list[RuleProblem]:
    """Each problem once, even if two checks found the very same mistake at the same place."""
    return list(dict.fromkeys(problems))


def parse_journey(text: str, source: str) -> LoadedJourney:
    """Validate one journey file's text. Raises `RulesError` listing every problem found."""
    tree = parse_yaml(text, source)
    problems = list(tree.problems)
    if not isinstance(tree.data, dict):
        raise RulesError([*problems, _not_a_journey(tree)])
    try:
        journey = Journey.model_validate(tree.data)
    except ValidationError as error:
        problems.extend(_problems_from(error, tree, condition_shapes=False))
        problems.extend(check_journey(tree))
        if not problems:  # a condition rule of the model that check.py does not know yet
            problems = _problems_from(error, tree, condition_shapes=True)
        raise RulesError(_once(problems)) from error
    problems.extend(check_journey(tree))
    if problems:
        raise RulesError(_once(problems))
    return LoadedJourney(
        model=journey,
        source=source,
        digest=hashlib.sha256(text.encode()).hexdigest(),
        transition_lines=tuple(
            tree.position(("transitions", i))[0] for i in range(len(journey.transitions))
        ),
        name_line=tree.position(("journey",))[0],
    )


def parse_journeys(files: list[tuple[str, str]]) -> list[LoadedJourney]:
    """Validate several `(source, text)` files as one ruleset; every file's problems at once."""
    loaded: list[LoadedJourney] = []
    problems: list[RuleProblem] = []
    for source, text in files:
        try:
            loaded.append(parse_journey(text, source))
        except RulesError as error:
            problems.extend(error.problems)
    seen: dict[str, str] = {}
    for journey in loaded:
        first = seen.setdefault(journey.model.journey, journey.source)
        if first != journey.source:
            problems.append(
                RuleProblem(
                    journey.source,
                    journey.name_line,
                    1,
                    f"journey `{journey.model.journey}` is also defined in {first}",
                    "give each journey file its own `journey:` name",
                )
            )
    if problems:
        raise RulesError(problems)
    return loaded
