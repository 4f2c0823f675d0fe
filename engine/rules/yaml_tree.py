"""Safe YAML → plain Python data, with the line and column of every key and value.

The tree is built from the parser's events rather than by a YAML constructor, so nothing in a rules
file can create objects or run code: tags, anchors and aliases are refused, as are files and trees
too large to be written by hand. Plain scalars resolve by the YAML 1.2 core schema (`yes` stays text).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from engine.errors import RuleProblem, RulesError

MAX_FILE_BYTES = 512 * 1024
MAX_DEPTH = 24
MAX_NODES = 50_000

Path = tuple[str | int, ...]
Position = tuple[int, int]

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")


@dataclass
class YamlTree:
    """Plain data and, for every path into it, where its value (and key) start, 1-based."""

    data: Any
    source: str
    value_at: dict[Path, Position] = field(default_factory=dict)
    key_at: dict[Path, Position] = field(default_factory=dict)

    def position(self, path: Path, *, key: bool = False) -> Position:
        """The position of `path`, or of its nearest enclosing node that has one."""
        while path:
            found = (self.key_at if key else self.value_at).get(path)
            if found is not None:
                return found
            path, key = path[:-1], False
        return self.value_at.get((), (1, 1))

    def problem(self, path: Path, message: str, hint: str = "", *, key: bool = False) -> RuleProblem:
        line, column = self.position(path, key=key)
        return RuleProblem(self.source, line, column, message, hint)


def _resolve_plain(text: str) -> Any:
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


class _Builder:
    def __init__(self, tree: YamlTree) -> None:
        self.tree = tree
        self.problems: list[RuleProblem] = []
        self.nodes = 0

    def _refuse(self, event: Event, message: str, hint: str) -> None:
        mark = event.start_mark
        self.problems.append(RuleProblem(self.tree.source, mark.line + 1, mark.column + 1, message, hint))

    def _check(self, event: Event, depth: int) -> None:
        if getattr(event, "anchor", None) is not None or isinstance(event, AliasEvent):
            self._refuse(
                event,
                "anchors (`&name`) and aliases (`*name`) are not allowed in rules files",
                "write the value out in full where it is used",
            )
        tag = getattr(event, "tag", None)
        if tag is not None:
            self._refuse(
                event,
                f"YAML tags such as `{tag}` are not allowed in rules files",
                "remove the tag; write plain values: text, numbers, true/false, lists and keys",
            )
        if depth > MAX_DEPTH:
            self._refuse(
                event,
                f"the rules nest deeper than {MAX_DEPTH} levels",
                "flatten the condition: list its parts under one `all:` or `any:`",
            )

    def value(self, events: Iterator[Event], event: Event, path: Path, depth: int) -> Any:
        self.nodes += 1
        self._check(event, depth)
        mark = event.start_mark
        self.tree.value_at[path] = (mark.line + 1, mark.column + 1)
        if isinstance(event, ScalarEvent):
            plain = event.style is None and (event.implicit is None or event.implicit[0])
            return _resolve_plain(event.value) if plain else event.value
        if isinstance(event, SequenceStartEvent):
            items: list[Any] = []
            for item in events:
                if isinstance(item, SequenceEndEvent):
                    return items
                items.append(self.value(events, item, (*path, len(items)), depth + 1))
            return items
        if isinstance(event, MappingStartEvent):
            return self._mapping(events, path, depth)
        return None  # an alias: already refused

    def _mapping(self, events: Iterator[Event], path: Path, depth: int) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        for key_event in events:
            if isinstance(key_event, MappingEndEvent):
                return mapping
            key = str(self.value(events, key_event, (*path, "\0key"), depth + 1))
            key_position = self.tree.value_at.pop((*path, "\0key"))
            if key in mapping:
                self._refuse(
                    key_event,
                    f"`{key}` is written twice in the same place",
                    "keep one of them; the second would silently replace the first",
                )
            self.tree.key_at[(*path, key)] = key_position
            mapping[key] = self.value(events, next(events), (*path, key), depth + 1)
        return mapping


def read_yaml(text: str, source: str) -> YamlTree:
    """Parse one rules document. Raises `RulesError` for unsafe or unreadable YAML."""
    tree = YamlTree(data=None, source=source)
    size = len(text.encode())
    if size > MAX_FILE_BYTES:
        problem = RuleProblem(
            source, 1, 1, f"the file is {size:,} bytes; rules files are limited to {MAX_FILE_BYTES:,}",
            "split the journey into several files, one journey each",
        )  # fmt: skip
        raise RulesError([problem])
    builder = _Builder(tree)
    documents = 0
    try:
        events = iter(YAML(typ="safe", pure=True).parse(text))
        for event in events:
            if isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    builder._refuse(event, "a rules file holds one journey (one YAML document)",
                                    "move the second journey (after `---`) to a file of its own")  # fmt: skip
                    break
            elif isinstance(event, ScalarEvent | SequenceStartEvent | MappingStartEvent | AliasEvent):
                tree.data = builder.value(events, event, (), 0)
            if builder.nodes > MAX_NODES:
                builder._refuse(event, f"the file has more than {MAX_NODES:,} values",
                                "split the journey into smaller files")  # fmt: skip
                break
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"this is not valid YAML: {error.problem or error.context}"
        hint = "check the indentation, and that each `key:` is followed by a space or a new line"
        raise RulesError([RuleProblem(source, line, column, message, hint)]) from error
    if builder.problems:
        raise RulesError(builder.problems)
    return tree
