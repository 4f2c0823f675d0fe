"""What a ruleset did to recorded events, and how two rulesets differ on them: the backtest
behind `journeyman replay`.

`summarize` reads a `ManyDecisions` into counts (final stages, transitions fired, actions offered
and held out, friction levels reached, goal conversions); summaries of partitions of customers
add up (`Summary.merge`), so a log split by `partition_of` can be replayed anywhere and summed.
`compare` lines up the same events decided by two rulesets and finds, per customer, the first
event where their stage or offered actions differ.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.compile import Ruleset
from engine.decide import decide
from engine.decision import Decision
from engine.event import Event
from engine.kernels import codes
from engine.kernels.many import (
    CONVERSION_ACTION,
    CONVERSION_ARM,
    CONVERSION_GOAL,
    CONVERSION_JOURNEY,
)
from engine.many import ManyDecisions
from engine.state import new_state


def partition_of(customer_id: str, partitions: int) -> int:
    """The partition (0 to `partitions - 1`) a customer's events belong to: stable across
    processes, machines and Python versions (blake2b of the id), so every event of a customer
    lands in the same partition wherever the log is split (Dask, Spark, `--workers`)."""
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8, person=b"partition").digest()
    return int.from_bytes(digest, "little") % partitions


@dataclass
class Summary:
    """Counts of one ruleset's replay. Keys are `(journey, name)`; `held_out` and `offered`
    count decisions, `*_customers` count customers; conversions are `(journey, goal, action,
    arm)` with arm `treated` or `control`."""

    events: int = 0
    duplicates: int = 0
    customers: int = 0
    final_stage: Counter[tuple[str, str]] = field(default_factory=Counter)
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    offered: Counter[tuple[str, str]] = field(default_factory=Counter)
    held_out: Counter[tuple[str, str]] = field(default_factory=Counter)
    offered_customers: Counter[tuple[str, str]] = field(default_factory=Counter)
    friction_reached: Counter[tuple[str, str]] = field(default_factory=Counter)  # highest level
    conversions: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    conversion_value: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)

    def merge(self, other: Summary) -> Summary:
        """The summary of both partitions' customers together (partitions share no customer)."""
        merged = Summary(
            self.events + other.events,
            self.duplicates + other.duplicates,
            self.customers + other.customers,
        )
        for name in _COUNTERS:
            setattr(merged, name, getattr(self, name) + getattr(other, name))
        return merged


_COUNTERS = (
    "final_stage", "transitions", "offered", "held_out", "offered_customers",
    "friction_reached", "conversions", "conversion_value",
)  # fmt: skip


def final_stages(many: ManyDecisions) -> dict[str, dict[str, str]]:
    """Each customer's stage per journey after their last event: {customer: {journey: stage}}."""
    last = _last_events(many)
    ruleset = many.ruleset
    stages = many.journeys.stage[last]
    return {
        customer: {
            journey.name: journey.stage_ids[int(stages[c, j])]
            for j, journey in enumerate(ruleset.journeys)
        }
        for c, customer in enumerate(many.batch.customer_ids)
    }


def _last_events(many: ManyDecisions) -> np.ndarray:
    """Each customer's last event (its index), in `customer_ids` order."""
    n = len(many.batch.customer_ids)
    last = np.zeros(n, dtype=np.int64)
    # maximum.at, not `last[customer] = arange`: numpy does not promise which of repeated
    # indices an assignment keeps.
    np.maximum.at(last, many.batch.customer, np.arange(len(many.batch), dtype=np.int64))
    return last


def summarize(many: ManyDecisions) -> Summary:
    """Count what `many` decided."""
    ruleset, per, chosen = many.ruleset, many.journeys, many.chosen
    summary = Summary(
        events=len(many),
        duplicates=int(chosen.duplicate.sum()),
        customers=len(many.batch.customer_ids),
    )
    last = _last_events(many)
    customer = many.batch.customer
    for j, journey in enumerate(ruleset.journeys):
        name = journey.name
        stages = np.bincount(per.stage[last, j], minlength=len(journey.stage_ids))
        _count(summary.final_stage, name, journey.stage_ids, stages)
        fired = per.transition[:, j]
        fired = fired[fired != codes.NO_TRANSITION]
        _count(summary.transitions, name, journey.transition_ids, np.bincount(fired))
        highest = np.full(len(many.batch.customer_ids), -1, dtype=np.int64)
        np.maximum.at(highest, customer, per.level[:, j])
        _count(summary.friction_reached, name, journey.level_names, np.bincount(highest))
    _count_actions(summary, many)
    for row, value in zip(many.conversions.tolist(), many.conversion_values.tolist(), strict=True):
        journey = ruleset.journeys[row[CONVERSION_JOURNEY]]
        arm = "treated" if row[CONVERSION_ARM] == codes.ARM_TREATED else "control"
        key = (
            journey.name, journey.goal_names[row[CONVERSION_GOAL]],
            journey.action_ids[row[CONVERSION_ACTION]], arm,
        )  # fmt: skip
        summary.conversions[key] += 1
        summary.conversion_value[key] += value
    return summary


def _count(
    into: Counter[tuple[str, str]], journey: str, names: Sequence[str], counts: np.ndarray
) -> None:
    for index, count in enumerate(counts.tolist()):
        if count and 0 <= index < len(names):
            into[(journey, names[index])] += count


def _count_actions(summary: Summary, many: ManyDecisions) -> None:
    chosen, ruleset = many.chosen, many.ruleset
    k = chosen.journey.shape[1]
    filled = np.arange(k)[None, :] < chosen.count[:, None]
    customers = np.broadcast_to(many.batch.customer[:, None], filled.shape)
    for j, journey in enumerate(ruleset.journeys):
        in_journey = filled & (chosen.journey == j)
        for held, into in ((False, summary.offered), (True, summary.held_out)):
            picked = in_journey & (chosen.held == held)
            actions = chosen.action[picked]
            _count(into, journey.name, journey.action_ids, np.bincount(actions))
            if not held:
                pairs = np.unique(np.stack([customers[picked], actions]), axis=1)
                per_action = np.bincount(pairs[1], minlength=len(journey.action_ids))
                _count(summary.offered_customers, journey.name, journey.action_ids, per_action)


def offered_ids(many: ManyDecisions, i: int) -> tuple[str, ...]:
    """The actions event `i` offered (not held out), `journey/action`, best first."""
    chosen, ruleset = many.chosen, many.ruleset
    return tuple(
        f"{ruleset.journeys[int(chosen.journey[i, r])].name}/"
        f"{ruleset.journeys[int(chosen.journey[i, r])].action_ids[int(chosen.action[i, r])]}"
        for r in range(int(chosen.count[i]))
        if not chosen.held[i, r]
    )


@dataclass(frozen=True, slots=True)
class Divergence:
    """A customer both rulesets decided differently: the first event where their stage (in a
    journey both have) or offered actions differ, and whether the final stage differs."""

    customer_id: str
    event: int  # index into the replayed events
    final_stage_differs: bool
    offers_differ: bool


def compare(old: ManyDecisions, new: ManyDecisions) -> list[Divergence]:
    """Every customer whose stage or offered actions differ at some event, in order of first
    event. Both must have decided the same events (`decide_many` on one `EventBatch`)."""
    shared = [
        (old_j, new_j)
        for new_j, journey in enumerate(new.ruleset.journeys)
        for old_j, other in enumerate(old.ruleset.journeys)
        if other.name == journey.name
    ]
    n = len(new)
    stage_differs = np.zeros(n, dtype=np.bool_)
    for old_j, new_j in shared:
        old_names = np.array(old.ruleset.journeys[old_j].stage_ids, dtype=object)
        new_names = np.array(new.ruleset.journeys[new_j].stage_ids, dtype=object)
        stage_differs |= (
            old_names[old.journeys.stage[:, old_j]] != new_names[new.journeys.stage[:, new_j]]
        )
    offers_differ = np.zeros(n, dtype=np.bool_)
    for i in _maybe_different_offers(old, new):
        offers_differ[i] = offered_ids(old, i) != offered_ids(new, i)
    customer = new.batch.customer
    last = _last_events(new)
    final_differs = np.zeros(len(new.batch.customer_ids), dtype=np.bool_)
    final_differs[:] = stage_differs[last]
    any_offer = np.zeros(len(new.batch.customer_ids), dtype=np.bool_)
    any_offer[customer[offers_differ]] = True
    first: dict[int, int] = {}
    for i in np.flatnonzero(stage_differs | offers_differ).tolist():
        first.setdefault(int(customer[i]), i)
    return [
        Divergence(new.batch.customer_ids[c], i, bool(final_differs[c]), bool(any_offer[c]))
        for c, i in sorted(first.items(), key=lambda item: item[1])
    ]


def _maybe_different_offers(old: ManyDecisions, new: ManyDecisions) -> Iterable[int]:
    """Events whose chosen rows differ at all (a cheap filter before comparing names)."""
    a, b = old.chosen, new.chosen
    k = min(a.action.shape[1], b.action.shape[1])
    differ = a.count != b.count
    differ |= (a.action[:, :k] != b.action[:, :k]).any(axis=1)
    differ |= (a.held[:, :k] != b.held[:, :k]).any(axis=1)
    differ |= (a.journey[:, :k] != b.journey[:, :k]).any(axis=1)
    if _action_tables(old.ruleset) != _action_tables(new.ruleset):
        # Other rules may number the same actions otherwise: compare every event with offers.
        differ |= (a.count > 0) | (b.count > 0)
    return np.flatnonzero(differ).tolist()


def _action_tables(ruleset: Ruleset) -> list[tuple[str, tuple[str, ...]]]:
    return [(journey.name, journey.action_ids) for journey in ruleset.journeys]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why one event went differently: for the old and the new rules, what each decided
    (stage moves with the transition and its line, offered actions) and, for what only one of
    them did, why the other did not (the transition's failing condition, the action's reason)."""

    customer_id: str
    event_id: str
    event_type: str
    at_ms: int
    event_number: int  # the customer's n-th event (1 = first)
    old: tuple[str, ...]
    new: tuple[str, ...]


ActionLines = Mapping[tuple[str, str], int]  # (journey, action) -> its line in the file


def explain(
    old: Ruleset,
    new: Ruleset,
    events: Sequence[tuple[Event, int]],
    lines: tuple[ActionLines, ActionLines] = ({}, {}),
) -> Explanation:
    """Decide one customer's `events` (the last is where they diverge) under both rulesets with
    `decide()`, and explain the last one; `lines` (old, new) places each action in its file."""
    old_decision, new_decision = _decide_last(old, events), _decide_last(new, events)
    event, at_ms = events[-1]
    return Explanation(
        customer_id=event.customer_id,
        event_id=event.event_id,
        event_type=event.type,
        at_ms=at_ms,
        event_number=len(events),
        old=_story(old_decision, new_decision, lines[0]),
        new=_story(new_decision, old_decision, lines[1]),
    )


def _decide_last(ruleset: Ruleset, events: Sequence[tuple[Event, int]]) -> Decision:
    state = new_state(ruleset)
    decision = None
    for n, (event, at_ms) in enumerate(events):
        decision, state = decide(ruleset, state, event, at_ms, explain=n == len(events) - 1)
    assert decision is not None
    return decision


def _story(this: Decision, other: Decision, action_lines: ActionLines) -> tuple[str, ...]:
    """What `this` decided, and why it did not do what `other` did."""
    lines = []
    others = {o.journey: o for o in other.journeys}
    for outcome in this.journeys:
        if outcome.transition is not None:
            lines.append(
                f"{outcome.journey}: {outcome.previous_stage} → {outcome.stage} by transition "
                f"`{outcome.transition}` (line {outcome.transition_line})"
            )
        else:
            lines.append(f"{outcome.journey}: stays in {outcome.stage}, no transition fired")
        theirs = others.get(outcome.journey)
        if theirs is not None and theirs.transition and theirs.transition != outcome.transition:
            lines.extend(
                f"  `{n.transition}` (line {n.line}) did not fire: {n.reason}"
                for n in this.not_fired
                if n.journey == outcome.journey and n.transition == theirs.transition
            )
    offered = [f"{a.journey}/{a.action}" for a in this.actions]
    lines.append(f"offers: {', '.join(offered) if offered else 'nothing'}")
    mine = {(a.journey, a.action) for a in this.actions}
    for action in other.actions:
        if (action.journey, action.action) in mine:
            continue
        for excluded in this.excluded:
            if (excluded.journey, excluded.action) == (action.journey, action.action):
                detail = f": {excluded.detail}" if excluded.detail else ""
                line = action_lines.get((action.journey, action.action))
                where = f" (line {line})" if line else ""
                lines.append(f"  not `{action.action}`{where}: {excluded.reason}{detail}")
    return tuple(lines)
