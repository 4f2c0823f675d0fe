"""What a service built on zen-engine keeps per customer, and one event through it.

zen-engine evaluates a decision graph on the JSON it is handed and remembers nothing between
calls, so everything that depends on a customer's past lives here, in plain Python, and reaches
the graph (`benchmarks.engine.zen.jdm`) as input; the graph's answer is then written back:

- the customer's clock (it never runs backwards) → fed as `idle_ms` and `in_stage_ms`;
- the stage and when it was entered → fed as `stage`; written back from `transition.to`;
- each counter's time buckets (one total per bucket, as the engine keeps them) → fed as
  `counters_before.<name>`, the window's total without this event; written back from
  `counted.<name>`, what this event adds;
- each friction signal's score → fed as `friction_decayed`, the scores decayed to now and added
  up; written back from `fired.<id>`, which signals this event is;
- when each action was offered → fed as `blocked.<id>`: in cooldown or capped now.

The event and the customer's traits are fed as `event` and `traits`; the graph answers the
eligible actions with their scores (`eligible`).

Ranking the eligible actions (score, then file order), the top `top_k`, the holdout draws and
remembering what was offered are done here too, by the same rules as the engine.

The graph is evaluated with `ZenEngine.evaluate(key, input)` from a static loader, zen-engine's
fast path: on the same inputs it took about 40 µs a call where `create_decision(...).evaluate`,
the README's first example, took 200 to 1,200 µs (`benchmarks.engine.peer_zen` measures both).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import zen

from benchmarks.engine.zen.jdm import journey_graph
from engine.compile import counter_buckets
from engine.rules.model import Journey, duration_ms
from engine.state import customer_hash

if TYPE_CHECKING:
    from engine.event import Event, PropertyValue

GRAPH_KEY = "journey"  # the graph's name in the engine's static loader
_UINT64 = 2**64 - 1
_HOLDOUT_SCALE = 10_000  # holdout draws are in basis points, as in the engine


class _Counter(NamedTuple):
    name: str
    width_ms: int
    n_buckets: int


class _Limits(NamedTuple):
    """What bounds how often an action is offered, and who is held out of it."""

    id: str
    cooldown_ms: int
    cap_count: int
    cap_per_ms: int
    holdout_basis_points: int
    salt: int


@dataclass(slots=True)
class CustomerMemory:
    """One customer's past, as this service keeps it between events."""

    stage: str
    stage_entered_ms: int | None = None
    last_event_ms: int | None = None
    friction_at_ms: int | None = None
    signal_scores: list[float] = field(default_factory=list)  # per signal, in file order
    buckets: list[dict[int, float]] = field(default_factory=list)  # per counter: epoch -> total
    last_shown_ms: dict[str, int] = field(default_factory=dict)
    shows_ms: dict[str, list[int]] = field(default_factory=dict)  # the last `cap.count` offers


@dataclass(frozen=True, slots=True)
class ZenOutcome:
    """Where one event left the customer, by the zen-engine twin."""

    stage: str
    transition: str | None
    eligible: frozenset[str]
    offered: tuple[str, ...]
    held_out: tuple[str, ...]


def _salt(journey: str, action: str) -> int:
    digest = hashlib.blake2b(f"{journey}/{action}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _holdout_draw(customer_seed: int, salt: int) -> int:
    """splitmix64 of `customer_seed ^ salt`, in [0, 10 000): the engine's draw."""
    z = ((customer_seed ^ salt) + 0x9E3779B97F4A7C15) & _UINT64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _UINT64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _UINT64
    return (z ^ (z >> 31)) % _HOLDOUT_SCALE


def _limits(journey: Journey) -> list[_Limits]:
    return [
        _Limits(
            id=action.id,
            cooldown_ms=duration_ms(action.cooldown) if action.cooldown else 0,
            cap_count=action.cap.count if action.cap else 0,
            cap_per_ms=duration_ms(action.cap.per) if action.cap else 0,
            holdout_basis_points=round(action.holdout * (_HOLDOUT_SCALE // 100)),
            salt=_salt(journey.journey, action.id),
        )
        for action in journey.actions
    ]


def _window_total(buckets: dict[int, float], counter: _Counter, clock_ms: int) -> float:
    """Drop the buckets that left the window; add up the rest in the order of the engine's ring
    of buckets, so that sums of amounts round alike."""
    current = clock_ms // counter.width_ms
    for epoch in [e for e in buckets if e <= current - counter.n_buckets]:
        del buckets[epoch]
    n_buckets = counter.n_buckets
    return sum(buckets[e] for e in sorted(buckets, key=lambda e: e % n_buckets))


class ZenJourney:
    """One journey evaluated by zen-engine, with the per-customer memory kept in Python."""

    def __init__(self, journey: Journey, top_k: int) -> None:
        self.journey = journey
        self.top_k = top_k
        self.graph = journey_graph(journey)
        self.engine = zen.ZenEngine(
            {"loader": {"type": "static", "content": {GRAPH_KEY: self.graph}}}
        )
        self.counters = [
            _Counter(name, *counter_buckets(c.window, c.precision))
            for name, c in journey.counters.items()
        ]
        friction = journey.friction
        self.signals = [(s.id, s.weight) for s in friction.signals] if friction else []
        self.half_life_ms = duration_ms(friction.half_life) if friction else 1
        self.limits = _limits(journey)
        self.action_order = {action.id: i for i, action in enumerate(journey.actions)}

    def new_memory(self) -> CustomerMemory:
        """A customer the service has never seen."""
        return CustomerMemory(
            stage=self.journey.stages[0].id,
            signal_scores=[0.0] * len(self.signals),
            buckets=[{} for _ in self.counters],
        )

    def step(
        self,
        memory: CustomerMemory,
        event: Event,
        traits: Mapping[str, PropertyValue],
        now_ms: int,
    ) -> ZenOutcome:
        """One event, as a service would handle it: prepare the input, evaluate, write back."""
        context, clock_ms = self.prepare(memory, event, traits, now_ms)
        return self.apply(memory, event.customer_id, clock_ms, self.evaluate(context))

    def evaluate(self, context: dict[str, Any]) -> dict[str, Any]:
        """zen-engine's answer for one input (see `prepare`)."""
        answer: dict[str, Any] = self.engine.evaluate(GRAPH_KEY, context)["result"]
        return answer

    def prepare(
        self,
        memory: CustomerMemory,
        event: Event,
        traits: Mapping[str, PropertyValue],
        now_ms: int,
    ) -> tuple[dict[str, Any], int]:
        """The graph's input for `event` at `now_ms`, and the customer's clock for it."""
        last_ms = memory.last_event_ms
        clock_ms = now_ms if last_ms is None else max(now_ms, last_ms)
        if memory.stage_entered_ms is None:
            memory.stage_entered_ms = clock_ms
        context: dict[str, Any] = {
            "event": {
                "type": event.type,
                "channel": event.channel,
                "touchpoint": event.touchpoint,
                "properties": dict(event.properties),
            },
            "traits": dict(traits),
            "stage": memory.stage,
            "idle_ms": 0 if last_ms is None else clock_ms - last_ms,
            "in_stage_ms": clock_ms - memory.stage_entered_ms,
            "counters_before": {
                counter.name: _window_total(buckets, counter, clock_ms)
                for counter, buckets in zip(self.counters, memory.buckets, strict=True)
            },
            "blocked": {
                limits.id: self._blocked(memory, limits, clock_ms) for limits in self.limits
            },
        }
        if self.signals:
            context["friction_decayed"] = self._decay(memory, clock_ms)
        return context, clock_ms

    def _decay(self, memory: CustomerMemory, clock_ms: int) -> float:
        """Decay every signal's score to `clock_ms` (as the engine does) and add them up."""
        since_ms = memory.friction_at_ms
        elapsed_ms = 0 if since_ms is None else clock_ms - since_ms
        factor = 0.5 ** (elapsed_ms / self.half_life_ms) if elapsed_ms > 0 else 1.0
        memory.signal_scores = [score * factor for score in memory.signal_scores]
        memory.friction_at_ms = clock_ms
        return sum(memory.signal_scores)

    @staticmethod
    def _blocked(memory: CustomerMemory, limits: _Limits, clock_ms: int) -> bool:
        last_ms = memory.last_shown_ms.get(limits.id)
        if limits.cooldown_ms and last_ms is not None and clock_ms - last_ms < limits.cooldown_ms:
            return True
        if not limits.cap_count:
            return False
        since_ms = clock_ms - limits.cap_per_ms
        shows = sum(1 for shown_ms in memory.shows_ms.get(limits.id, ()) if shown_ms > since_ms)
        return shows >= limits.cap_count

    def apply(
        self, memory: CustomerMemory, customer_id: str, clock_ms: int, result: Mapping[str, Any]
    ) -> ZenOutcome:
        """Write the graph's answer back into `memory`; rank, hold out and record the offers."""
        counted = result.get("counted", {})
        for counter, buckets in zip(self.counters, memory.buckets, strict=True):
            amount = counted[counter.name]
            if amount:
                epoch = clock_ms // counter.width_ms
                buckets[epoch] = buckets.get(epoch, 0.0) + amount
        fired = result.get("fired", {})
        for index, (signal, weight) in enumerate(self.signals):
            if fired[signal]:
                memory.signal_scores[index] += weight
        transition = result.get("transition") or None
        if transition is not None:
            memory.stage = transition["to"]
            memory.stage_entered_ms = clock_ms
        memory.last_event_ms = clock_ms
        eligible = result.get("eligible") or []
        offered, held_out = self._offer(memory, customer_id, clock_ms, eligible)
        return ZenOutcome(
            stage=memory.stage,
            transition=None if transition is None else transition["id"],
            eligible=frozenset(row["action"] for row in eligible),
            offered=offered,
            held_out=held_out,
        )

    def _offer(
        self,
        memory: CustomerMemory,
        customer_id: str,
        clock_ms: int,
        eligible: list[dict[str, Any]],
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The top `top_k` eligible actions by score (ties: file order), split into offered and
        held out; the offered ones are remembered for cooldowns and caps."""
        order = self.action_order
        ranked = sorted(eligible, key=lambda row: (-row["score"], order[row["action"]]))
        seed = customer_hash(customer_id)
        offered: list[str] = []
        held_out: list[str] = []
        for row in ranked[: self.top_k]:
            limits = self.limits[order[row["action"]]]
            if _holdout_draw(seed, limits.salt) < limits.holdout_basis_points:
                held_out.append(limits.id)
                continue
            offered.append(limits.id)
            memory.last_shown_ms[limits.id] = clock_ms
            if limits.cap_count:
                shows = memory.shows_ms.setdefault(limits.id, [])
                shows.append(clock_ms)
                del shows[: -limits.cap_count]
        return tuple(offered), tuple(held_out)
