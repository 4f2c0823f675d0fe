"""Short, readable renderings of conditions, for reasons and explanations."""

from __future__ import annotations

from engine.rules.model import COMPARISONS, Condition

_SYMBOLS = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _comparison(subject: str, condition: Condition) -> str:
    for name in COMPARISONS:
        value = condition.comparison(name)
        if value is None:
            continue
        if name == "exists":
            return f"{subject} {'exists' if value else 'is missing'}"
        if name in ("in", "not_in"):
            return f"{subject} {'in' if name == 'in' else 'not in'} {_value(value)}"
        return f"{subject} {_SYMBOLS[name]} {_value(value)}"
    return subject


def describe_condition(condition: Condition) -> str:
    """One line that says what `condition` requires, e.g. `event = purchase and spend_90d ≥ 100`."""
    parts: list[str] = []
    for key in ("event", "channel", "touchpoint", "response"):
        value = getattr(condition, key)
        if value is not None:
            parts.append(f"{key} = {value}" if isinstance(value, str) else f"{key} in {value}")
    for key in ("property", "trait", "counter", "time", "since", "until"):
        subject = getattr(condition, key)
        if subject is not None:
            named = f"{key} {subject}" if key in ("time", "since", "until") else subject
            parts.append(_comparison(named, condition))
    if condition.segment is not None:
        parts.append(f"segment {condition.segment}")
    if condition.friction is not None:
        topic = "" if condition.topic is None else f" on {condition.topic}"
        parts.append(f"friction{topic} ≥ {condition.friction}")
    if condition.all is not None:
        parts.extend(f"({describe_condition(c)})" for c in condition.all)
    if condition.any is not None:
        parts.append("(" + " or ".join(describe_condition(c) for c in condition.any) + ")")
    if condition.not_ is not None:
        parts.append(f"not ({describe_condition(condition.not_)})")
    return " and ".join(parts) if parts else "always"
