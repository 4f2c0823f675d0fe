"""Rule conditions as ZEN expressions, the language of zen-engine's decision graphs.

Every key of a condition becomes one boolean expression over the graph's input, with the rules
language's meaning kept where ZEN's differs:

- an order comparison (`gt`, `gte`, `lt`, `lte`) holds only for a number: ZEN raises on
  `null > 3` or `"42" > 3`, so a property or trait is type-tested first (ZEN's `and` stops at the
  first false operand);
- `ne` and `not_in` also hold when the value is missing (`null != "a"` is true in ZEN too);
- text, numbers and yes/no never equal one another (ZEN agrees: `true == 1` is false).

What the expressions read (the names the graph's input and first node provide):
`event.type|channel|touchpoint|properties.<name>`, `traits.<name>`, `counters.<name>` (this event
included), `idle_ms`, the time in stage (`Scope.in_stage_ms`), `friction.rank` (the level's index).
A segment is written out in place as its own condition on traits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine.rules.model import COMPARISONS, Condition, Journey, duration_ms

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ORDER = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a condition is read: its journey (segments, friction levels) and the expression that
    holds the time in stage there (it is 0 right after a transition, for actions and boosts)."""

    journey: Journey
    in_stage_ms: str = "in_stage_ms"


def text(value: str) -> str:
    """A ZEN string literal. ZEN has no escapes in string literals, so the quote is the one the
    text does not contain."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(
        f"{value!r} holds both kinds of quote, which a ZEN string literal cannot; "
        "rename it in the rules to compare it in zen-engine"
    )


def literal(value: Any) -> str:
    """A rules literal (text, number or yes/no) as ZEN source."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return text(value)
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def member(root: str, name: str) -> str:
    """`root.name`, or `root["name"]` where the name is not an identifier."""
    return f"{root}.{name}" if _IDENTIFIER.match(name) else f"{root}[{text(name)}]"


def _named(value: str, names: str | list[str]) -> str:
    if isinstance(names, str):
        return f"{value} == {text(names)}"
    return f"{value} in [{', '.join(text(n) for n in names)}]"


def _comparison(condition: Condition, value: str, *, number: bool, time: bool = False) -> str:
    """The one comparison of `condition` applied to `value`; `number`: the value is always one."""
    name = next(c for c in COMPARISONS if condition.comparison(c) is not None)
    bound = condition.comparison(name)
    if name == "exists":
        return f"{value} {'!=' if bound else '=='} null"
    if name in ("eq", "ne"):
        return f"{value} {'==' if name == 'eq' else '!='} {literal(bound)}"
    if name in ("in", "not_in"):
        listed = f"{value} in [{', '.join(literal(item) for item in bound)}]"
        return listed if name == "in" else f"not ({listed})"
    if time and isinstance(bound, str):
        bound = duration_ms(bound)
    compared = f"{value} {_ORDER[name]} {literal(bound)}"
    return compared if number else f"(type({value}) == 'number' and {compared})"


def _all(parts: list[str], joiner: str) -> str:
    return parts[0] if len(parts) == 1 else joiner.join(f"({part})" for part in parts)


def expression(condition: Condition, scope: Scope) -> str:  # noqa: C901 - one branch per key
    """`condition` as one boolean ZEN expression (every key written must hold)."""
    parts: list[str] = []
    if condition.event is not None:
        parts.append(_named("event.type", condition.event))
    if condition.channel is not None:
        parts.append(_named("event.channel", condition.channel))
    if condition.touchpoint is not None:
        parts.append(_named("event.touchpoint", condition.touchpoint))
    if condition.property is not None:
        value = member("event.properties", condition.property)
        parts.append(_comparison(condition, value, number=False))
    if condition.trait is not None:
        parts.append(_comparison(condition, member("traits", condition.trait), number=False))
    if condition.counter is not None:
        parts.append(_comparison(condition, f"counters.{condition.counter}", number=True))
    if condition.time is not None:
        value = scope.in_stage_ms if condition.time == "in_stage" else "idle_ms"
        parts.append(_comparison(condition, value, number=True, time=True))
    if condition.segment is not None:
        parts.append(expression(scope.journey.segments[condition.segment].when, scope))
    if condition.friction is not None:
        assert scope.journey.friction is not None  # the rules check refuses it otherwise
        rank = list(scope.journey.friction.levels).index(condition.friction)
        parts.append(f"friction.rank >= {rank}")
    if condition.all is not None:
        parts.append(_all([expression(c, scope) for c in condition.all], " and "))
    if condition.any is not None:
        parts.append(_all([expression(c, scope) for c in condition.any], " or "))
    if condition.not_ is not None:
        parts.append(f"not ({expression(condition.not_, scope)})")
    return _all(parts, " and ")
