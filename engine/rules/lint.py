"""Warnings about a journey that is valid but probably not what its author meant: stages no
customer reaches or leaves, transitions an earlier one always pre-empts, actions never offered,
comparisons of the wrong type, and counters, segments or friction nobody reads.

A warning never stops a ruleset from loading. To keep something on purpose, write
`# allow: <code>` at the end of the line the warning points to (or on the line above it);
`# allow: all` silences every warning there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.errors import RuleProblem
from engine.rules.model import SUBJECTS, Journey, Transition, duration_ms
from engine.rules.yaml_tree import Path, YamlTree

UNREACHABLE_STAGE = "unreachable-stage"
DEAD_END_STAGE = "dead-end-stage"
SHADOWED_TRANSITION = "shadowed-transition"
NEVER_OFFERED = "never-offered"
TYPE_MISMATCH = "type-mismatch"
UNUSED = "unused"

_ALLOW = re.compile(r"#\s*allow:\s*([\w\-, ]+)")
_ORDERING = ("gt", "gte", "lt", "lte")
_EQUALITY = ("eq", "ne", "in", "not_in")


@dataclass(frozen=True, slots=True)
class _Found:
    path: Path
    code: str
    message: str
    hint: str


def lint_journey(tree: YamlTree, journey: Journey, text: str) -> list[RuleProblem]:
    """Every warning about `journey` (valid, read into `tree` from `text`), minus those allowed."""
    data = tree.data
    found = [
        *_stage_flow(data, journey),
        *_shadowed_transitions(data, journey),
        *_never_offered(data, journey),
        *_type_mismatches(data),
        *_unused(data, journey),
    ]
    lines = text.splitlines()
    problems = []
    for warning in found:
        line, column = tree.position(warning.path, key=isinstance(warning.path[-1], str))
        if _allowed(lines, line, warning.code):
            continue
        hint = f"{warning.hint}; if it is meant, add `# allow: {warning.code}` to the line"
        problems.append(
            RuleProblem(tree.source, line, column, warning.message, hint, "warning", warning.code)
        )
    return sorted(problems, key=lambda p: (p.line, p.column))


def _allowed(lines: list[str], line: int, code: str) -> bool:
    for number in (line, line - 1):
        if 1 <= number <= len(lines):
            match = _ALLOW.search(lines[number - 1])
            if match and {code, "all"} & {c.strip() for c in match.group(1).split(",")}:
                return True
    return False


# -- stages ---------------------------------------------------------------------------------------


def _from_stages(written: str | list[str], stages: list[str]) -> set[str]:
    if written == "*":
        return set(stages)
    return {written} if isinstance(written, str) else set(written)


def _reachable(journey: Journey) -> set[str]:
    """Stages a customer can be in: the first, and every stage a transition leads to from a
    stage already reachable."""
    stages = [s.id for s in journey.stages]
    reached = {stages[0]}
    grew = True
    while grew:
        grew = False
        for transition in journey.transitions:
            sources = _from_stages(transition.from_, stages)
            if transition.to not in reached and sources & reached:
                reached.add(transition.to)
                grew = True
    return reached


def _stage_flow(data: dict[str, Any], journey: Journey) -> Iterator[_Found]:
    stages = [s.id for s in journey.stages]
    reached = _reachable(journey)
    for index, stage in enumerate(stages):
        if stage not in reached:
            offered = [a.id for a in journey.actions if a.stages != "*" and stage in a.stages]
            also = f"; actions offered only there are never offered ({', '.join(offered)})"
            yield _Found(
                ("stages", index, "id"), UNREACHABLE_STAGE,
                f"no customer ever enters stage `{stage}`: no transition leads to it from a "
                "stage customers reach" + (also if offered else ""),
                f"add a transition with `to: {stage}`, or remove the stage",
            )  # fmt: skip
    leaving = {s for t in journey.transitions for s in _from_stages(t.from_, stages) if s != t.to}
    dead_ends = [s for s in stages if s not in leaving]
    # The end states are listed last: a dead end before a stage customers move on from is odd.
    for index, stage in enumerate(stages):
        later = stages[index + 1 :]
        if stage in dead_ends and stage in reached and any(s not in dead_ends for s in later):
            yield _Found(
                ("stages", index, "id"), DEAD_END_STAGE,
                f"customers who reach stage `{stage}` stay there: no transition leaves it",
                f"add a transition `from: {stage}`, or, if it is an end state, list it after "
                "the stages customers move on from",
            )  # fmt: skip


# -- transitions ----------------------------------------------------------------------------------


def conjuncts(condition: dict[str, Any]) -> set[str]:
    """The parts of a condition that must all hold, each as canonical text: its keys (a subject
    with its comparison as one part) and, recursively, the parts of its `all:` items."""
    parts: set[str] = set()
    rest = {k: v for k, v in condition.items() if k != "all"}
    subject = {k: v for k, v in rest.items() if k in SUBJECTS}
    comparison = {k: v for k, v in rest.items() if k in (*_ORDERING, *_EQUALITY, "exists")}
    if subject:
        parts.add(json.dumps({**subject, **comparison}, sort_keys=True))
    for key, value in rest.items():
        if key not in subject and key not in comparison:
            parts.add(json.dumps({key: value}, sort_keys=True))
    for item in condition.get("all") or []:
        if isinstance(item, dict):
            parts |= conjuncts(item)
    return parts


def _timed_first(earlier: Transition, later: Transition) -> bool:
    """Whether `earlier` can pre-empt `later` by time: both on events, or both on the same
    clock (`after` or `idle`) with `earlier` due no later. An event never pre-empts a timer."""
    if earlier.is_timed != later.is_timed:
        return False
    if not earlier.is_timed:
        return True
    if (earlier.after is None) != (later.after is None):
        return False
    return duration_ms(earlier.after or earlier.idle or "0ms") <= duration_ms(
        later.after or later.idle or "0ms"
    )


def _shadowed_transitions(data: dict[str, Any], journey: Journey) -> Iterator[_Found]:
    stages = [s.id for s in journey.stages]
    written = data.get("transitions") or []
    for later_index, later in enumerate(journey.transitions):
        if later.is_timed:  # a timer that never fires is an error (`engine.rules.timed`)
            continue
        later_from = _from_stages(later.from_, stages)
        for index in range(later_index):
            earlier = journey.transitions[index]
            # An earlier transition into the customer's own stage is skipped, so it pre-empts
            # the later one only from the other stages it lists.
            covers = _from_stages(earlier.from_, stages) - {earlier.to}
            needs = conjuncts(written[index].get("when") or {})
            if not _timed_first(earlier, later):
                continue
            if later_from <= covers and needs <= conjuncts(written[later_index].get("when") or {}):
                name = earlier.id or f"to_{earlier.to}"
                yield _Found(
                    ("transitions", later_index), SHADOWED_TRANSITION,
                    f"this transition never fires: `{name}` (transition {index + 1}) comes "
                    "first, starts from every stage it does, and holds whenever it holds",
                    f"move it above `{name}`, or narrow `{name}`'s `from` or `when`",
                )  # fmt: skip
                break


# -- actions --------------------------------------------------------------------------------------


def _trait_values(condition: dict[str, Any]) -> dict[str, set[Any]]:
    """Traits a condition pins to a set of values (`eq` or `in`, at its top or under `all:`)."""
    pinned: dict[str, set[Any]] = {}
    items = [condition, *[i for i in condition.get("all") or [] if isinstance(i, dict)]]
    for item in items:
        trait = item.get("trait")
        if isinstance(trait, str) and ("eq" in item or "in" in item):
            values = {item["eq"]} if "eq" in item else set(item["in"])
            pinned[trait] = pinned.get(trait, values) & values
    return pinned


def _never_offered(data: dict[str, Any], journey: Journey) -> Iterator[_Found]:
    reached = _reachable(journey)
    stages = [s.id for s in journey.stages]
    segments = data.get("segments") or {}
    for index, action in enumerate(journey.actions):
        listed = _from_stages(action.stages, stages)
        if not listed & reached:
            yield _Found(
                ("actions", index, "stages"), NEVER_OFFERED,
                f"action `{action.id}` is never offered: no customer enters "
                f"{' or '.join(sorted(listed))}",
                "offer it in a stage customers reach, or add a transition into one of these",
            )  # fmt: skip
            continue
        when = (data["actions"][index].get("when") or {}) if action.when else {}
        wants = _trait_values(when)
        for segment in action.segments or []:
            needs = _trait_values(segments.get(segment, {}).get("when") or {})
            clash = [t for t in wants.keys() & needs.keys() if not wants[t] & needs[t]]
            if clash and len(action.segments or []) == 1:
                trait = clash[0]
                yield _Found(
                    ("actions", index, "when"), NEVER_OFFERED,
                    f"action `{action.id}` is never offered: its `when` needs trait `{trait}` "
                    f"in {sorted(map(str, wants[trait]))}, its segment `{segment}` in "
                    f"{sorted(map(str, needs[trait]))}",
                    f"make the `when` agree with segment `{segment}`, or choose another segment",
                )  # fmt: skip


# -- types ----------------------------------------------------------------------------------------


def _conditions(data: dict[str, Any]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every condition mapping written in the journey, nested ones included, with its path."""
    roots: list[tuple[Path, Any]] = []
    for section in ("segments", "counters", "goals"):
        for name, entry in (data.get(section) or {}).items():
            roots.append(((section, name, "when"), entry.get("when")))
    friction = data.get("friction") or {}
    for i, signal in enumerate(friction.get("signals") or []):
        roots.append((("friction", "signals", i, "when"), signal.get("when")))
    for i, transition in enumerate(data.get("transitions") or []):
        roots.append((("transitions", i, "when"), transition.get("when")))
    for i, action in enumerate(data.get("actions") or []):
        roots.append((("actions", i, "when"), action.get("when")))
        for j, boost in enumerate(action.get("boosts") or []):
            roots.append((("actions", i, "boosts", j, "when"), boost.get("when")))
    stack = [(path, node) for path, node in roots if isinstance(node, dict)]
    while stack:
        path, node = stack.pop()
        yield path, node
        for key in ("all", "any"):
            stack += [((*path, key, i), c) for i, c in enumerate(node.get(key) or [])]
        if isinstance(node.get("not"), dict):
            stack.append(((*path, "not"), node["not"]))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric_text(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value) is not None


def _type_mismatches(data: dict[str, Any]) -> Iterator[_Found]:
    """An `eq`/`ne`/`in`/`not_in` that compares a property or trait known to be a number
    (ordered with `gt`... elsewhere, summed by a counter, a goal's value) with text."""
    numbers = {
        ("property", c["sum"]) for c in (data.get("counters") or {}).values() if c.get("sum")
    }
    numbers |= {
        ("property", g["value"]) for g in (data.get("goals") or {}).values() if g.get("value")
    }
    conditions = list(_conditions(data))
    for _, node in conditions:
        for subject in ("property", "trait"):
            if isinstance(node.get(subject), str) and any(
                _is_number(node.get(o)) for o in _ORDERING
            ):
                numbers.add((subject, node[subject]))
    for path, node in conditions:
        for subject in ("property", "trait"):
            name = node.get(subject)
            if (subject, name) not in numbers:
                continue
            for op in _EQUALITY:
                values = node.get(op)
                listed = values if isinstance(values, list) else [values]
                texts = [v for v in listed if isinstance(v, str)]
                if op in node and texts:
                    fix = ", ".join(v if _numeric_text(v) else "<a number>" for v in texts)
                    yield _Found(
                        (*path, op), TYPE_MISMATCH,
                        f"{subject} `{name}` is a number elsewhere in this journey, but `{op}` "
                        f"compares it with text ({', '.join(repr(v) for v in texts)}): a number "
                        "never equals text, so this never holds" if op in ("eq", "in") else
                        f"{subject} `{name}` is a number elsewhere in this journey, but `{op}` "
                        f"compares it with text ({', '.join(repr(v) for v in texts)}): this "
                        "always holds",
                        f"write the number without quotes: {fix}",
                    )  # fmt: skip


# -- unused ---------------------------------------------------------------------------------------


def _unused(data: dict[str, Any], journey: Journey) -> Iterator[_Found]:
    conditions = [node for _, node in _conditions(data)]
    read_counters = {n["counter"] for n in conditions if isinstance(n.get("counter"), str)}
    read_segments = {n["segment"] for n in conditions if isinstance(n.get("segment"), str)}
    read_segments |= {s for a in journey.actions for s in a.segments or []}
    for name in journey.counters:
        if name not in read_counters:
            yield _Found(
                ("counters", name), UNUSED,
                f"counter `{name}` is counted but no transition, action or boost reads it",
                f"use it in a condition (`counter: {name}`), or remove it",
            )  # fmt: skip
    for name in journey.segments:
        if name not in read_segments:
            yield _Found(
                ("segments", name), UNUSED,
                f"segment `{name}` is defined but no action or condition uses it",
                f"list it in an action's `segments:`, test it (`segment: {name}`), or remove it",
            )  # fmt: skip
    if journey.friction and not any("friction" in n for n in conditions):
        yield _Found(
            ("friction",), UNUSED,
            "friction is measured (and reported in every answer) but no transition, action or "
            "boost reacts to it",
            "test it in a condition (e.g. `friction: medium` on a help action), or remove it",
        )  # fmt: skip
    yield from _unused_contact_limits(journey)


def _unused_contact_limits(journey: Journey) -> Iterator[_Found]:
    """A contact limit on a channel no action is delivered on limits nothing (an action without
    a `channel` of its own goes out on the event's, which may be any)."""
    if journey.contact_policy is None or any(a.channel is None for a in journey.actions):
        return
    channels = {a.channel for a in journey.actions}
    for index, limit in enumerate(journey.contact_policy.limits):
        if limit.channel not in channels:
            listed = ", ".join(f"`{c}`" for c in sorted(c for c in channels if c)) or "none"
            yield _Found(
                ("contact_policy", "limits", index, "channel"), UNUSED,
                f"no action is delivered on `{limit.channel}`, so this limit never limits "
                f"anything (the actions' channels: {listed})",
                "name the channel as the actions do, or remove the limit",
            )  # fmt: skip
