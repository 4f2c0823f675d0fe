"""The journey as its map shows it: the designed stages and transitions of one journey with the
figures the decisions counted (`server.decisions.journey_moves`, `server.store.keys`), read in
one round trip. Also the designed journey alone, for a map drawn without a server.

Definitions (rules/README.md, "The journey map"):
- customers and stalled are now; everything else is summed over the UTC days asked for;
- a transition `from` several stages is one edge from each; its share is the customers who took
  it from that stage over those in the stage at any time in the days (`visits`: those in it
  when the first day began, plus those who entered it since);
- time in stage is read from a histogram of quarter-octave buckets: the median and p90 are the
  upper bound of the bucket holding the nearest-rank quantile.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from engine.compile import CompiledJourney, Ruleset
from engine.rules.model import Journey, duration_ms
from journeyman.v1 import journeyman_pb2 as pb
from server.analytics.action_report import report_days, report_journey
from server.store.keys import ACTIVITY_HOUR_MS, STAGE_TIME_BOUNDS_MS, outcome_field
from server.store.redis_store import JourneyCounts, Store

# How far back the balance of entries and exits is read to know who was in a stage when the
# first day began (days the retention already dropped count as nothing).
MAX_BALANCE_DAYS = 20 * 366


@dataclass(frozen=True, slots=True)
class Edge:
    """One designed edge: a transition from one of its from-stages."""

    transition: str
    from_stage: str
    to_stage: str
    line: int


def designed_edges(
    model: Journey, transition_ids: tuple[str, ...], lines: tuple[int, ...]
) -> list[Edge]:
    """Every (transition, from-stage) pair the rules allow, in file order; a transition into the
    stage a customer is in never fires, so `"*"` leaves out the target stage."""
    stages = [stage.id for stage in model.stages]
    edges: list[Edge] = []
    for transition, name, line in zip(model.transitions, transition_ids, lines, strict=True):
        written = transition.from_
        froms = stages if written == "*" else [written] if isinstance(written, str) else written
        edges.extend(Edge(name, f, transition.to, line) for f in froms if f != transition.to)
    return edges


def stall_after_ms(model: Journey) -> int:
    return duration_ms(model.stall_after)


@dataclass(slots=True)
class _Days:
    """The per-day fields of a range, added up."""

    moves: dict[tuple[str, str], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    entries: Counter[str] = field(default_factory=Counter)
    exits: Counter[str] = field(default_factory=Counter)
    stage_times: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    levels: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    signals: dict[str, Counter[tuple[str, str]]] = field(
        default_factory=lambda: defaultdict(Counter)
    )

    def add(self, day: str, fields: dict[str, int]) -> None:
        for name, count in fields.items():
            kind, _, rest = name.partition("|")
            if kind == "t":
                transition, _, from_stage = rest.partition("|")
                self.moves[transition, from_stage][day] += count
                self.exits[from_stage] += count
            elif kind == "e":
                self.entries[rest] += count
            elif kind == "o":
                self.exits[rest] += count
            elif kind == "d":
                stage, _, bucket = rest.partition("|")
                self.stage_times[stage][int(bucket)] += count
            elif kind == "l":
                stage, _, level = rest.partition("|")
                self.levels[stage][level] += count
            elif kind == "s":
                stage, signal, touchpoint = rest.split("|", 2)
                self.signals[stage][signal, touchpoint] += count


def quantile_upper_ms(histogram: Counter[int], numerator: int, denominator: int) -> int | None:
    """The upper bound of the bucket holding the nearest-rank quantile numerator/denominator
    (rank ceil(n * q), 1-based); None for an empty histogram."""
    n = sum(histogram.values())
    if n <= 0:
        return None
    rank = -(-n * numerator // denominator)
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return STAGE_TIME_BOUNDS_MS[bucket]
    return STAGE_TIME_BOUNDS_MS[max(histogram)]


def stalled_per_stage(activity: dict[str, int], now_ms: int, stall_after: int) -> Counter[str]:
    """Customers per stage whose last event's whole hour is `stall_after` or more before now."""
    stalled: Counter[str] = Counter()
    for name, count in activity.items():
        stage, _, hour = name.rpartition("|")
        if (int(hour) + 1) * ACTIVITY_HOUR_MS <= now_ms - stall_after:
            stalled[stage] += count
    return stalled


def designed_journey(journey: CompiledJourney, ruleset_version: str) -> pb.GetJourneyStatsResponse:
    """The journey's stages and edges with no figures: the map of the rules alone."""
    model = journey.model
    return pb.GetJourneyStatsResponse(
        journey=journey.name, description=model.description or "",
        stages=[
            pb.StageStats(stage=s.id, label=s.label or s.id, description=s.description or "")
            for s in model.stages
        ],
        transitions=[
            pb.TransitionStats(
                transition=e.transition, from_stage=e.from_stage, to_stage=e.to_stage, line=e.line
            )
            for e in designed_edges(model, journey.transition_ids, journey.transition_lines)
        ],
        stall_after_ms=stall_after_ms(model), friction_levels=journey.level_names,
        ruleset_version=ruleset_version,
    )  # fmt: skip


async def journey_stats(
    store: Store, ruleset: Ruleset, request: pb.GetJourneyStatsRequest, now_ms: int, max_days: int
) -> pb.GetJourneyStatsResponse:
    """The figures `request` asks for, read from `store` in one round trip."""
    journey = report_journey(ruleset, request.journey)
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
    days = report_days(request.since, request.until, today, max_days)
    first = date.fromisoformat(days[0])
    last = max(today, date.fromisoformat(days[-1]))
    span = min((last - first).days + 1, MAX_BALANCE_DAYS)
    balance_days = [(first + timedelta(days=n)).isoformat() for n in range(span)]
    counts = await store.journey_counts(journey.name, balance_days, days)
    response = designed_journey(journey, ruleset.version)
    fill_figures(response, journey, counts, days, now_ms)
    return response


def fill_figures(
    response: pb.GetJourneyStatsResponse,
    journey: CompiledJourney,
    counts: JourneyCounts,
    days: list[str],
    now_ms: int,
) -> None:
    """Put the counted figures on a designed journey (`designed_journey`)."""
    in_range, balance, wanted = _Days(), _Days(), set(days)
    for day, fields in counts.per_day.items():
        balance.add(day, fields)
        if day in wanted:
            in_range.add(day, fields)
    response.since, response.until, response.as_of_ms = days[0], days[-1], now_ms
    stalled = stalled_per_stage(counts.activity, now_ms, response.stall_after_ms)
    visits = {}
    for stage in response.stages:
        name = stage.stage
        at_start = counts.stages.get(name, 0) - (balance.entries[name] - balance.exits[name])
        visits[name] = max(0, at_start) + in_range.entries[name]
        _fill_stage(stage, journey, counts, in_range, stalled[name], visits[name])
    for edge in response.transitions:
        per_day = in_range.moves.get((edge.transition, edge.from_stage), Counter())
        edge.per_day.extend(pb.DayCount(day=day, customers=per_day[day]) for day in days)
        edge.customers = sum(per_day[day] for day in days)
        if visits[edge.from_stage]:
            edge.share = edge.customers / visits[edge.from_stage]


def _fill_stage(
    stage: pb.StageStats,
    journey: CompiledJourney,
    counts: JourneyCounts,
    days: _Days,
    stalled: int,
    visits: int,
) -> None:
    name = stage.stage
    stage.customers, stage.stalled = counts.stages.get(name, 0), stalled
    stage.entries, stage.exits, stage.visits = days.entries[name], days.exits[name], visits
    times = days.stage_times.get(name, Counter())
    stage.time_in_stage_samples = sum(times.values())
    median, p90 = quantile_upper_ms(times, 1, 2), quantile_upper_ms(times, 9, 10)
    if median is not None and p90 is not None:
        stage.time_in_stage_median_s, stage.time_in_stage_p90_s = median / 1000, p90 / 1000
    levels = days.levels.get(name, Counter())
    stage.friction_levels.extend(
        pb.LevelCount(level=level, events=levels[level]) for level in journey.level_names
    )
    signals = days.signals.get(name, Counter())
    stage.friction_signals.extend(
        pb.SignalCount(signal=signal, touchpoint=touchpoint, fired=fired)
        for (signal, touchpoint), fired in signals.most_common()
    )
    _fill_outcomes(stage, journey, counts.outcomes)


def _fill_outcomes(stage: pb.StageStats, journey: CompiledJourney, outcomes: Counter[str]) -> None:
    """Exposures and conversions (issue 12's outcomes hash) of customers exposed in `stage`."""
    offered: Counter[str] = Counter()
    held_out: Counter[str] = Counter()
    converted: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    goals: Counter[str] = Counter()
    for name, count in outcomes.items():
        parts = outcome_field(name)
        if parts is None or parts.stage != stage.stage:
            continue
        if parts.kind == "x":
            (offered if parts.treated else held_out)[parts.action] += count
        elif parts.kind == "c":
            converted[parts.treated][parts.action] += count
            goals[parts.goal] += count
    labels = {action.id: action.label or action.id for action in journey.model.actions}
    ranked = sorted(set(offered) | set(held_out), key=lambda a: (-offered[a], -held_out[a], a))
    stage.actions.extend(
        pb.ActionStageStats(
            action=action, label=labels.get(action, action), offered=offered[action],
            held_out=held_out[action], conversions=converted[True][action],
            control_conversions=converted[False][action],
        )
        for action in ranked
    )  # fmt: skip
    stage.conversions.extend(
        pb.GoalCount(goal=goal, conversions=goals[goal]) for goal in journey.goal_names
    )
