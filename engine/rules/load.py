"""Rules text → validated `Journey`, or every mistake in the file at once with `file:line:column`.

Reading files is the caller's job (`server.rulesource`); this module only sees text.
"""

from __future__ import annotations

import difflib
import hashlib
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from engine.errors import RuleProblem, RulesError
from engine.rules.check import check_journey
from engine.rules.model import Journey
from engine.rules.yaml_tree import Path, YamlTree, read_yaml


@dataclass(frozen=True, slots=True)
class LoadedJourney:
    """A journey that passed every check, with what compilation and explanations need."""

    model: Journey
    source: str
    digest: str  # sha256 of the text
    transition_lines: tuple[int, ...]


_EXPECTED = {
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "list_type": "a list (one `- item` per line)",
    "dict_type": "keys and values (`key: value` lines)",
    "model_type": "keys and values (`key: value` lines)",
    "model_attributes_type": "keys and values (`key: value` lines)",
}


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validated the mapping at `loc` (for suggesting key names)."""
    current: Any = Journey
    for part in loc:
        while True:
            origin = typing.get_origin(current)
            args = typing.get_args(current)
            if origin is typing.Annotated:
                current = args[0]
            elif origin in (typing.Union, types.UnionType):
                models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
                lists = [a for a in args if typing.get_origin(a) is list]
                current = models[0] if models and isinstance(part, str) else (lists or [None])[0]
            else:
                break
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {info.alias or name: info.annotation for name, info in current.model_fields.items()}
            current = fields.get(str(part))
        elif typing.get_origin(current) in (list, dict):
            current = typing.get_args(current)[-1]
        else:
            return None
    while typing.get_origin(current) in (typing.Union, types.UnionType, typing.Annotated):
        models = [a for a in typing.get_args(current) if isinstance(a, type)]
        current = next((m for m in models if issubclass(m, BaseModel)), None)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


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


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _unknown_key(tree: YamlTree, path: Path) -> RuleProblem:
    key = str(path[-1])
    model = _model_at(path[:-1])
    known = _field_names(model) if model else []
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean `{close[0]}`?"
    elif known:
        hint = "write one of: " + ", ".join(f"`{k}`" for k in known)
    else:
        hint = "remove it"
    return tree.problem(path, f"unknown key `{key}`", hint, key=True)


def _missing_key(tree: YamlTree, path: Path) -> RuleProblem:
    key = str(path[-1])
    model = _model_at(path[:-1])
    description = ""
    if model is not None:
        info = {i.alias or n: i for n, i in model.model_fields.items()}.get(key)
        description = f" ({info.description})" if info and info.description else ""
    where = f"`{path[-2]}`" if len(path) >= 2 and isinstance(path[-2], str) else "this entry"
    return tree.problem(path[:-1], f"{where} is missing `{key}`{description}", f"add `{key}: …`")


def _value_problem(tree: YamlTree, path: Path, errors: list[ErrorDetails]) -> RuleProblem:
    value = errors[0]["input"]
    if errors[0]["type"] == "value_error":
        return tree.problem(path, str(errors[0]["ctx"]["error"]))
    if any(e["type"] == "string_pattern_mismatch" for e in errors):
        pattern = next(e["ctx"]["pattern"] for e in errors if e["type"] == "string_pattern_mismatch")
        if "ms|s|m|h|d|w" in str(pattern):
            return tree.problem(
                path, f"{_shown(value)} is not a duration",
                "write a number and a unit: `500ms`, `30s`, `15m`, `2h`, `7d` or `4w`",
            )  # fmt: skip
        suggestion = "_".join(str(value).lower().split())
        return tree.problem(
            path, f"{_shown(value)} is not a valid name",
            f"use lower-case letters, digits and `_`, starting with a letter, e.g. `{suggestion}`",
        )  # fmt: skip
    expected = [_EXPECTED[e["type"]] for e in errors if e["type"] in _EXPECTED]
    if expected:
        wanted = " or ".join(dict.fromkeys(expected))
        return tree.problem(path, f"expected {wanted}, found {_shown(value)}")
    return tree.problem(path, f"{_shown(value)}: {errors[0]['msg'][0].lower()}{errors[0]['msg'][1:]}")


def _problems_from(error: ValidationError, tree: YamlTree) -> list[RuleProblem]:
    by_path: dict[Path, list[ErrorDetails]] = {}
    for detail in error.errors(include_url=False):
        by_path.setdefault(_data_path(tree, detail["loc"]), []).append(detail)
    problems = []
    for path, details in by_path.items():
        kinds = {d["type"] for d in details}
        if "extra_forbidden" in kinds:
            problems.append(_unknown_key(tree, path))
        elif "missing" in kinds:
            problems.append(_missing_key(tree, path))
        else:
            problems.append(_value_problem(tree, path, details))
    return problems


def parse_journey(text: str, source: str) -> LoadedJourney:
    """Validate one journey file's text. Raises `RulesError` listing every problem found."""
    tree = read_yaml(text, source)
    if not isinstance(tree.data, dict):
        raise RulesError([tree.problem((), "a journey file starts with `journey: <name>`",
                                       "see rules/README.md for a complete example")])  # fmt: skip
    try:
        journey = Journey.model_validate(tree.data)
    except ValidationError as error:
        raise RulesError(_problems_from(error, tree)) from error
    problems = check_journey(journey, tree)
    if problems:
        raise RulesError(problems)
    return LoadedJourney(
        model=journey,
        source=source,
        digest=hashlib.sha256(text.encode()).hexdigest(),
        transition_lines=tuple(
            tree.position(("transitions", i))[0] for i in range(len(journey.transitions))
        ),
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
            problems.append(RuleProblem(
                journey.source, 1, 1, f"journey `{journey.model.journey}` is also defined in {first}",
                "give each journey file its own `journey:` name",
            ))  # fmt: skip
    if problems:
        raise RulesError(problems)
    return loaded
