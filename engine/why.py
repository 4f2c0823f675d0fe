"""Why a condition does not hold, in a marketer's words: the first part that fails, with the value
seen and the value needed (`counter cart_adds_7d = 0, needs ≥ 1`).

The kernels only answer true or false; this reads the same rules model over the same facts, in
plain Python, after a decision, when an explanation is asked for (`decide(..., explain=True)`,
scenario failures). `tests/property` checks that it agrees with the kernels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from engine.dates import date_ms
from engine.describe import describe_condition
from engine.event import RESPONSE_EVENT_TYPE, RESPONSE_PROPERTY, Event, PropertyValue
from engine.rules.model import Condition, Journey, duration_ms

_SYMBOLS = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}
_SUBJECTS = ("property", "trait", "counter", "time", "since", "until")


@dataclass(frozen=True, slots=True)
class Facts:
    """What a condition can look at, at one moment of a decision in one journey."""

    journey: Journey
    event: Event
    traits: Mapping[str, PropertyValue]
    counters: Mapping[str, float]  # each counter's value after this event
    level: int  # index of the friction level after this event
    in_stage_ms: int
    idle_ms: int
    since_ms: Mapping[str, int]  # per event type `since:` reads: ms since the last one sent
    clock_ms: int = 0  # the journey clock, for `until:` dates
    topic_levels: Mapping[str, int] = field(default_factory=dict)  # friction level per topic


def readable_time(ms: int) -> str:
    """A moment as a person reads it: `2026-01-06 09:00 UTC`."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


_READ_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000))


def readable_duration(ms: int) -> str:
    """A measured time as a person reads it, in its two largest units, rounded down: `8d`,
    `7d 23h`, `59m 30s`; under a second, `0s`."""
    rest = max(0, ms)
    for index, (unit, size) in enumerate(_READ_UNITS):
        if rest >= size or unit == "s":
            text = f"{rest // size}{unit}"
            if index + 1 < len(_READ_UNITS):
                smaller, smaller_size = _READ_UNITS[index + 1]
                remainder = (rest % size) // smaller_size
                text += f" {remainder}{smaller}" if remainder else ""
            return text
    raise AssertionError("the last unit always matches")


def _shown(value: PropertyValue | float | None) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _kind(value: PropertyValue | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else "string"


def _equal(value: PropertyValue | float | None, literal: PropertyValue) -> bool:
    return _kind(value) is not None and _kind(value) == _kind(literal) and value == literal


def _holds(op: str, literal: object, value: PropertyValue | float | None) -> bool:
    if op == "exists":
        return (value is not None) == bool(literal)
    if op in ("eq", "ne"):
        assert isinstance(literal, str | float | int | bool)
        return _equal(value, literal) == (op == "eq")
    if op in ("in", "not_in"):
        assert isinstance(literal, list)
        return any(_equal(value, item) for item in literal) == (op == "in")
    if _kind(value) != "number":
        return False
    assert isinstance(value, int | float) and isinstance(literal, int | float)
    return {
        "gt": value > literal, "gte": value >= literal, "lt": value < literal,
        "lte": value <= literal,
    }[op]  # fmt: skip


def _comparison(condition: Condition) -> tuple[str, object]:
    for op in ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists"):
        literal = condition.comparison(op)
        if literal is not None:
            return op, literal
    raise AssertionError("a validated subject always has one comparison")


def _needs(op: str, literal: object, *, time: bool) -> str:
    if op == "exists":
        return "needs it present" if literal else "needs it missing"
    if op in ("in", "not_in"):
        assert isinstance(literal, list)
        listed = ", ".join(_shown(v) for v in literal)
        return f"needs one of [{listed}]" if op == "in" else f"needs none of [{listed}]"
    shown = literal if time and isinstance(literal, str) else _shown(literal)  # type: ignore[arg-type]
    return f"needs {_SYMBOLS[op]} {shown}"


def _subject_failure(condition: Condition, facts: Facts) -> str | None:
    """The failure of the one subject (property, trait, counter, time or since) of
    `condition`."""
    op, literal = _comparison(condition)
    if condition.until is not None:
        return _until_failure(condition, facts, op, literal)
    if condition.time is not None or condition.since is not None:
        if condition.time is not None:
            name = f"time {condition.time}"
            measured: int | None = (
                facts.in_stage_ms if condition.time == "in_stage" else facts.idle_ms
            )
        else:
            sent = condition.since or ""
            name, measured = f"since {sent}", facts.since_ms.get(sent)
        if isinstance(literal, str):
            literal = float(duration_ms(literal))
        if _holds(op, literal, None if measured is None else float(measured)):
            return None
        needs = _needs(op, condition.comparison(op), time=True)
        shown = "never sent" if measured is None else readable_duration(measured)
        return f"{name} = {shown}, {needs}"
    if condition.property is not None:
        name, value = (
            f"property {condition.property}",
            facts.event.properties.get(condition.property),
        )
    elif condition.trait is not None:
        name, value = f"trait {condition.trait}", facts.traits.get(condition.trait)
    else:
        assert condition.counter is not None
        name, value = f"counter {condition.counter}", facts.counters[condition.counter]
    if _holds(op, literal, value):
        return None
    return f"{name} = {_shown(value)}, {_needs(op, literal, time=False)}"


def _until_failure(condition: Condition, facts: Facts, op: str, literal: object) -> str | None:
    trait = condition.until or ""
    moment = date_ms(facts.traits.get(trait))
    left = None if moment is None else moment - facts.clock_ms
    if isinstance(literal, str):
        literal = float(duration_ms(literal))
    if _holds(op, literal, None if left is None else float(left)):
        return None
    needs = _needs(op, condition.comparison(op), time=True)
    if left is None:
        shown = f"no date (trait {trait} = {_shown(facts.traits.get(trait))})"
    elif left < 0:
        shown = f"passed {readable_duration(-left)} ago"
    else:
        shown = readable_duration(left)
    return f"until {trait} = {shown}, {needs}"


def _named_failure(key: str, wanted: str | Sequence[str], actual: str) -> str | None:
    listed = [wanted] if isinstance(wanted, str) else list(wanted)
    if actual in listed:
        return None
    return f"{key} = {actual or 'none'}, needs {' or '.join(listed)}"


def why_not(condition: Condition, facts: Facts) -> str | None:  # noqa: C901 - one branch per key
    """None when `condition` holds for `facts`; else its first failing part, explained."""
    event = facts.event
    failures: list[str | None] = []
    if condition.event is not None:
        failures.append(_named_failure("event", condition.event, event.type))
    if condition.channel is not None:
        failures.append(_named_failure("channel", condition.channel, event.channel))
    if condition.touchpoint is not None:
        failures.append(_named_failure("touchpoint", condition.touchpoint, event.touchpoint))
    if condition.response is not None:
        said = event.properties.get(RESPONSE_PROPERTY) if event.type == RESPONSE_EVENT_TYPE else ""
        failures.append(_named_failure("response", condition.response, str(said or "")))
    if any(getattr(condition, s) is not None for s in _SUBJECTS):
        failures.append(_subject_failure(condition, facts))
    if condition.segment is not None:
        inner = why_not(facts.journey.segments[condition.segment].when, facts)
        failures.append(None if inner is None else f"not in segment {condition.segment} ({inner})")
    if condition.friction is not None:
        levels = list(facts.journey.friction.levels) if facts.journey.friction else ["low"]
        needed = levels.index(condition.friction)
        topic = condition.topic
        level = facts.level if topic is None else facts.topic_levels.get(topic, 0)
        if level < needed:
            which = "friction" if topic is None else f"friction on {topic}"
            failures.append(f"{which} {levels[level]}, needs {condition.friction} or higher")
    for child in condition.all or []:
        failures.append(why_not(child, facts))
    if condition.any is not None:
        alternatives = [why_not(child, facts) for child in condition.any]
        if all(alternatives):
            failures.append("none of: " + "; ".join(f for f in alternatives if f))
    if condition.not_ is not None and why_not(condition.not_, facts) is None:
        failures.append(f"{describe_condition(condition.not_)} holds, and the rule says `not`")
    return next((f for f in failures if f), None)
