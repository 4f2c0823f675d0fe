"""What a rules change adds, removes or alters, for review before it ships."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from ruamel.yaml import YAML

from engine.rules.model import Journey, Transition


@dataclass(frozen=True, slots=True)
class Change:
    section: str  # stage, segment, counter, goal, friction signal, transition, action, setting
    name: str
    kind: str  # added, removed, altered
    # For `altered`: "priority: 50 → 60" for a value, or a key's old and new YAML as lines.
    details: tuple[str, ...] = ()

    def __str__(self) -> str:
        mark = {"added": "+", "removed": "-", "altered": "~"}[self.kind]
        head = f"  {mark} {self.section} `{self.name}`"
        if not self.details:
            return head
        if all("\n" not in d for d in self.details):
            return f"{head}: {'; '.join(self.details)}"
        return "\n".join([f"{head}:", *(_indented(d, "      ") for d in self.details)])


def _indented(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


@dataclass(frozen=True, slots=True)
class JourneyDiff:
    journey: str
    old_version: str | None  # None: the journey is new
    new_version: str | None  # None: the journey was removed
    changes: list[Change] = field(default_factory=list)

    def lines(self) -> list[str]:
        old, new = self.old_version or "(none)", self.new_version or "(removed)"
        head = f"journey {self.journey}: {old} → {new}"
        return [head, *(str(c) for c in self.changes)] if self.changes else [f"{head}: no change"]


def _plain(value: Any) -> Any:
    """Plain data as written: `gte: 1`, not the model's `gte: 1.0`."""
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _yaml(value: Any) -> str:
    """A value as it would be written in a journey file."""
    writer = YAML(typ="safe", pure=True)
    writer.default_flow_style = False
    writer.width = 96
    writer.sort_base_mapping_type_on_output = False  # type: ignore[assignment]  # as written
    out = _Text()
    writer.dump(_plain(value), out)
    return "".join(out.parts).removesuffix("...\n").rstrip("\n")


class _Text:
    """Where the YAML writer writes: a string in parts, no file."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.encoding = "utf-8"  # so that the writer hands over text, not bytes

    def write(self, text: str) -> None:
        self.parts.append(text)


def _shown(value: Any) -> str:
    plain = _plain(value)
    if plain is None:
        return "(none)"
    if isinstance(plain, list) and not any(isinstance(v, dict | list) for v in plain):
        return "[" + ", ".join(_yaml(v) for v in plain) + "]"  # as a list of stages is written
    return _yaml(plain)


def _change(key: str | None, old: Any, new: Any) -> str:
    """One key's change: inline for a value, old and new YAML for a condition or a list."""
    before, after = _shown(old), _shown(new)
    label = f"{key}: " if key else ""
    if "\n" not in before + after and len(before) + len(after) <= 60:
        return f"{label}{before} → {after}"
    name = f"{key} " if key else ""
    return f"{name}was:\n{_indented(before, '  ')}\n{name}now:\n{_indented(after, '  ')}"


def _altered(old: BaseModel, new: BaseModel) -> tuple[str, ...]:
    before = old.model_dump(by_alias=True, exclude_none=True)
    after = new.model_dump(by_alias=True, exclude_none=True)
    return tuple(
        _change(key, before.get(key), after.get(key))
        for key in dict.fromkeys([*before, *after])
        if before.get(key) != after.get(key)
    )


def _section(
    section: str, old: Mapping[str, BaseModel], new: Mapping[str, BaseModel]
) -> list[Change]:
    changes = [Change(section, name, "removed") for name in old if name not in new]
    for name, model in new.items():
        if name not in old:
            changes.append(Change(section, name, "added"))
        elif details := _altered(old[name], model):
            changes.append(Change(section, name, "altered", details))
    return changes


def _transition_name(transition: Transition) -> str:
    source = transition.from_ if isinstance(transition.from_, str) else ",".join(transition.from_)
    return transition.id or f"{source} → {transition.to}"


def _named(journey: Journey) -> dict[str, dict[str, BaseModel]]:
    signals = journey.friction.signals if journey.friction else []
    return {
        "stage": {s.id: s for s in journey.stages},
        "segment": dict(journey.segments),
        "counter": dict(journey.counters),
        "goal": dict(journey.goals),
        "friction signal": {s.id: s for s in signals},
        "transition": {_transition_name(t): t for t in journey.transitions},
        "action": {a.id: a for a in journey.actions},
    }


def _settings(journey: Journey) -> dict[str, Any]:
    """The journey-wide settings a reviewer cares about, besides the named entries."""
    friction = journey.friction.model_dump(exclude={"signals"}) if journey.friction else None
    return {
        "top_k": journey.top_k, "friction": friction, "arbitration": journey.arbitration,
        "adaptive_goal": journey.adaptive_goal, "stall_after": journey.stall_after,
    }  # fmt: skip


def diff_journey(name: str, old: Journey | None, new: Journey | None) -> JourneyDiff:
    """The changes from `old` to `new` (either may be None: a journey added or removed)."""
    diff = JourneyDiff(name, str(old.version) if old else None, str(new.version) if new else None)
    if old is None or new is None:
        return diff
    before, after = _named(old), _named(new)
    for section in before:
        diff.changes.extend(_section(section, before[section], after[section]))
    kept_order = [s.id for s in old.stages if s.id in after["stage"]]
    if kept_order != [s.id for s in new.stages if s.id in before["stage"]]:
        diff.changes.append(Change("stage", "order", "altered", ("the stages were reordered",)))
    old_settings, new_settings = _settings(old), _settings(new)
    for key, value in new_settings.items():
        if value != old_settings[key]:
            details = (_change(None, old_settings[key], value),)
            diff.changes.append(Change("setting", key, "altered", details))
    return diff


def diff_rulesets(old: list[Journey], new: list[Journey]) -> list[JourneyDiff]:
    """Journey by journey (matched by name), every change from `old` to `new`."""
    before = {j.journey: j for j in old}
    after = {j.journey: j for j in new}
    names = list(dict.fromkeys([*before, *after]))
    return [diff_journey(name, before.get(name), after.get(name)) for name in names]
