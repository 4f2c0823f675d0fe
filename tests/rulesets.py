"""The real rules in `rules/`, loaded once per test session, and small helpers to build events."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from engine.compile import Ruleset, compile_ruleset
from engine.event import Event, PropertyValue
from engine.rules.load import LoadedJourney, parse_journey

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
T0_MS = 1_767_600_000_000  # 2026-01-05T08:00:00Z


def loaded(name: str) -> LoadedJourney:
    path = RULES_DIR / name
    return parse_journey(path.read_text(encoding="utf-8"), str(path))


@cache
def retail() -> Ruleset:
    return compile_ruleset([loaded("retail.yaml")])


def from_text(*texts: str) -> Ruleset:
    return compile_ruleset([parse_journey(t, f"test{i}.yaml") for i, t in enumerate(texts)])


_counter = 0


def event(
    type_: str,
    customer: str = "c1",
    *,
    channel: str = "web",
    touchpoint: str = "",
    event_id: str | None = None,
    **properties: PropertyValue,
) -> Event:
    """An event with a fresh id unless one is given."""
    global _counter
    _counter += 1
    return Event(event_id or f"e{_counter}", customer, type_, channel, touchpoint, properties)


# A timer that moves the customer into a stage whose own `idle:` timer is due the same instant:
# `waited` fires 30 minutes after the last event, and by then `lapsed`'s 10 quiet minutes have
# passed too.
CHAINED_TIMERS = """
journey: chained
version: 1
stages: [{id: browsing}, {id: waiting}, {id: lapsed}]
transitions:
  - {id: waited, from: browsing, to: waiting, after: 30m}
  - {id: lapsed, from: waiting, to: lapsed, idle: 10m}
"""
