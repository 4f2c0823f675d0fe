"""Checks a journey's cross-references and meaning once its shape is valid.

Every problem carries the position of the value at fault and a fix; names that almost match are
suggested ("did you mean `consideration`?").
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.kernels.codes import MAX_COUNTER_BUCKETS
from engine.errors import RuleProblem
from engine.rules.model import COMPARISONS, Condition, Journey, duration_ms
from engine.rules.yaml_tree import Path, YamlTree

# What each kind of condition may look at.
EVENT_KEYS = frozenset({"event", "channel", "touchpoint", "property", "all", "any", "not_"})
TRAIT_KEYS = frozenset({"trait", "all", "any", "not_"})
_ORDERING = ("gt", "gte", "lt", "lte")


def _suggest(name: str, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    if close:
        return f"did you mean `{close[0]}`?"
    return "known names: " + ", ".join(f"`{k}`" for k in known) if known else ""


@dataclass
class _Checker:
    journey: Journey
    tree: YamlTree
    problems: list[RuleProblem] = field(default_factory=list)

    def problem(self, path: Path, message: str, hint: str = "") -> None:
        self.problems.append(self.tree.problem(path, message, hint))

    def reference(self, path: Path, kind: str, name: str, known: Iterable[str]) -> None:
        known = list(known)
        if name not in known:
            self.problem(path, f"unknown {kind} `{name}`", _suggest(name, known))

    def unique(self, kind: str, entries: list[tuple[Path, str]]) -> None:
        seen: set[str] = set()
        for path, name in entries:
            if name in seen:
                self.problem(path, f"{kind} `{name}` is defined twice", f"rename one of the {kind}s")
            seen.add(name)

    # -- conditions ---------------------------------------------------------------------------

    def condition(self, condition: Condition, path: Path, allowed: frozenset[str] | None, role: str) -> None:
        written = {name for name in condition.model_fields_set if getattr(condition, name) is not None}
        if allowed is not None:
            for key in sorted(written - allowed - set(COMPARISONS) - {"in_"}):
                spelled = key.rstrip("_")
                self.problem((*path, spelled), f"{role} can only look at the event itself, not `{spelled}`"
                             if allowed is EVENT_KEYS else f"{role} can only look at traits, not `{spelled}`",
                             "move this test to the transition or action that uses it")  # fmt: skip
        self.leaf_references(condition, path)
        self.comparison_values(condition, path)
        for key in ("all", "any"):
            for i, child in enumerate(getattr(condition, key) or []):
                self.condition(child, (*path, key, i), allowed, role)
        if condition.not_ is not None:
            self.condition(condition.not_, (*path, "not"), allowed, role)

    def leaf_references(self, condition: Condition, path: Path) -> None:
        journey = self.journey
        if condition.counter is not None:
            self.reference((*path, "counter"), "counter", condition.counter, journey.counters)
        if condition.segment is not None:
            self.reference((*path, "segment"), "segment", condition.segment, journey.segments)
        if condition.friction is not None:
            if journey.friction is None:
                self.problem((*path, "friction"), "this journey has no `friction:` section",
                             "add one, with `half_life`, `levels` and `signals`")  # fmt: skip
            else:
                self.reference((*path, "friction"), "friction level", condition.friction,
                               journey.friction.levels)  # fmt: skip

    def comparison_values(self, condition: Condition, path: Path) -> None:
        for name in COMPARISONS:
            value = condition.comparison(name)
            if value is None:
                continue
            where = (*path, name)
            if condition.time is not None:
                if name not in _ORDERING or not isinstance(value, str):
                    self.problem(where, f"`time: {condition.time}` compares with a duration",
                                 "write e.g. `gte: 2d` (also gt, lt, lte)")  # fmt: skip
            elif name in _ORDERING and isinstance(value, str):
                self.problem(where, f"{value!r} is a duration; only `time:` compares with durations",
                             f"write a number, e.g. `{name}: 3`")  # fmt: skip
            elif condition.counter is not None and name in ("eq", "ne") and not _is_number(value):
                self.problem(where, "a counter is a number", f"write a number, e.g. `{name}: 3`")

    # -- sections ------------------------------------------------------------------------------

    def stages(self) -> list[str]:
        ids = [s.id for s in self.journey.stages]
        self.unique("stage", [(("stages", i, "id"), s) for i, s in enumerate(ids)])
        return ids

    def stage_list(self, path: Path, value: str | list[str], stages: list[str]) -> None:
        if value == "*":
            return
        for i, name in enumerate([value] if isinstance(value, str) else value):
            self.reference(path if isinstance(value, str) else (*path, i), "stage", name, stages)

    def counters(self) -> None:
        for name, counter in self.journey.counters.items():
            path: Path = ("counters", name)
            self.condition(counter.when, (*path, "when"), EVENT_KEYS, "a counter")
            if counter.precision is None:
                continue
            window_ms, width_ms = duration_ms(counter.window), duration_ms(counter.precision)
            if width_ms > window_ms:
                self.problem((*path, "precision"), "the precision is longer than the window",
                             f"write a precision of at most `{counter.window}`")  # fmt: skip
            elif -(-window_ms // width_ms) > MAX_COUNTER_BUCKETS:
                self.problem((*path, "precision"),
                             f"this makes more than {MAX_COUNTER_BUCKETS} buckets for the window",
                             f"write a coarser precision, at least 1/{MAX_COUNTER_BUCKETS} of the window")  # fmt: skip

    def friction(self) -> None:
        friction = self.journey.friction
        if friction is None:
            return
        thresholds = list(friction.levels.values())
        if thresholds[0] != 0:
            first = next(iter(friction.levels))
            self.problem(("friction", "levels", first), "the first friction level must start at 0",
                         f"write `{first}: 0` (the level of a customer with no friction)")  # fmt: skip
        for (name, value), previous in zip(list(friction.levels.items())[1:], thresholds, strict=False):
            if value <= previous:
                self.problem(("friction", "levels", name), "friction levels must rise in order",
                             f"give `{name}` a threshold above {previous:g}")  # fmt: skip
        self.unique("signal", [(("friction", "signals", i, "id"), s.id) for i, s in enumerate(friction.signals)])
        for i, signal in enumerate(friction.signals):
            self.condition(signal.when, ("friction", "signals", i, "when"), EVENT_KEYS, "a friction signal")

    def transitions(self, stages: list[str]) -> None:
        for i, transition in enumerate(self.journey.transitions):
            path: Path = ("transitions", i)
            self.stage_list((*path, "from"), transition.from_, stages)
            self.reference((*path, "to"), "stage", transition.to, stages)
            self.condition(transition.when, (*path, "when"), None, "a transition")
        named = [(("transitions", i, "id"), t.id) for i, t in enumerate(self.journey.transitions) if t.id]
        self.unique("transition", named)

    def actions(self, stages: list[str]) -> None:
        actions = self.journey.actions
        self.unique("action", [(("actions", i, "id"), a.id) for i, a in enumerate(actions)])
        for i, action in enumerate(actions):
            path: Path = ("actions", i)
            self.stage_list((*path, "stages"), action.stages, stages)
            for j, segment in enumerate(action.segments or []):
                self.reference((*path, "segments", j), "segment", segment, self.journey.segments)
            if action.when is not None:
                self.condition(action.when, (*path, "when"), None, "an action")
            for j, boost in enumerate(action.boosts):
                self.condition(boost.when, (*path, "boosts", j, "when"), None, "a boost")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_journey(journey: Journey, tree: YamlTree) -> list[RuleProblem]:
    """Every reference and meaning problem in `journey`; empty when it is sound."""
    checker = _Checker(journey, tree)
    stages = checker.stages()
    for name, segment in journey.segments.items():
        checker.condition(segment.when, ("segments", name, "when"), TRAIT_KEYS, "a segment")
    checker.counters()
    checker.friction()
    checker.transitions(stages)
    checker.actions(stages)
    return checker.problems
