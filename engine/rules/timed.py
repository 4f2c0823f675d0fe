"""Checks of timed transitions (`after:`, `idle:`) that look at more than one transition.

Timed transitions that lead round in a circle fire in a loop: a customer who sends nothing goes
round for ever, once per lap of `after:` times, or again and again at the same instant once every
`idle:` time has passed. Such a circle is refused, at the first of its transitions in the file.
A transition's own mistakes (an event looked at in its `when`) are `engine.rules.check`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.errors import RuleProblem
from engine.rules.yaml_tree import YamlTree


def _clock(transition: dict[str, Any]) -> str | None:
    for key in ("after", "idle"):
        if isinstance(transition.get(key), str):
            return key
    return None


def _sources(value: Any, stages: list[str]) -> list[str]:
    if value == "*":
        return list(stages)
    if isinstance(value, str):
        return [value]
    return [s for s in value if isinstance(s, str)] if isinstance(value, list) else []


def _edges(entries: list[tuple[int, dict[str, Any]]], stages: list[str]) -> dict[str, list[int]]:
    """Per stage, the timed transitions (their index) that leave it for another stage."""
    leaving: dict[str, list[int]] = {}
    for index, transition in entries:
        target = transition.get("to")
        if _clock(transition) is None or not isinstance(target, str):
            continue
        for source in _sources(transition.get("from"), stages):
            if source != target:
                leaving.setdefault(source, []).append(index)
    return leaving


def _circles(
    entries: list[tuple[int, dict[str, Any]]], stages: list[str]
) -> Iterator[tuple[int, list[str]]]:
    """Each circle of timed transitions, once: (its first transition, the stages round it)."""
    leaving = _edges(entries, stages)
    by_index = dict(entries)
    reported: set[frozenset[int]] = set()
    for index, transition in entries:
        if _clock(transition) is None or not isinstance(transition.get("to"), str):
            continue
        for source in _sources(transition.get("from"), stages):
            lap = _lap(source, index, by_index, leaving)
            if lap is None:
                continue
            members, names = lap
            if frozenset(members) not in reported:
                reported.add(frozenset(members))
                yield min(members), names
            break


def _lap(
    source: str, start: int, by_index: dict[int, dict[str, Any]], leaving: dict[str, list[int]]
) -> tuple[list[int], list[str]] | None:
    """A way back to `source` by timed transitions, starting with transition `start` from it."""
    target = by_index[start]["to"]
    if target == source:
        return None
    stack: list[tuple[str, list[int], list[str]]] = [(target, [start], [source, target])]
    seen: set[str] = set()
    while stack:
        stage, members, names = stack.pop()
        if stage == source:
            return members, names
        if stage in seen:
            continue
        seen.add(stage)
        for index in leaving.get(stage, []):
            nxt = by_index[index]["to"]
            stack.append((nxt, [*members, index], [*names, nxt]))
    return None


def timer_problems(
    tree: YamlTree, entries: list[tuple[int, dict[str, Any]]], stages: list[str]
) -> Iterator[RuleProblem]:
    """A problem for each circle of timed transitions in the journey read into `tree`."""
    for index, names in _circles(entries, stages):
        clock = _clock(dict(entries)[index]) or "after"
        yield tree.problem(
            ("transitions", index, clock),
            "timed transitions fire in a loop: a customer who sends no event goes round "
            + " → ".join(f"`{name}`" for name in names)
            + " for ever",
            "end the circle: let one of its stages be left by an event only, or lead the last "
            "timed transition to a stage no timed transition leaves",
            key=True,
        )
