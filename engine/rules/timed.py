"""Checks of timed transitions (`after:`, `idle:`) that look at more than one transition.

Timed transitions that lead round in a circle fire in a loop: a customer who sends nothing goes
round for ever, once per lap of `after:` times, or again and again at the same instant once every
`idle:` time has passed. Such a circle is refused, at the first of its transitions in the file.
So is a timed transition that can never fire: one that leads only from its own target stage
(a customer is never moved into the stage they are in), or one that a shorter timer on the same
clock always beats (it leaves every stage this one leaves, and holds whenever this one does, so
the customer is gone before this one's time comes).
A transition's own mistakes (an event looked at in its `when`) are `engine.rules.check`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.errors import RuleProblem
from engine.rules.lint import conjuncts
from engine.rules.model import duration_ms
from engine.rules.yaml_tree import YamlTree


def _clock(transition: dict[str, Any]) -> str | None:
    for key in ("after", "idle"):
        if isinstance(transition.get(key), str):
            return key
    return None


def _delay_ms(transition: dict[str, Any]) -> int | None:
    """The delay of a timed transition, None when it has none or it is not a valid duration
    (that mistake is reported on its own)."""
    clock = _clock(transition)
    if clock is None:
        return None
    try:
        return duration_ms(transition[clock])
    except (AssertionError, KeyError):
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


def _beaten_by(
    index: int, entries: list[tuple[int, dict[str, Any]]], stages: list[str]
) -> dict[str, Any] | None:
    """The timed transition that always fires before transition `index` (a timed one), if any:
    on the same clock, due sooner (or at the same time and listed earlier), leaving every stage
    this one leaves for another stage, with no part of `when` this one lacks."""
    by_index = dict(entries)
    mine = by_index[index]
    delay, clock = _delay_ms(mine), _clock(mine)
    sources = set(_sources(mine.get("from"), stages)) - {mine.get("to")}
    written = mine.get("when")
    needs = conjuncts(written if isinstance(written, dict) else {})
    for other_index, other in entries:
        other_delay = _delay_ms(other)
        if other_index == index or other_delay is None or delay is None:
            continue
        if _clock(other) != clock or (other_delay, other_index) > (delay, index):
            continue
        leaves = set(_sources(other.get("from"), stages)) - {other.get("to")}
        when = other.get("when")
        if sources <= leaves and conjuncts(when if isinstance(when, dict) else {}) <= needs:
            return other
    return None


def never_fire_problems(
    tree: YamlTree, entries: list[tuple[int, dict[str, Any]]], stages: list[str]
) -> Iterator[RuleProblem]:
    """A problem for each timed transition that can never fire (see the module)."""
    for index, transition in entries:
        clock = _clock(transition)
        target = transition.get("to")
        if clock is None or not isinstance(target, str) or _delay_ms(transition) is None:
            continue
        sources = _sources(transition.get("from"), stages)
        if sources and all(source == target for source in sources):
            yield tree.problem(
                ("transitions", index, "to"),
                f"this timed transition never fires: it leads from `{target}` to `{target}`, "
                "and a customer is never moved into the stage they are in",
                "lead it to another stage; to repeat an action while customers stay in "
                f"`{target}`, give the action a `cooldown`",
            )
            continue
        other = _beaten_by(index, entries, stages)
        if other is not None:
            name = other.get("id") or f"to_{other.get('to')}"
            yield tree.problem(
                ("transitions", index, clock),
                f"this timed transition never fires: `{name}` ({clock}: {other.get(clock)}) "
                "moves customers out of every stage this one starts from, sooner, and holds "
                f"whenever this one does: nobody is still there after {transition[clock]}",
                f"give `{name}` a `when` this one does not need, narrow its `from`, or make "
                f"this one's `{clock}` shorter than {other.get(clock)}",
                key=True,
            )
