"""A large generated journey, a deterministic benchmark input.

`generate_journey()` writes the YAML text of one journey with 200 rules (60 transitions, 80 actions,
20 counters, 20 friction signals, 20 segments) over 10 stages, with nested `all`/`any`/`not`
conditions. It loads through `engine.rules.load.parse_journeys` like a marketer's file. It uses a
seeded `random.Random`: the same arguments give the same text on every machine. Its conditions are
written in the vocabulary of the simulated shoppers (`benchmarks.traffic`).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML

from benchmarks.traffic import CATEGORIES, CHANNELS, EVENT_TYPES, REGIONS, TIERS, TOUCHPOINTS

LEVELS = {"low": 0, "medium": 3, "high": 6, "critical": 10}
# (window, precision): at most 30 buckets, well under the 64 a counter may have.
WINDOWS = (("1h", "5m"), ("1d", "1h"), ("7d", "1d"), ("30d", "1d"), ("90d", "10d"), ("52w", "4w"))

Node = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RulesShape:
    """How many of each rule the generated journey has (at least one of each)."""

    stages: int = 10
    transitions: int = 60
    actions: int = 80
    counters: int = 20
    signals: int = 20
    segments: int = 20
    depth: int = 3  # how deeply `all`/`any`/`not` may nest

    @property
    def n_rules(self) -> int:
        return self.transitions + self.actions + self.counters + self.signals + self.segments


class _Conditions:
    """Random conditions of the three kinds the rules language allows in each place."""

    def __init__(self, rng: random.Random, shape: RulesShape) -> None:
        self.rng = rng
        self.counters = [f"counter_{i:02d}" for i in range(shape.counters)]
        self.segments = [f"segment_{i:02d}" for i in range(shape.segments)]
        self.depth = shape.depth

    def _some(self, values: tuple[str, ...], most: int = 3) -> list[str]:
        return self.rng.sample(values, self.rng.randint(1, most))

    def event_leaf(self) -> Node:
        rng = self.rng
        pick = rng.randrange(7)
        if pick == 0:
            return {"event": self._some(EVENT_TYPES)}
        if pick == 1:
            return {"channel": rng.choice(CHANNELS)}
        if pick == 2:
            return {"touchpoint": self._some(TOUCHPOINTS, 2)}
        if pick == 3:
            return {
                "event": "page_view",
                "property": "load_ms",
                "gt": rng.choice((2000, 3000, 5000)),
            }
        if pick == 4:
            return {"event": "purchase", "property": "amount", "gte": rng.randint(20, 300)}
        if pick == 5:
            return {"property": "category", "in": self._some(CATEGORIES, 2)}
        return {"event": rng.choice(EVENT_TYPES)}

    def trait_leaf(self) -> Node:
        rng = self.rng
        pick = rng.randrange(6)
        if pick == 0:
            return {"trait": "tier", "in": self._some(TIERS, 2)}
        if pick == 1:
            return {"trait": "age", "gte": rng.randint(18, 70)}
        if pick == 2:
            return {"trait": "email_opt_in", "eq": True}
        if pick == 3:
            return {"trait": "region", "eq": rng.choice(REGIONS)}
        if pick == 4:
            return {"trait": "ltv", "gt": rng.randint(50, 2000)}
        return {"trait": "has_ordered", "exists": True}

    def journey_leaf(self) -> Node:
        rng = self.rng
        pick = rng.randrange(8)
        if pick <= 1:
            return {"counter": rng.choice(self.counters), "gte": rng.randint(1, 5)}
        if pick == 2:
            return {"time": "idle", "gte": rng.choice(("10m", "1h", "2d", "30d"))}
        if pick == 3:
            return {"time": "in_stage", "gte": rng.choice(("5m", "1h", "1d"))}
        if pick == 4:
            return {"segment": rng.choice(self.segments)}
        if pick == 5:
            return {"friction": rng.choice(list(LEVELS)[1:])}
        return self.event_leaf() if pick == 6 else self.trait_leaf()

    def nested(self, kind: str, depth: int | None = None) -> Node:
        """A condition of `kind` (event, trait or journey), nested up to `depth` levels."""
        depth = self.depth if depth is None else depth
        leaf = {"event": self.event_leaf, "trait": self.trait_leaf, "journey": self.journey_leaf}
        if depth == 0 or self.rng.random() < 0.35:
            return leaf[kind]()
        pick = self.rng.randrange(5)
        if pick == 0:
            return {"not": self.nested(kind, depth - 1)}
        key = "all" if pick <= 2 else "any"
        return {key: [self.nested(kind, depth - 1) for _ in range(self.rng.randint(2, 3))]}


def _stage_pick(rng: random.Random, stages: list[str]) -> str | list[str]:
    if rng.random() < 0.15:
        return "*"
    chosen = rng.sample(stages, rng.randint(1, min(3, len(stages))))
    return chosen[0] if len(chosen) == 1 else chosen


def _counters(conditions: _Conditions) -> dict[str, Node]:
    rng = conditions.rng
    counters: dict[str, Node] = {}
    for name in conditions.counters:
        window, precision = rng.choice(WINDOWS)
        counter: Node = {"when": conditions.nested("event", 2), "window": window}
        if rng.random() < 0.2:
            counter["sum"] = "amount"
        counters[name] = counter | {"precision": precision}
    return counters


def _friction(conditions: _Conditions, n_signals: int) -> Node:
    rng = conditions.rng
    signals = [
        {"id": f"signal_{i:02d}", "when": conditions.nested("event", 2),
         "weight": rng.choice((0.5, 1, 2, 4))}
        for i in range(n_signals)
    ]  # fmt: skip
    return {"half_life": "30m", "levels": dict(LEVELS), "signals": signals}


def _transitions(conditions: _Conditions, stages: list[str], count: int) -> list[Node]:
    rng = conditions.rng
    transitions = []
    for i in range(count):
        target = rng.choice(stages)
        source = _stage_pick(rng, [s for s in stages if s != target])
        transitions.append(
            {"id": f"transition_{i:02d}", "from": source, "to": target,
             "when": conditions.nested("journey")}
        )  # fmt: skip
    return transitions


def _action(conditions: _Conditions, index: int, stages: list[str]) -> Node:
    rng = conditions.rng
    action: Node = {"id": f"action_{index:02d}", "stages": _stage_pick(rng, stages)}
    if rng.random() < 0.3:
        action["segments"] = rng.sample(
            conditions.segments, min(rng.randint(1, 2), len(conditions.segments))
        )
    if rng.random() < 0.85:
        action["when"] = conditions.nested("journey")
    action["priority"] = rng.randint(0, 100)
    action["boosts"] = [
        {"when": conditions.nested("journey", 1), "add": rng.randint(5, 40)}
        for _ in range(rng.randint(0, 2))
    ]
    if rng.random() < 0.6:
        action["cooldown"] = rng.choice(("10m", "1h", "1d", "7d"))
    if rng.random() < 0.4:
        action["cap"] = {"count": rng.randint(1, 5), "per": rng.choice(("1d", "7d", "30d"))}
    action["holdout"] = rng.choice((0, 0, 0, 5, 10))
    action["content"] = {"banner": f"banner_{index:02d}"}
    return action


def journey_data(shape: RulesShape = RulesShape(), seed: int = 0) -> Node:
    """The generated journey as plain data (what its YAML text holds)."""
    rng = random.Random(seed)
    conditions = _Conditions(rng, shape)
    stages = [f"stage_{i}" for i in range(shape.stages)]
    return {
        "journey": "generated",
        "version": f"bench.{seed}",
        "description": f"{shape.n_rules} generated rules for benchmarks",
        "top_k": 3,
        "stages": [{"id": stage} for stage in stages],
        "segments": {name: {"when": conditions.nested("trait", 2)} for name in conditions.segments},
        "counters": _counters(conditions),
        "friction": _friction(conditions, shape.signals),
        "transitions": _transitions(conditions, stages, shape.transitions),
        "actions": [_action(conditions, i, stages) for i in range(shape.actions)],
    }


def generate_journey(shape: RulesShape = RulesShape(), seed: int = 0) -> str:
    """The YAML text of a journey with `shape.n_rules` rules; the same for the same arguments."""
    yaml = YAML()
    yaml.default_flow_style = False
    text = io.StringIO()
    yaml.dump(journey_data(shape, seed), text)
    return text.getvalue()
