"""Safe YAML → plain Python data, with the line and column of every key and value.

The tree is built from the parser's events rather than by a YAML constructor, so nothing in a rules
file can create objects or run code: tags, anchors and aliases are refused, as are files and trees
too large to be written by hand. Plain scalars resolve by the YAML 1.2 core schema (`yes` stays
text). YAML syntax errors are translated into what a person editing the file did and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.reader import ReaderError

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
_STANDARD_TAG = "tag:yaml.org,2002:"
_TOO_DEEP = f"the rules nest deeper than {MAX_DEPTH} levels"
_FLATTEN = "flatten the condition: list its parts under one `all:` or `any:`"


@dataclass
class YamlTree:
    """Plain data and, for every path into it, where its value (and key) start, 1-based.

    `problems` holds what was refused without stopping the reading (tags, anchors, aliases,
    duplicate keys, nesting too deep); `refused` the paths whose values those problems spoiled, so
    that later checks do not report the same mistake again.
    """

    data: Any
    source: str
    value_at: dict[Path, Position] = field(default_factory=dict)
    key_at: dict[Path, Position] = field(default_factory=dict)
    text_at: dict[Path, str] = field(default_factory=dict)  # scalars as written, for hints
    quoted: set[Path] = field(default_factory=set)  # scalars written in quotes (always text)
    problems: list[RuleProblem] = field(default_factory=list)
    refused: set[Path] = field(default_factory=set)

    def position(self, path: Path, *, key: bool = False) -> Position:
        """The position of `path`, or of its nearest enclosing node that has one."""
        while path:
            found = (self.key_at if key else self.value_at).get(path)
            if found is not None:
                return found
            path, key = path[:-1], False
        return self.value_at.get((), (1, 1))

    def problem(
        self, path: Path, message: str, hint: str = "", *, key: bool = False
    ) -> RuleProblem:
        line, column = self.position(path, key=key)
        return RuleProblem(self.source, line, column, message, hint)

    def is_refused(self, path: Path) -> bool:
        """True when `path` is at or under a value already reported as refused."""
        return any(path[:n] in self.refused for n in range(len(path) + 1))


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


class _TooLarge(Exception):
    """Stops reading a file with more values than anyone writes by hand."""


class _Builder:
    def __init__(self, tree: YamlTree) -> None:
        self.tree = tree
        self.nodes = 0

    def refuse(self, event: Event, message: str, hint: str) -> None:
        mark = event.start_mark
        self.tree.problems.append(
            RuleProblem(self.tree.source, mark.line + 1, mark.column + 1, message, hint)
        )

    def _refuse_unsafe(self, event: Event, path: Path) -> None:
        if getattr(event, "anchor", None) is not None or isinstance(event, AliasEvent):
            self.refuse(
                event,
                "anchors (`&name`) and aliases (`*name`) are not allowed in rules files",
                "write the value out in full where it is used",
            )
        if isinstance(event, AliasEvent):
            self.tree.refused.add(path)  # it reads as nothing; "missing value" would be noise
        tag = getattr(event, "tag", None)
        if tag is not None:
            shown = "!!" + tag.removeprefix(_STANDARD_TAG) if tag.startswith(_STANDARD_TAG) else tag
            self.refuse(
                event,
                f"YAML tags such as `{shown}` are not allowed in rules files",
                "remove the tag; write plain values: text, numbers, true/false, lists and keys",
            )
            self.tree.refused.add(path)

    def value(self, events: Iterator[Event], event: Event, path: Path, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.refuse(
                event,
                f"the file has more than {MAX_NODES:,} values",
                "split the journey into smaller files",
            )
            raise _TooLarge
        self._refuse_unsafe(event, path)
        mark = event.start_mark
        self.tree.value_at[path] = (mark.line + 1, mark.column + 1)
        if isinstance(event, CollectionStartEvent) and depth >= MAX_DEPTH:
            return self._too_deep(events, event, path)  # its items would be deeper than allowed
        if isinstance(event, ScalarEvent):
            self.tree.text_at[path] = event.value
            plain = event.style is None and (event.implicit is None or event.implicit[0])
            if not plain:
                self.tree.quoted.add(path)
            return _resolve_plain(event.value) if plain else event.value
        if isinstance(event, SequenceStartEvent):
            return self._sequence(events, path, depth)
        if isinstance(event, MappingStartEvent):
            return self._mapping(events, path, depth)
        return None  # an alias: already refused

    def _too_deep(self, events: Iterator[Event], event: Event, path: Path) -> None:
        """Refuse once and skip the whole subtree without recursion: a deep file must not be
        able to exhaust the Python stack."""
        self.refuse(event, _TOO_DEEP, _FLATTEN)
        self.tree.refused.add(path)
        open_collections = 1
        while open_collections:
            skipped = next(events)
            if isinstance(skipped, CollectionStartEvent):
                open_collections += 1
            elif isinstance(skipped, SequenceEndEvent | MappingEndEvent):
                open_collections -= 1
        return None

    def _sequence(self, events: Iterator[Event], path: Path, depth: int) -> list[Any]:
        items: list[Any] = []
        for item in events:
            if isinstance(item, SequenceEndEvent):
                break
            items.append(self.value(events, item, (*path, len(items)), depth + 1))
        return items

    def _mapping(self, events: Iterator[Event], path: Path, depth: int) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        for key_event in events:
            if isinstance(key_event, MappingEndEvent):
                break
            key = str(self.value(events, key_event, (*path, "\0key"), depth + 1))
            key_position = self.tree.value_at.pop((*path, "\0key"))
            self.tree.text_at.pop((*path, "\0key"), None)
            self.tree.quoted.discard((*path, "\0key"))
            if (*path, "\0key") in self.tree.refused:
                self.tree.refused.discard((*path, "\0key"))
                self.tree.refused.add((*path, key))
            if key in mapping:
                self.refuse(
                    key_event,
                    f"`{key}` is written twice in the same place",
                    "keep one of them; the second would silently replace the first",
                )
            self.tree.key_at[(*path, key)] = key_position
            mapping[key] = self.value(events, next(events), (*path, key), depth + 1)
        return mapping


def _flow_too_deep(text: str) -> Position | None:
    """Where `[` and `{` first nest deeper than MAX_DEPTH, found before parsing: the parser's time
    grows with the square of flow nesting (8,000 levels take 20 s), so a 16 kB file could stall
    a reload. Quotes and comments are skipped as YAML does; a stray bracket in plain text counts,
    which errs on the safe side."""
    depth, line, column = 0, 0, 0
    quote, escaped, comment, previous = "", False, False, "\n"
    for char in text:
        line, column = (line + 1, 1) if previous == "\n" else (line, column + 1)
        previous, before = char, previous
        if quote:
            quote, escaped = _in_quotes(quote, escaped, char)
        elif char == "\n" or comment:
            comment = char != "\n"
        elif char == "#" and before in " \t\n":
            comment = True
        elif char in "\"'" and (before in " \t\n[{," or before == char == "'"):
            quote = char  # `''` inside single quotes reopens them
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line, column
        elif char in "]}":
            depth = max(0, depth - 1)
    return None


def _in_quotes(quote: str, escaped: bool, char: str) -> tuple[str, bool]:
    """(quote still open or "", next char escaped) after `char` inside quoted text."""
    if escaped:
        return quote, False
    if char == "\\" and quote == '"':
        return quote, True
    return ("" if char == quote else quote), False


def _read_events(builder: _Builder, text: str) -> None:
    documents = 0
    events = iter(YAML(typ="safe", pure=True).parse(text))
    for event in events:
        if isinstance(event, DocumentStartEvent):
            documents += 1
            if documents > 1:
                builder.refuse(
                    event,
                    "a rules file holds one journey (one YAML document)",
                    "move the second journey (after `---`) to a file of its own",
                )
                return
        elif isinstance(event, ScalarEvent | CollectionStartEvent | AliasEvent):
            builder.tree.data = builder.value(events, event, (), 0)


def parse_yaml(text: str, source: str) -> YamlTree:
    """Parse one rules document, keeping refusals in `tree.problems` so that every other mistake
    can be reported with them. Raises `RulesError` when the text cannot be read at all: bad YAML
    syntax, or a file too large."""
    size = len(text.encode())
    if size > MAX_FILE_BYTES:
        problem = RuleProblem(
            source,
            1,
            1,
            f"the file is {size:,} bytes; rules files are limited to {MAX_FILE_BYTES:,}",
            "split the journey into several files, one journey each",
        )
        raise RulesError([problem])
    too_deep = _flow_too_deep(text)
    if too_deep is not None:
        raise RulesError([RuleProblem(source, *too_deep, _TOO_DEEP, _FLATTEN)])
    tree = YamlTree(data=None, source=source)
    builder = _Builder(tree)
    try:
        _read_events(builder, text)
    except MarkedYAMLError as error:
        raise RulesError([syntax_problem(error, text, source)]) from error
    except ReaderError as error:  # found by fuzzing: control characters are not YAML
        raise RulesError([_unreadable_character(error, text, source)]) from error
    except _TooLarge as error:
        raise RulesError(tree.problems) from error
    return tree


def _unreadable_character(error: ReaderError, text: str, source: str) -> RuleProblem:
    position = error.position if isinstance(error.position, int) else 0
    before = text[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    return RuleProblem(
        source, line, column,
        f"the file contains a control character (code {error.character:#04x}) YAML does not allow",
        "delete it; it is usually pasted in by accident and invisible in most editors",
    )  # fmt: skip


def read_yaml(text: str, source: str) -> YamlTree:
    """Parse one rules document. Raises `RulesError` for unsafe or unreadable YAML."""
    tree = parse_yaml(text, source)
    if tree.problems:
        raise RulesError(tree.problems)
    return tree


# -- YAML syntax errors, as the mistakes people make ------------------------------------------

_SyntaxRule = Callable[[MarkedYAMLError, list[str]], tuple[Position, str, str] | None]


def _at(mark: Any) -> Position:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _line(lines: list[str], position: Position) -> str:
    index = position[0] - 1
    return lines[index] if 0 <= index < len(lines) else ""


def _entry_text(line: str) -> str:
    """A line without its indentation, list dash and trailing comment."""
    text = line.strip()
    while text.startswith("- "):
        text = text[2:].lstrip()
    return re.sub(r"\s+#.*$", "", text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _tab(error: MarkedYAMLError, lines: list[str]) -> tuple[Position, str, str] | None:
    if "'\\t'" not in str(error.problem):
        return None
    return (
        _at(error.problem_mark),
        "a tab character: YAML indents with spaces only",
        "replace the tab with spaces (two per level); most editors can insert spaces "
        "when you press Tab",
    )


def _lone_star(error: MarkedYAMLError, lines: list[str]) -> tuple[Position, str, str] | None:
    if error.context not in ("while scanning an alias", "while scanning an anchor"):
        return None
    position = _at(error.context_mark)
    sign = _line(lines, position)[position[1] - 1 : position[1]] or "*"
    if sign == "*":
        return (
            position,
            "a `*` without quotes starts a YAML alias",
            'to mean "every stage", put it in quotes: `"*"`',
        )
    return (
        position,
        f"a value cannot start with `{sign}` unless it is quoted",
        f'put the value in quotes, e.g. `"{sign}…"`',
    )


def _reserved_start(error: MarkedYAMLError, lines: list[str]) -> tuple[Position, str, str] | None:
    problem = str(error.problem)
    found = re.search(r"found character '(.)' that cannot start any token", problem)
    found = found or re.search(r"expected the node content, but found '(.)'", problem)
    if found is None:
        return None
    position = _at(error.problem_mark)
    value = _line(lines, position)[position[1] - 1 :].split(" #")[0].strip()
    sign = "a backquote" if found.group(1) == "`" else f"`{found.group(1)}`"
    return (
        position,
        f"a value cannot start with {sign} unless it is quoted",
        f'put the value in quotes: `"{value}"`',
    )


def _missing_colon_at_end(
    error: MarkedYAMLError, lines: list[str]
) -> tuple[Position, str, str] | None:
    if "could not find expected ':'" not in str(error.problem) or error.context_mark is None:
        return None
    position = _at(error.context_mark)
    return _no_colon(position, _line(lines, position))


def _no_colon(position: Position, line: str) -> tuple[Position, str, str]:
    text = _entry_text(line)
    key, _, rest = text.partition(" ")
    fixed = f"{key}: {rest.strip()}" if rest.strip() else f"{key}:"
    start = (position[0], line.index(text) + 1 if text in line else position[1])
    return start, f"`{text}` has no `:` after its key", f"write `{fixed}`"


def _previous_line(lines: list[str], index: int) -> int | None:
    for previous in range(index - 1, -1, -1):
        stripped = lines[previous].strip()
        if stripped and not stripped.startswith("#"):
            return previous
    return None


def _stray_colon(error: MarkedYAMLError, lines: list[str]) -> tuple[Position, str, str] | None:
    """`mapping values are not allowed here`: a `: ` inside a value, a missing `:` or space on
    the line before, or a line indented too far (the parser glued it to the value above)."""
    if "mapping values are not allowed here" not in str(error.problem):
        return None
    position = _at(error.problem_mark)
    line = _line(lines, position)
    before = _entry_text(line[: position[1] - 1])
    if ": " in before:
        key, _, value = _entry_text(line).partition(": ")
        return (
            position,
            "a second `: ` on this line; YAML reads it as the start of another key",
            f'put the value in quotes: `{key}: "{value.strip()}"`',
        )
    previous = _previous_line(lines, position[0] - 1)
    if previous is None:
        return None
    above = _entry_text(lines[previous])
    no_space = re.match(r"^([^\s:#]+):(\S.*)$", above)
    if no_space:
        return (
            (previous + 1, lines[previous].index(above) + 1),
            f"`{above}` has no space after its `:`",
            f"write `{no_space.group(1)}: {no_space.group(2)}`",
        )
    if ":" not in above:
        return _no_colon((previous + 1, 1), lines[previous])
    key = _entry_text(line).partition(":")[0]
    return (
        (position[0], _indent(line) + 1),
        "this line is indented further than the line above it",
        f"line `{key}:` up with the keys it belongs with (the same number of spaces)",
    )


def _stray_text(error: MarkedYAMLError, lines: list[str]) -> tuple[Position, str, str] | None:
    problem = str(error.problem)
    if "expected '<document start>'" in problem:
        return (
            _at(error.problem_mark),
            "the text above this line is not a `key: value` line, so this one cannot follow it",
            "start a comment line with `#`, or remove the stray text above",
        )
    if "sequence entries are not allowed here" in problem:
        return (
            _at(error.problem_mark),
            "a `- ` list item cannot start on the same line as a key or a value",
            "put each `- ` item on a line of its own, indented under its key",
        )
    return None


def _unclosed(error: MarkedYAMLError, lines: list[str]) -> tuple[Position, str, str] | None:
    context = str(error.context)
    if context == "while scanning a quoted scalar":
        return (
            _at(error.context_mark),
            "this quoted text is never closed",
            "end it with the same quote mark it starts with, on the same line",
        )
    for kind, opening, closing in (("sequence", "[", "]"), ("mapping", "{", "}")):
        if context == f"while parsing a flow {kind}":
            return (
                _at(error.context_mark),
                f"this `{opening}` is not closed where expected",
                f"close it with `{closing}` on the same line, with a comma between the items",
            )
    return None


def _misaligned(error: MarkedYAMLError, lines: list[str]) -> tuple[Position, str, str] | None:
    problem = str(error.problem)
    if "expected <block end>" not in problem and "did not find expected" not in problem:
        return None
    position = _at(error.problem_mark)
    line = _line(lines, position)
    if "'<scalar>'" in problem and line.count("'") >= 3:
        return (
            position,
            "text in single quotes ends at the next `'`",
            "write an apostrophe inside '…' twice (`'it''s'`), or use double quotes",
        )
    return (
        (position[0], _indent(line) + 1),
        "this line is not lined up with the lines it belongs with",
        "indent the keys of one entry by the same number of spaces (two per level); "
        "under `- `, line them up with the first key after the dash",
    )


_SYNTAX_RULES: tuple[_SyntaxRule, ...] = (
    _tab,
    _lone_star,
    _reserved_start,
    _missing_colon_at_end,
    _stray_colon,
    _stray_text,
    _unclosed,
    _misaligned,
)


def syntax_problem(error: MarkedYAMLError, text: str, source: str) -> RuleProblem:
    """The YAML syntax error as a mistake, where it was made, and its fix."""
    lines = text.splitlines()
    for rule in _SYNTAX_RULES:
        found = rule(error, lines)
        if found is not None:
            (line, column), message, hint = found
            return RuleProblem(source, line, column, message, hint)
    line, column = _at(error.problem_mark or error.context_mark)
    return RuleProblem(
        source,
        line,
        column,
        f"this is not valid YAML: {error.problem or error.context}",
        "check the indentation, and that each `key:` is followed by a space or a new line",
    )
