"""Checks a journey's cross-references and meaning: what the typed model cannot see.

The checks read the file's plain data (`YamlTree.data`), not the validated model, so they run even
when some other part of the file has a mistake: a marketer sees every problem of a file at once.
Each check looks only at values of the right shape; a value of the wrong shape is reported by
`engine.rules.explain`. Every problem carries the position of the value at fault and a fix; names
that almost match are suggested ("did you mean `consideration`?").
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.errors import RuleProblem
from engine.kernels.codes import MAX_COUNTER_BUCKETS
from engine.rules.model import (
    COMPARISONS,
    DURATION_PATTERN,
    NAME_PATTERN,
    SUBJECTS,
    Condition,
    duration_ms,
    fields_by_key,
)
from engine.rules.timed import never_fire_problems, timer_problems
from engine.rules.yaml_tree import Path, YamlTree

_NAME = re.compile(NAME_PATTERN)
_DURATION = re.compile(DURATION_PATTERN)
_ORDERING = ("gt", "gte", "lt", "lte")
CONDITION_KEYS = frozenset(fields_by_key(Condition))
_SECTIONS = {
    "stage": "stages",
    "segment": "segments",
    "counter": "counters",
    "friction level": "friction: levels",
}
# YAML 1.1 booleans: in a rules file (YAML 1.2) they are words, which never equal true or false.
_OLD_BOOLEANS = frozenset(
    {"yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off", "YES", "NO"}
)
_COMPARISON_EXAMPLES = {
    "trait": "eq: gold", "property": "eq: shoes", "time": "gte: 2d", "since": "lte: 7d",
    "until": "lte: 2d",
}  # fmt: skip


class Scope(NamedTuple):
    """What one kind of condition may look at, and what to say when it looks elsewhere."""

    allowed: frozenset[str]
    owner: str
    looks_at: str
    advice: str


_EVENT = frozenset({"event", "channel", "touchpoint", "response", "property", "all", "any", "not"})
COUNTER_SCOPE = Scope(
    _EVENT,
    "a counter's `when`",
    "the event (event, channel, touchpoint, property)",
    "a counter decides which events count; test `{key}` in the transition or action that reads "
    "the counter",
)
SIGNAL_SCOPE = Scope(
    _EVENT,
    "a friction signal's `when`",
    "the event (event, channel, touchpoint, property)",
    "a signal recognises an event; test `{key}` in the action that reacts to friction",
)
GOAL_SCOPE = Scope(
    _EVENT,
    "a goal's `when`",
    "the event (event, channel, touchpoint, property)",
    "a goal recognises a successful event, whoever sends it; to measure an action on some "
    "customers only, test `{key}` in that action's `when`",
)
SEGMENT_SCOPE = Scope(
    frozenset({"trait", "all", "any", "not"}),
    "a segment's `when`",
    "traits",
    "a segment says who the customer is; test `{key}` in the transition or action that uses "
    "the segment",
)


TIMER_SCOPE = Scope(
    frozenset(
        {
            "trait",
            "counter",
            "time",
            "since",
            "until",
            "segment",
            "friction",
            "topic",
            "all",
            "any",
            "not",
        }
    ),
    "a timed transition's `when`",
    "the customer (counters, traits, segments, friction, time, since, until)",
    "a transition with `after:` or `idle:` fires without an event, so `{key}` never holds "
    "then; to wait for an event with a timeout, write two transitions from the stage: one "
    "`when: {{event: ...}}`, one `after:` the timeout",
)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _old_boolean(value: Any) -> bool:
    return isinstance(value, str) and value in _OLD_BOOLEANS


def _is_name(value: object) -> bool:
    return isinstance(value, str) and _NAME.match(value) is not None


def duration_or_none(value: object) -> int | None:
    """Milliseconds of a well-written, positive duration; None for anything else."""
    if not isinstance(value, str) or not _DURATION.match(value):
        return None
    return duration_ms(value) or None


_UNITS = (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000))
_UNIT_SIZES = (*(size for _, size in _UNITS), 1)


def nice_duration(ms: int) -> str:
    """`ms` in the largest unit that divides it exactly, e.g. 75_600_000 → `21h`."""
    return next((f"{ms // size}{unit}" for unit, size in _UNITS if ms % size == 0), f"{ms}ms")


def _code(value: Any) -> str:
    """A value as it would be written in the file, for use inside backquotes."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _shown(value: Any) -> str:
    """A value for a message: text in quotes, so that `'many'` reads as the word written."""
    return _code(repr(value) if isinstance(value, str) else value)


def _entries(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """The mappings of a list section with their indices; explain.py reports anything else."""
    if not isinstance(value, list):
        return []
    return [(i, entry) for i, entry in enumerate(value) if isinstance(entry, dict)]


def _named(value: Any) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(value, dict):
        return []
    return [(name, entry) for name, entry in value.items() if isinstance(entry, dict)]


def _defined_names(data: dict[str, Any]) -> dict[str, list[str] | None]:
    """The names each kind of reference may use; None where the section cannot be read (its shape
    is reported elsewhere, and guessing would report every reference to it as unknown)."""
    stages = data.get("stages")
    stage_ids = [e["id"] for _, e in _entries(stages) if isinstance(e.get("id"), str)]
    friction = data.get("friction")
    levels = friction.get("levels") if isinstance(friction, dict) else None
    signals = friction.get("signals") if isinstance(friction, dict) else None
    topics = list(dict.fromkeys(
        s["topic"] for _, s in _entries(signals) if isinstance(s.get("topic"), str)
    ))  # fmt: skip
    return {
        "stage": stage_ids if isinstance(stages, list) else None,
        "segment": _keys(data.get("segments")),
        "counter": _keys(data.get("counters")),
        "goal": _keys(data.get("goals")),
        "friction level": list(levels) if isinstance(levels, dict) else None,
        "friction topic": topics if isinstance(signals, list) or signals is None else None,
    }


def _keys(section: Any) -> list[str] | None:
    if section is None:
        return []
    return list(section) if isinstance(section, dict) else None


def _suggest(kind: str, name: str, known: list[str]) -> str:
    parts = [p.strip() for p in re.split(r"[,;]|\s+and\s+", name)]
    if kind == "stage" and len(parts) > 1 and all(p in known for p in parts):
        return f"to name several stages, write a list: `[{', '.join(parts)}]`"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    if close:
        return f"did you mean `{close[0]}`?"
    where = (
        "give it to a signal under `friction: signals` (`topic:`)"
        if kind == "friction topic"
        else f"define it under `{_SECTIONS[kind]}:`"
    )
    if not known:
        return where
    listed = ", ".join(f"`{k}`" for k in known[:12])
    return f"{where}, or use one of: {listed}"


@dataclass
class _Checker:
    tree: YamlTree
    names: dict[str, list[str] | None]
    has_friction: bool
    problems: list[RuleProblem] = field(default_factory=list)

    def problem(self, path: Path, message: str, hint: str, *, key: bool = False) -> None:
        self.problems.append(self.tree.problem(path, message, hint, key=key))

    def reference(self, path: Path, kind: str, name: Any) -> None:
        known = self.names[kind]
        if known is None or not isinstance(name, str) or name in known:
            return
        if name == "*":
            self.problem(
                path,
                '`"*"` means every stage only on its own, not inside a list',
                'write `"*"` instead of the list, or list the stages by name',
            )
            return
        self.problem(path, f"unknown {kind} `{name}`", _suggest(kind, name, known))

    def unique(self, kind: str, entries: list[tuple[Path, Any]]) -> None:
        first_line: dict[str, int] = {}
        for path, name in entries:
            if not _is_name(name):
                continue  # a malformed name is reported by explain.py
            if name in first_line:
                self.problem(
                    path,
                    f"{kind} `{name}` is defined twice",
                    f"give each {kind} its own name; the first `{name}` is on line "
                    f"{first_line[name]}",
                )
            else:
                first_line[name] = self.tree.position(path)[0]

    def stage_list(self, path: Path, value: Any) -> None:
        if value == "*":
            return
        if isinstance(value, list):
            for i, name in enumerate(value):
                self.reference((*path, i), "stage", name)
        else:
            self.reference(path, "stage", value)

    # -- conditions ---------------------------------------------------------------------------

    def condition(self, node: Any, path: Path, scope: Scope | None) -> None:
        """Check one condition mapping and everything nested in it."""
        if not isinstance(node, dict) or self.tree.is_refused(path):
            return
        self.shape(node, path)
        if scope is not None:
            self.in_scope(node, path, scope)
        self.leaf_references(node, path)
        self.comparison_values(node, path)
        for key in ("all", "any"):
            children = node.get(key)
            for i, child in enumerate(children if isinstance(children, list) else []):
                self.condition(child, (*path, key, i), scope)
        if "not" in node:
            self.condition(node["not"], (*path, "not"), scope)

    def shape(self, node: dict[str, Any], path: Path) -> None:
        """One subject (property, trait, counter or time) with exactly one comparison."""
        subjects = [k for k in node if k in SUBJECTS]
        comparisons = [k for k in node if k in COMPARISONS]
        # An unknown key (`greater_than`, `propety`) is most likely the missing half; explain.py
        # reports it with the right spelling, which says more than "no comparison" would.
        guessing = any(k not in CONDITION_KEYS for k in node)
        if not node:
            self.problem(
                path,
                "this condition is empty",
                "write what must hold, e.g. `event: purchase`",
                key=path in self.tree.key_at,
            )
        elif len(subjects) > 1:
            first, second = subjects[:2]
            self.problem(
                (*path, second),
                f"this condition compares both `{first}:` and `{second}:`; "
                "a condition compares one thing",
                "put each comparison in its own item under `all:` (both must hold) or "
                "`any:` (one must hold)",
                key=True,
            )
        elif subjects and not comparisons and not guessing:
            subject = subjects[0]
            example = _COMPARISON_EXAMPLES.get(subject, "gte: 3")
            self.problem(
                (*path, subject),
                f"`{subject}: {_code(node[subject])}` has no comparison",
                "add one of eq, ne, gt, gte, lt, lte, in, not_in or exists on the next "
                f"line, e.g. `{example}`",
                key=True,
            )
        elif subjects and len(comparisons) > 1:
            first, second = comparisons[:2]
            self.problem(
                (*path, second),
                f"`{subjects[0]}: {_code(node[subjects[0]])}` has two comparisons, "
                f"`{first}` and `{second}`; a condition has one",
                f"for a range, write two conditions under `all:`, one with `{first}:` "
                f"and one with `{second}:`",
                key=True,
            )
        elif comparisons and not subjects and not guessing:
            first = comparisons[0]
            self.problem(
                (*path, first),
                f"`{first}: {_code(node[first])}` does not say what it compares",
                "add `property:` (of the event), `trait:` (of the customer), `counter:`, "
                "`time:`, `since:` (an event type) or `until:` (a date trait) on the line above "
                "it",
                key=True,
            )

    def in_scope(self, node: dict[str, Any], path: Path, scope: Scope) -> None:
        for key in node:
            if key in CONDITION_KEYS and key not in COMPARISONS and key not in scope.allowed:
                hint = scope.advice.format(key=key)
                if key == "property" and scope is SEGMENT_SCOPE:
                    hint = "a segment looks at the customer: did you mean `trait:`?"
                self.problem(
                    (*path, key),
                    f"{scope.owner} can only look at {scope.looks_at}, not `{key}`",
                    hint,
                    key=True,
                )

    def leaf_references(self, node: dict[str, Any], path: Path) -> None:
        for key, kind in (("counter", "counter"), ("segment", "segment")):
            if _is_name(node.get(key)):
                self.reference((*path, key), kind, node[key])
        level = node.get("friction")
        if not _is_name(level):
            return
        if not self.has_friction:
            self.problem(
                (*path, "friction"),
                f"this journey has no `friction:` section, so `friction: {level}` can never hold",
                "add a `friction:` section with `half_life`, `levels` and `signals` "
                "(see rules/README.md)",
            )
        else:
            self.reference((*path, "friction"), "friction level", level)
        if _is_name(node.get("topic")):
            self.reference((*path, "topic"), "friction topic", node["topic"])

    def comparison_values(self, node: dict[str, Any], path: Path) -> None:
        subjects = [k for k in node if k in SUBJECTS]
        if len(subjects) != 1:
            return
        subject = subjects[0]
        for name in (c for c in COMPARISONS if c in node):
            where, value = (*path, name), node[name]
            if subject == "time":
                self.time_comparison(where, name, value, f"time: {node['time']}")
            elif subject in ("since", "until") and name != "exists":
                self.time_comparison(where, name, value, f"{subject}: {node[subject]}")
            elif name in _ORDERING and duration_or_none(value) is not None:
                hint = "write a number, e.g. `gte: 3`"
                if subject == "counter":
                    hint += "; the counter's `window` already sets the time span"
                self.problem(
                    where,
                    f"`{value}` is a duration; only `time:`, `since:` and `until:` compare "
                    "durations",
                    hint,
                )
            elif name in ("eq", "ne") and _old_boolean(value) and where not in self.tree.quoted:
                self.problem(
                    where,
                    f"`{value}` is read as the word {value!r}, not as true or false",
                    f"write `{name}: true` or `{name}: false` for a yes/no value; if you "
                    f'mean the word, quote it: `{name}: "{value}"`',
                )
            elif subject == "counter" and not _counter_value(name, value):
                self.problem(
                    where,
                    f"a counter holds a number, not {_shown(value)}",
                    f"write a number, e.g. `{name}: 3`",
                )

    def time_comparison(self, where: Path, name: str, value: Any, measure: str) -> None:
        if name not in _ORDERING:
            also = ", or `exists`" if measure.startswith(("since", "until")) else ""
            self.problem(
                where,
                f"`{measure}` can only be compared with gt, gte, lt or lte{also}",
                f"write e.g. `gte: 2d` instead of `{name}:`",
                key=True,
            )
        elif _numeric(value):
            number = f"{float(value):g}"
            hint = f"add a unit: `{name}: {number}m`, `{number}h` or `{number}d`"
            self.problem(
                where, f"`{measure}` is compared with a duration, not {_shown(value)}", hint
            )

    # -- sections ------------------------------------------------------------------------------

    def stages(self, stages: Any) -> None:
        self.unique("stage", [(("stages", i, "id"), e.get("id")) for i, e in _entries(stages)])

    def segments(self, segments: Any) -> None:
        for name, segment in _named(segments):
            self.condition(segment.get("when"), ("segments", name, "when"), SEGMENT_SCOPE)

    def counters(self, counters: Any) -> None:
        for name, counter in _named(counters):
            path: Path = ("counters", name)
            self.condition(counter.get("when"), (*path, "when"), COUNTER_SCOPE)
            self.precision(path, counter.get("window"), counter.get("precision"))

    def goals(self, goals: Any) -> None:
        for name, goal in _named(goals):
            self.condition(goal.get("when"), ("goals", name, "when"), GOAL_SCOPE)

    def arbitration(self, data: dict[str, Any]) -> None:
        """Adaptive arbitration learns a goal's rate: it needs a goal, and a named one exists."""
        if _is_name(data.get("adaptive_goal")):
            self.reference(("adaptive_goal",), "goal", data["adaptive_goal"])
        if data.get("goals"):
            return
        adaptive: list[Path] = [("arbitration",)] if data.get("arbitration") == "adaptive" else []
        adaptive += [
            ("actions", i, "arbitration")
            for i, action in _entries(data.get("actions"))
            if action.get("arbitration") == "adaptive"
        ]
        for path in adaptive:
            self.problem(
                path,
                "adaptive arbitration learns which action reaches a goal, and this journey "
                "has no `goals:`",
                "declare a goal (e.g. `goals: {click: {when: {response: click}, window: 1d}}`) "
                "or write `arbitration: priority`",
            )

    def precision(self, path: Path, window: Any, precision: Any) -> None:
        """The bucket width: at most the window, at most 64 buckets, and dividing the window, so
        that an event counts for between `window - precision` and `window` as documented."""
        window_ms, width_ms = duration_or_none(window), duration_or_none(precision)
        if window_ms is None or width_ms is None:
            return
        where, buckets = (*path, "precision"), -(-window_ms // width_ms)
        if width_ms > window_ms:
            self.problem(
                where,
                f"the precision ({precision}) is longer than the window ({window})",
                f"write a precision of at most `{window}`, e.g. "
                f"`{fitting_precision(window_ms, window_ms // 8)}`",
            )
        elif buckets > MAX_COUNTER_BUCKETS:
            self.problem(
                where,
                f"a precision of {precision} cuts the {window} window into "
                f"{buckets} buckets; at most {MAX_COUNTER_BUCKETS} are allowed",
                f"write a coarser precision, e.g. `{fitting_precision(window_ms, width_ms)}`",
            )
        elif window_ms % width_ms:
            self.problem(
                where,
                f"a precision of {precision} does not divide the {window} window "
                f"evenly: events would count for up to {nice_duration(buckets * width_ms)}",
                "write a precision that divides the window, e.g. "
                f"`{fitting_precision(window_ms, width_ms)}`",
            )

    def friction(self, friction: Any) -> None:
        if not isinstance(friction, dict):
            return
        self.levels(friction.get("levels"))
        signals = _entries(friction.get("signals"))
        self.unique("signal", [(("friction", "signals", i, "id"), s.get("id")) for i, s in signals])
        for i, signal in signals:
            self.condition(signal.get("when"), ("friction", "signals", i, "when"), SIGNAL_SCOPE)

    def levels(self, levels: Any) -> None:
        if not isinstance(levels, dict) or not levels:
            return
        items = list(levels.items())
        first, start = items[0]
        if _is_number(start) and start != 0:
            self.problem(
                ("friction", "levels", first),
                f"the first friction level, `{first}`, starts at {start:g}; it must start at 0",
                f"write `{first}: 0`: a customer without friction is at the first level",
            )
        for (low, low_value), (high, high_value) in zip(items, items[1:], strict=False):
            # a negative threshold is the model's to report
            if _is_number(low_value) and _is_number(high_value) and 0 <= high_value <= low_value:
                self.problem(
                    ("friction", "levels", high),
                    f"friction level `{high}` ({high_value:g}) is not above "
                    f"`{low}` ({low_value:g})",
                    "list the levels from lowest to highest, each threshold above the one before",
                )

    def transitions(self, transitions: Any) -> None:
        entries = _entries(transitions)
        for i, transition in entries:
            path: Path = ("transitions", i)
            self.stage_list((*path, "from"), transition.get("from"))
            if _is_name(transition.get("to")):
                self.reference((*path, "to"), "stage", transition["to"])
            if "when" in transition and transition["when"] is None:
                self.problem(
                    (*path, "when"),
                    "`when` has no value",
                    "indent the lines that belong to `when:` by two more spaces than `when:`",
                    key=True,
                )
            timed = "after" in transition or "idle" in transition
            self.condition(transition.get("when"), (*path, "when"), TIMER_SCOPE if timed else None)
        self.unique("transition", [(("transitions", i, "id"), t.get("id")) for i, t in entries])
        stages = self.names["stage"] or []
        self.problems += timer_problems(self.tree, entries, stages)
        self.problems += never_fire_problems(self.tree, entries, stages)

    def actions(self, actions: Any) -> None:
        entries = _entries(actions)
        self.unique("action", [(("actions", i, "id"), a.get("id")) for i, a in entries])
        for i, action in entries:
            path: Path = ("actions", i)
            self.stage_list((*path, "stages"), action.get("stages", "*"))
            segments = action.get("segments")
            for j, segment in enumerate(segments if isinstance(segments, list) else []):
                if _is_name(segment):
                    self.reference((*path, "segments", j), "segment", segment)
            self.condition(action.get("when"), (*path, "when"), None)
            for j, boost in _entries(action.get("boosts")):
                self.condition(boost.get("when"), (*path, "boosts", j, "when"), None)


def _counter_value(comparison: str, value: Any) -> bool:
    """Whether a counter, always a number, can ever equal `value` (ordering comparisons take
    numbers already, or explain.py reports them)."""
    return comparison not in ("eq", "ne") or _is_number(value)


def _numeric(value: Any) -> bool:
    """A number, or text the model reads as one (`"60"`)."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return _is_number(value)


def fitting_precision(window_ms: int, wanted_ms: int) -> str:
    """A precision that divides the window into at most MAX_COUNTER_BUCKETS buckets, close to
    `wanted_ms` and in the same unit where possible (`10d` window, `3d` wanted → `2d`)."""
    unit_ms = next(size for size in _UNIT_SIZES if wanted_ms % size == 0)
    widths = [window_ms // n for n in range(1, MAX_COUNTER_BUCKETS + 1) if window_ms % n == 0]
    best = min(widths, key=lambda w: (w % unit_ms != 0, abs(math.log(w / max(wanted_ms, 1)))))
    return nice_duration(best)


def check_journey(tree: YamlTree) -> list[RuleProblem]:
    """Every reference and meaning problem in the journey read into `tree`; empty when sound."""
    data = tree.data
    if not isinstance(data, dict):
        return []
    checker = _Checker(tree, _defined_names(data), has_friction=data.get("friction") is not None)
    checker.stages(data.get("stages"))
    checker.segments(data.get("segments"))
    checker.counters(data.get("counters"))
    checker.friction(data.get("friction"))
    checker.goals(data.get("goals"))
    checker.arbitration(data)
    checker.transitions(data.get("transitions"))
    checker.actions(data.get("actions"))
    return checker.problems
