"""A plain-Python evaluator of the journey rules: the naive twin of `engine.decide`.

It is written from the semantics in `DESIGN.md` and the rules model, not from the kernels: it reads
the pydantic `Journey` models directly, keeps each customer's memory in dicts and lists, and prefers
being obviously right to being fast. `tests/property` runs it side by side with the engine, so when
the two disagree, this file is the one a reader can check against the spec line by line.

Timed transitions (`after:`, `idle:`) follow rules/README.md, "Timed transitions": a timer is
decided like an event, on a synthetic event at its due time (`next_due_ms`), and may fire only the
timed transitions due then and not checked before in the stage visit; it counts nothing, fires no
signal, reaches no goal and leaves idle time running from the last real event.

Besides deciding, it reads a customer as of a moment (the twin of `engine.view`) and stitches an
anonymous visitor into a known customer (the twin of `engine.merge`). It imports from the engine
only the event type and the rules model it is given; everything it computes (counter buckets,
friction, the holdout hash and draw) is restated here.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.event import Event, PropertyValue
from engine.rules.model import Action, Condition, Journey, Transition, duration_ms

# The spec's numbers, restated here rather than imported so that a wrong constant in the engine
# shows up as a disagreement instead of being shared.
DEDUPE_WINDOW = 16
DEFAULT_COUNTER_BUCKETS = 8  # a counter without `precision` cuts its window into 8 buckets
RECENT_STAGES = 5  # the customer view lists the last five stages entered, newest first
HOLDOUT_SCALE = 10_000  # holdout draws are in basis points
_UINT64 = 2**64 - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB

ELIGIBLE = "eligible"  # an action status that is not an exclusion reason
# A recorded response is an event of type "response" with the response and the action responded
# to in these properties (rules/README.md, "Responses").
RESPONSE_TYPE, RESPONSE_KEY, RESPONDED_ACTION_KEY = "response", "response", "action"
# A timer's synthetic event is of this type (its id, `timer:<due ms>:<visit>`, is the engine's).
TIMER_TYPE = "journeyman.timer"

Value = PropertyValue | None


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JourneyResult:
    """Where one journey stands after an event, and how each of its actions fared."""

    journey: str
    stage: str
    previous_stage: str
    transition: int | None  # index of the transition that fired, in file order
    transition_id: str | None
    friction_score: float
    friction_level: str | None  # None when the journey has no `friction:` section
    statuses: Mapping[str, str]  # action id -> exclusion reason, or ELIGIBLE


@dataclass(frozen=True)
class Candidate:
    """A ranked action, before the journeys' rankings are merged."""

    journey: str
    action: str
    score: float
    held_out: bool


@dataclass(frozen=True)
class ReferenceDecision:
    journeys: tuple[JourneyResult, ...]
    offered: tuple[Candidate, ...]  # in rank order
    held_out: tuple[str, ...]  # action ids, in rank order
    duplicate: bool = False
    # New exposures: (journey, action, treated, stage)
    exposures: tuple[tuple[str, str, bool, str], ...] = ()
    # (journey, action, goal, treated, value, exposed_ms, exposure stage): journeys in order,
    # then actions, then goals
    conversions: tuple[tuple[str, str, str, bool, float, int, str], ...] = ()

    @property
    def offered_ids(self) -> tuple[tuple[str, str], ...]:
        return tuple((c.journey, c.action) for c in self.offered)


@dataclass(frozen=True)
class JourneyReading:
    """One journey of a customer read as of a moment, nothing changed (the customer view)."""

    journey: str
    stage: str
    stage_entered_ms: int  # 0 before the customer's first event
    friction_score: float
    friction_level: str | None  # None when the journey has no `friction:` section
    counters: Mapping[str, float]
    last_shown_ms: Mapping[str, int]  # action id -> when it was last offered, latest first
    recent_stages: tuple[tuple[str, int], ...] = ()  # (stage, entered), newest first
    segments: tuple[str, ...] = ()  # the segments the customer's traits put them in


# -- memory ---------------------------------------------------------------------------------------


@dataclass
class JourneyMemory:
    """What one customer's journey remembers between events."""

    stage: str
    stage_entered_ms: int = 0
    last_event_ms: int | None = None  # None until the first event
    friction_at_ms: int | None = None
    buckets: dict[str, dict[int, float]] = field(default_factory=dict)  # counter -> epoch -> sum
    signal_scores: dict[str, float] = field(default_factory=dict)
    last_shown_ms: dict[str, int] = field(default_factory=dict)
    shows_ms: dict[str, list[int]] = field(default_factory=dict)  # the last `cap.count` shows
    # The first exposure to each action that still counts: action -> (when, offered it?, stage)
    exposures: dict[str, tuple[int, bool, str]] = field(default_factory=dict)
    # (action, goal) -> the exposure time the customer converted for
    converted_for_ms: dict[tuple[str, str], int] = field(default_factory=dict)
    recent_stages: list[tuple[str, int]] = field(default_factory=list)  # newest first
    # Timers: the journey clock at the customer's last real event (a timer is no activity), and
    # the last timer decided in this stage visit (None: none yet).
    activity_ms: int | None = None
    timer_checked_ms: int | None = None
    # `since:`: the journey clock at the customer's latest event of each type (timers are none)
    last_sent_ms: dict[str, int] = field(default_factory=dict)
    # Contact limits: per limit (its place in the policy), the last `count` offers on its channel
    contacts: dict[int, list[int]] = field(default_factory=dict)


@dataclass
class CustomerMemory:
    journeys: dict[str, JourneyMemory]
    recent_event_ids: deque[str] = field(default_factory=lambda: deque(maxlen=DEDUPE_WINDOW))


# -- conditions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """Everything a condition can look at, at one moment of one journey's evaluation."""

    journey: Journey
    event: Event
    traits: Mapping[str, PropertyValue]
    counters: Mapping[str, float]
    level: int  # index of the friction level
    in_stage_ms: int
    idle_ms: int
    # `since:`: ms since the latest event of each type the customer sent, this one included
    since_ms: Mapping[str, int] = field(default_factory=dict)
    clock_ms: int = 0  # `until:` measures from here to a date trait
    event_ms: int = 0  # when the event happened: quiet hours read the UTC offset then
    topic_levels: Mapping[str, int] = field(default_factory=dict)  # friction level per topic


def _kind(value: Value) -> str | None:
    # bool is an int in Python but never a number in the rules language.
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _equal(value: Value, literal: PropertyValue) -> bool:
    return _kind(value) is not None and _kind(value) == _kind(literal) and value == literal


def _order_holds(op: str, value: Value, literal: float) -> bool:
    if _kind(value) != "number":
        return False
    assert isinstance(value, int | float)
    if op == "gt":
        return value > literal
    if op == "gte":
        return value >= literal
    if op == "lt":
        return value < literal
    return value <= literal


def _comparison_holds(condition: Condition, value: Value, *, time: bool) -> bool:
    """The single comparison written in `condition`, applied to `value` (None: absent)."""
    op, literal = next(
        (name, condition.comparison(name))
        for name in ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists")
        if condition.comparison(name) is not None
    )
    if op == "exists":
        return (value is not None) == bool(literal)
    if op == "eq":
        return _equal(value, literal)
    if op == "ne":
        return not _equal(value, literal)
    if op == "in":
        return any(_equal(value, item) for item in literal)
    if op == "not_in":
        return not any(_equal(value, item) for item in literal)
    bound = float(duration_ms(literal)) if time and isinstance(literal, str) else float(literal)
    return _order_holds(op, value, bound)


def _date_ms(value: Value) -> int | None:
    """A date trait's moment (rules/README.md, `until:`): ms since the epoch as a number, or
    ISO 8601 text, UTC when it names no zone; anything else is no date."""
    if isinstance(value, bool) or value is None:
        return None
    if not isinstance(value, str):
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() * 1000)


def _named(names: str | list[str], actual: str) -> bool:
    return actual == names if isinstance(names, str) else actual in names


def _time_value(condition: Condition, facts: Facts) -> int:
    return facts.in_stage_ms if condition.time == "in_stage" else facts.idle_ms


def _level_index(journey: Journey, level: str) -> int:
    assert journey.friction is not None
    return list(journey.friction.levels).index(level)


def holds(condition: Condition, facts: Facts) -> bool:  # noqa: C901 - one branch per key
    """True when every key written in `condition` holds for `facts`."""
    parts: list[bool] = []
    event = facts.event
    if condition.event is not None:
        parts.append(_named(condition.event, event.type))
    if condition.channel is not None:
        parts.append(_named(condition.channel, event.channel))
    if condition.touchpoint is not None:
        parts.append(_named(condition.touchpoint, event.touchpoint))
    if condition.response is not None:
        said = event.properties.get(RESPONSE_KEY)
        listed = [condition.response] if isinstance(condition.response, str) else condition.response
        parts.append(event.type == RESPONSE_TYPE and isinstance(said, str) and said in listed)
    if condition.property is not None:
        value = event.properties.get(condition.property)
        parts.append(_comparison_holds(condition, value, time=False))
    if condition.trait is not None:
        parts.append(_comparison_holds(condition, facts.traits.get(condition.trait), time=False))
    if condition.counter is not None:
        value = facts.counters[condition.counter]
        parts.append(_comparison_holds(condition, value, time=False))
    if condition.time is not None:
        parts.append(_comparison_holds(condition, _time_value(condition, facts), time=True))
    if condition.since is not None:
        since = facts.since_ms.get(condition.since)  # never sent: missing, as a property
        parts.append(_comparison_holds(condition, since, time=True))
    if condition.until is not None:
        moment = _date_ms(facts.traits.get(condition.until))
        until = None if moment is None else moment - facts.clock_ms
        parts.append(_comparison_holds(condition, until, time=True))
    if condition.segment is not None:
        parts.append(holds(facts.journey.segments[condition.segment].when, facts))
    if condition.friction is not None:
        level = facts.level if condition.topic is None else facts.topic_levels[condition.topic]
        parts.append(level >= _level_index(facts.journey, condition.friction))
    if condition.all is not None:
        parts.append(all(holds(child, facts) for child in condition.all))
    if condition.any is not None:
        parts.append(any(holds(child, facts) for child in condition.any))
    if condition.not_ is not None:
        parts.append(not holds(condition.not_, facts))
    return all(parts)


# -- one journey ----------------------------------------------------------------------------------


def _is_number(value: Value) -> bool:
    return _kind(value) == "number"


def counter_buckets(window: str, precision: str | None) -> tuple[int, int]:
    """(bucket width in ms, number of buckets), as `rules/README.md` documents them: the window
    cut into `precision`-wide buckets, or into 8 buckets without a precision."""
    window_ms = duration_ms(window)
    if precision is None:
        return -(-window_ms // DEFAULT_COUNTER_BUCKETS), DEFAULT_COUNTER_BUCKETS
    width_ms = duration_ms(precision)
    return width_ms, -(-window_ms // width_ms)


def is_timer(event: Event) -> bool:
    return event.type == TIMER_TYPE


def _update_counters(
    journey: Journey, memory: JourneyMemory, facts: Facts, clock_ms: int
) -> dict[str, float]:
    """Add this event to each counter whose `when` holds (a timer counts nowhere); every
    counter's value over its window."""
    values: dict[str, float] = {}
    for name, counter in journey.counters.items():
        width_ms, n_buckets = counter_buckets(counter.window, counter.precision)
        epoch = clock_ms // width_ms
        buckets = memory.buckets.setdefault(name, {})
        if not is_timer(facts.event) and holds(counter.when, facts):
            amount: Value = 1.0
            if counter.sum is not None:
                amount = facts.event.properties.get(counter.sum)
                amount = amount if _is_number(amount) else 0.0
            assert isinstance(amount, int | float)
            buckets[epoch] = buckets.get(epoch, 0.0) + float(amount)
        values[name] = _counter_value(journey, memory, name, clock_ms)
    return values


def _friction_level(journey: Journey, total: float) -> int:
    assert journey.friction is not None
    thresholds = list(journey.friction.levels.values())
    return max(i for i, threshold in enumerate(thresholds) if threshold <= total)


def _update_friction(journey: Journey, memory: JourneyMemory, facts: Facts, clock_ms: int) -> float:
    """Decay every signal's score to `clock_ms`, add the weights of the signals this event is."""
    friction = journey.friction
    if friction is None:
        return 0.0
    factor = _decay(journey, memory.friction_at_ms, clock_ms)
    for signal in friction.signals:
        score = memory.signal_scores.get(signal.id, 0.0) * factor
        if not is_timer(facts.event) and holds(signal.when, facts):
            score += signal.weight
        memory.signal_scores[signal.id] = score
    memory.friction_at_ms = clock_ms
    return _friction_total(journey, memory)


def _topic_levels(journey: Journey, memory: JourneyMemory) -> dict[str, int]:
    """Each friction topic's level: the level its own signals' scores add up to."""
    totals: dict[str, float] = {}
    for signal in journey.friction.signals if journey.friction else []:
        if signal.topic is not None:
            score = memory.signal_scores.get(signal.id, 0.0)
            totals[signal.topic] = totals.get(signal.topic, 0.0) + score
    return {topic: _friction_level(journey, total) for topic, total in totals.items()}


def _decay(journey: Journey, since_ms: int | None, at_ms: int) -> float:
    """What a friction score recorded at `since_ms` is multiplied by at `at_ms`: it halves every
    half-life; a score never recorded is nothing."""
    if since_ms is None or journey.friction is None:
        return 0.0
    elapsed_ms = at_ms - since_ms
    return 0.5 ** (elapsed_ms / duration_ms(journey.friction.half_life)) if elapsed_ms > 0 else 1.0


def _friction_total(journey: Journey, memory: JourneyMemory, factor: float = 1.0) -> float:
    signals = journey.friction.signals if journey.friction else []
    return sum((memory.signal_scores.get(s.id, 0.0) * factor for s in signals), 0.0)


def _counter_value(journey: Journey, memory: JourneyMemory, name: str, clock_ms: int) -> float:
    counter = journey.counters[name]
    width_ms, n_buckets = counter_buckets(counter.window, counter.precision)
    epoch = clock_ms // width_ms
    buckets = memory.buckets.get(name, {})
    return sum((buckets[e] for e in sorted(buckets) if epoch - n_buckets < e <= epoch), 0.0)


def _listed(stages: str | list[str], stage: str) -> bool:
    return stages == "*" or _named(stages, stage)


def timed_due_ms(transition: Transition, memory: JourneyMemory) -> int | None:
    """When timed `transition` falls due in the customer's current stage visit: `after` from
    entering the stage, `idle` from the last real event but never before entering the stage."""
    if transition.after is not None:
        return memory.stage_entered_ms + duration_ms(transition.after)
    if transition.idle is None:
        return None
    delay_ms = duration_ms(transition.idle)
    if memory.activity_ms is None:
        return memory.stage_entered_ms + delay_ms
    return max(memory.stage_entered_ms, memory.activity_ms + delay_ms)


def _unchecked(transition: Transition, memory: JourneyMemory) -> int | None:
    """The due time of timed `transition` from the customer's stage, when not checked yet."""
    if not _listed(transition.from_, memory.stage) or transition.to == memory.stage:
        return None
    due = timed_due_ms(transition, memory)
    checked = memory.timer_checked_ms
    return due if due is not None and (checked is None or due > checked) else None


def journey_due_ms(journey: Journey, memory: JourneyMemory) -> int | None:
    """The next due time of a timed transition from the customer's stage, None when none."""
    if memory.last_event_ms is None:
        return None
    dues = [due for t in journey.transitions if (due := _unchecked(t, memory)) is not None]
    return min(dues, default=None)


def _pick_transition(
    journey: Journey, memory: JourneyMemory, facts: Facts, clock_ms: int
) -> int | None:
    """First match wins, among event transitions on an event, and on a timer among the timed
    transitions due by `clock_ms` and not checked before in this stage visit."""
    timer = is_timer(facts.event)
    for index, transition in enumerate(journey.transitions):
        if not _listed(transition.from_, memory.stage) or transition.to == memory.stage:
            continue
        if transition.is_timed != timer:
            continue
        if timer:
            due = _unchecked(transition, memory)
            if due is None or due > clock_ms:
                continue
        if transition.when is None or holds(transition.when, facts):
            return index
    return None


def _shows_in_window(memory: JourneyMemory, action: Action, clock_ms: int) -> int:
    assert action.cap is not None
    since_ms = clock_ms - duration_ms(action.cap.per)
    return sum(1 for shown_ms in memory.shows_ms.get(action.id, []) if shown_ms > since_ms)


def _action_status(action: Action, memory: JourneyMemory, facts: Facts, clock_ms: int) -> str:
    """The first reason, in the spec's order, that keeps `action` from being offered."""
    if not _listed(action.stages, memory.stage):
        return "stage"
    segments = facts.journey.segments
    if action.segments and not any(holds(segments[s].when, facts) for s in action.segments):
        return "segment"
    if action.when is not None and not holds(action.when, facts):
        return "condition"
    last_shown_ms = memory.last_shown_ms.get(action.id)
    if action.cooldown is not None and last_shown_ms is not None:
        if clock_ms - last_shown_ms < duration_ms(action.cooldown):
            return "cooldown"
    if action.cap is not None and _shows_in_window(memory, action, clock_ms) >= action.cap.count:
        return "cap"
    if _quiet(facts.journey, action, facts):
        return "quiet_hours"
    return ELIGIBLE


def _quiet(journey: Journey, action: Action, facts: Facts) -> bool:
    """Quiet hours (rules/README.md, `contact_policy`): the action's channel is listed and the
    customer's wall clock (their time zone trait, else the default, as it stood at the event's
    time) reads a minute in [from, to), which may run past midnight."""
    quiet = journey.contact_policy.quiet_hours if journey.contact_policy else None
    if quiet is None or (action.channel or facts.event.channel) not in quiet.channels:
        return False
    named = facts.traits.get(quiet.time_zone_trait)
    try:
        zone = ZoneInfo(named) if isinstance(named, str) else ZoneInfo(quiet.default_time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo(quiet.default_time_zone)
    offset = datetime.fromtimestamp(facts.event_ms / 1000, tz=UTC).astimezone(zone).utcoffset()
    assert offset is not None
    wall = datetime.fromtimestamp(facts.clock_ms / 1000, tz=UTC) + offset
    minute = wall.hour * 60 + wall.minute
    start, end = (int(t[:2]) * 60 + int(t[3:]) for t in (quiet.from_, quiet.to))
    return start <= minute < end if start < end else minute >= start or minute < end


def _score(action: Action, facts: Facts) -> float:
    score = float(action.priority)
    for boost in action.boosts:
        if holds(boost.when, facts):
            score += boost.add
    return score


def holdout_draw(customer_seed: int, salt: int) -> int:
    """splitmix64 of `customer_seed ^ salt`, in [0, HOLDOUT_SCALE), in uint64 arithmetic."""
    z = ((customer_seed ^ salt) + _GOLDEN) & _UINT64
    z = ((z ^ (z >> 30)) * _MIX_1) & _UINT64
    z = ((z ^ (z >> 27)) * _MIX_2) & _UINT64
    z ^= z >> 31
    return z % HOLDOUT_SCALE


def customer_hash(customer_id: str) -> int:
    """The seed of a customer's holdout draws: the 8-byte BLAKE2b digest of the UTF-8 customer id,
    personalised with `holdout`, read as a little-endian unsigned integer."""
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8, person=b"holdout").digest()
    return int.from_bytes(digest, "little")


def action_salt(journey: str, action: str) -> int:
    digest = hashlib.blake2b(f"{journey}/{action}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def is_held_out(customer_id: str, journey: str, action: Action) -> bool:
    draw = holdout_draw(customer_hash(customer_id), action_salt(journey, action.id))
    return draw < round(action.holdout * 100)


def _about_responses(condition: Condition) -> bool:
    """Whether `response:` is written anywhere in `condition`."""
    inner = [
        *(condition.all or []),
        *(condition.any or []),
        *([condition.not_] if condition.not_ else []),
    ]
    return condition.response is not None or any(_about_responses(c) for c in inner)


def _conversions(
    journey: Journey, memory: JourneyMemory, event: Event
) -> list[tuple[str, str, str, bool, float, int, str]]:
    """The goals `event` reaches, attributed to each action the customer was exposed to within
    the goal's window (exposures as they stood before this event's offers), once per exposure,
    action and goal. Called after the journey's clock moved to this event."""
    assert memory.last_event_ms is not None
    facts = Facts(journey, event, {}, {}, 0, 0, 0)  # a goal looks at the event only
    found = []
    for action in journey.actions:
        exposure = memory.exposures.get(action.id)
        for name, goal in journey.goals.items():
            if exposure is None or not holds(goal.when, facts):
                continue
            if (
                _about_responses(goal.when)
                and event.properties.get(RESPONDED_ACTION_KEY) != action.id
            ):
                continue  # a response converts only the action it names
            exposed_ms, treated, stage = exposure
            if memory.last_event_ms - exposed_ms > duration_ms(goal.window):
                continue
            if memory.converted_for_ms.get((action.id, name)) == exposed_ms:
                continue
            memory.converted_for_ms[(action.id, name)] = exposed_ms
            value = event.properties.get(goal.value) if goal.value else None
            amount = float(value) if _is_number(value) else 0.0  # type: ignore[arg-type]
            found.append((journey.journey, action.id, name, treated, amount, exposed_ms, stage))
    return found


# -- the engine -----------------------------------------------------------------------------------


class ReferenceEngine:
    """Decides events for any number of customers, remembering each customer's journeys."""

    def __init__(self, journeys: Sequence[Journey]) -> None:
        self.journeys = list(journeys)
        self.top_k = max(j.top_k for j in self.journeys)
        self.customers: dict[str, CustomerMemory] = {}

    def memory(self, customer_id: str) -> CustomerMemory:
        if customer_id not in self.customers:
            fresh = {j.journey: JourneyMemory(stage=j.stages[0].id) for j in self.journeys}
            self.customers[customer_id] = CustomerMemory(fresh)
        return self.customers[customer_id]

    def decide(
        self,
        event: Event,
        traits: Mapping[str, PropertyValue],
        now_ms: int,
        top_k: int | None = None,
    ) -> ReferenceDecision:
        """Apply `event` (at `now_ms`) for `event.customer_id`, whose traits are `traits`."""
        customer = self.memory(event.customer_id)
        if event.event_id in customer.recent_event_ids:
            return self._duplicate(customer)
        customer.recent_event_ids.append(event.event_id)
        k = top_k or self.top_k
        results: list[JourneyResult] = []
        candidates: list[Candidate] = []
        conversions: list[tuple[str, str, str, bool, float, int, str]] = []
        for journey in self.journeys:
            memory = customer.journeys[journey.journey]
            result, ranked = self._decide_journey(journey, memory, event, traits, now_ms, k)
            results.append(result)
            candidates.extend(ranked)
            if not is_timer(event):  # a timer reaches no goal
                conversions.extend(_conversions(journey, memory, event))
        # Python's sort is stable: equal scores keep journey order, then rank within the journey.
        chosen = sorted(candidates, key=lambda c: -c.score)[:k]
        offered = tuple(c for c in chosen if not c.held_out)
        for candidate in offered:
            self._record_offer(customer, candidate, event.channel)
        held_out = tuple(c.action for c in chosen if c.held_out)
        exposures = tuple(e for c in chosen if (e := self._record_exposure(customer, c)))
        return ReferenceDecision(
            tuple(results), offered, held_out, exposures=exposures, conversions=tuple(conversions)
        )

    def _record_exposure(
        self, customer: CustomerMemory, candidate: Candidate
    ) -> tuple[str, str, bool, str] | None:
        """The first exposure to an action counts until the journey's longest goal window has
        passed; only journeys with goals remember exposures."""
        journey = next(j for j in self.journeys if j.journey == candidate.journey)
        if not journey.goals:
            return None
        memory = customer.journeys[journey.journey]
        assert memory.last_event_ms is not None
        longest_ms = max(duration_ms(g.window) for g in journey.goals.values())
        earlier = memory.exposures.get(candidate.action)
        if earlier is not None and memory.last_event_ms - earlier[0] <= longest_ms:
            return None
        treated = not candidate.held_out
        memory.exposures[candidate.action] = (memory.last_event_ms, treated, memory.stage)
        return journey.journey, candidate.action, treated, memory.stage

    def _decide_journey(
        self,
        journey: Journey,
        memory: JourneyMemory,
        event: Event,
        traits: Mapping[str, PropertyValue],
        now_ms: int,
        k: int,
    ) -> tuple[JourneyResult, list[Candidate]]:
        previous_ms = memory.last_event_ms
        # A customer's clock never runs backwards: a late event happens at the previous one's time.
        clock_ms = now_ms if previous_ms is None else max(now_ms, previous_ms)
        if previous_ms is None:
            memory.stage_entered_ms = clock_ms
            _entered(memory, memory.stage, clock_ms)
        # Idle time runs from the last real event: a timer is not the customer's activity.
        idle_ms = 0 if memory.activity_ms is None else clock_ms - memory.activity_ms
        memory.last_event_ms = clock_ms
        facts = Facts(journey, event, traits, {}, 0, clock_ms - memory.stage_entered_ms, idle_ms)
        counters = _update_counters(journey, memory, facts, clock_ms)
        total = _update_friction(journey, memory, facts, clock_ms)
        level = _friction_level(journey, total) if journey.friction else 0
        if not is_timer(event):
            memory.last_sent_ms[event.type] = clock_ms
        since = {sent: clock_ms - at_ms for sent, at_ms in memory.last_sent_ms.items()}
        facts = replace(
            facts, counters=counters, level=level, since_ms=since, clock_ms=clock_ms,
            event_ms=now_ms,
            topic_levels=_topic_levels(journey, memory),
        )  # fmt: skip

        previous_stage = memory.stage
        transition = _pick_transition(journey, memory, facts, clock_ms)
        if transition is not None:
            memory.stage = journey.transitions[transition].to
            memory.stage_entered_ms = clock_ms
            _entered(memory, memory.stage, clock_ms)
            facts = replace(facts, in_stage_ms=0)
        if not is_timer(event):
            memory.activity_ms = clock_ms
        if transition is not None:
            memory.timer_checked_ms = None  # a new stage visit: nothing checked yet
        elif is_timer(event):
            memory.timer_checked_ms = clock_ms

        statuses = {a.id: _action_status(a, memory, facts, clock_ms) for a in journey.actions}
        ranked = self._rank(journey, memory, statuses, facts, event.customer_id, k, clock_ms)
        result = JourneyResult(
            journey=journey.journey,
            stage=memory.stage,
            previous_stage=previous_stage,
            transition=transition,
            transition_id=_transition_id(journey, transition),
            friction_score=total,
            friction_level=_level_name(journey, level),
            statuses=statuses,
        )
        return result, ranked

    @staticmethod
    def _rank(
        journey: Journey,
        memory: JourneyMemory,
        statuses: dict[str, str],
        facts: Facts,
        customer_id: str,
        k: int,
        clock_ms: int,
    ) -> list[Candidate]:
        """The best `k` eligible actions, best first; one whose channel has reached a contact
        limit (counting the offers remembered and those picked before it here, held out or
        not) is skipped in its turn and marked `contact_limit`."""
        eligible = [a for a in journey.actions if statuses[a.id] == ELIGIBLE]
        scored = [(_score(a, facts), index, a) for index, a in enumerate(eligible)]
        scored.sort(key=lambda item: (-item[0], item[1]))  # file order breaks ties
        limits = journey.contact_policy.limits if journey.contact_policy else []
        picked: list[tuple[Candidate, str]] = []
        for score, _, action in scored:
            if len(picked) == k:
                break
            channel = action.channel or facts.event.channel
            if any(
                limit.channel == channel
                and sum(
                    1 for ms in memory.contacts.get(i, []) if ms > clock_ms - duration_ms(limit.per)
                )
                + sum(1 for _, picked_channel in picked if picked_channel == channel)
                >= limit.count
                for i, limit in enumerate(limits)
            ):
                statuses[action.id] = "contact_limit"
                continue
            held = is_held_out(customer_id, journey.journey, action)
            picked.append((Candidate(journey.journey, action.id, score, held), channel))
        return [candidate for candidate, _ in picked]

    def _record_offer(
        self, customer: CustomerMemory, candidate: Candidate, event_channel: str
    ) -> None:
        journey = next(j for j in self.journeys if j.journey == candidate.journey)
        action = next(a for a in journey.actions if a.id == candidate.action)
        memory = customer.journeys[journey.journey]
        assert memory.last_event_ms is not None
        memory.last_shown_ms[action.id] = memory.last_event_ms
        if action.cap is not None:
            shows = memory.shows_ms.setdefault(action.id, [])
            shows.append(memory.last_event_ms)
            del shows[: -action.cap.count]  # only the last `count` shows are remembered
        limits = journey.contact_policy.limits if journey.contact_policy else []
        for i, limit in enumerate(limits):
            if limit.channel == (action.channel or event_channel):
                offers = memory.contacts.setdefault(i, [])
                offers.append(memory.last_event_ms)
                del offers[: -limit.count]

    def next_due_ms(self, customer_id: str) -> int | None:
        """When the customer's next timer falls due, over every journey; None when none will."""
        customer = self.memory(customer_id)
        dues = [
            due
            for journey in self.journeys
            if (due := journey_due_ms(journey, customer.journeys[journey.journey])) is not None
        ]
        return min(dues, default=None)

    def view(
        self, customer_id: str, now_ms: int, traits: Mapping[str, PropertyValue] | None = None
    ) -> tuple[JourneyReading, ...]:
        """Each journey of `customer_id` as it reads at `now_ms`; a moment before the customer's
        last event reads as of that event (a customer's clock never runs backwards). With
        `traits`, the segments they put the customer in."""
        customer = self.memory(customer_id)
        return tuple(
            _reading(journey, customer.journeys[journey.journey], now_ms, traits or {})
            for journey in self.journeys
        )

    def merge(self, known_id: str, visitor_id: str) -> None:
        """Stitch the anonymous `visitor_id`'s journeys into `known_id`'s (the documented rule:
        the stage further along is kept with its time; counters add up; friction scores add up
        once both are decayed to the later of their times; the action histories are united;
        the event ids of both are still recognised; of two exposures to an action the first counts,
        with its conversions). Traits are the caller's."""
        known, visitor = self.memory(known_id), self.memory(visitor_id)
        journeys = {
            j.journey: _merged(j, known.journeys[j.journey], visitor.journeys[j.journey])
            for j in self.journeys
        }
        ids = list(dict.fromkeys([*visitor.recent_event_ids, *known.recent_event_ids]))
        recent = deque(ids[-DEDUPE_WINDOW:], maxlen=DEDUPE_WINDOW)
        self.customers[known_id] = CustomerMemory(journeys, recent)

    def _duplicate(self, customer: CustomerMemory) -> ReferenceDecision:
        results = []
        for journey in self.journeys:
            memory = customer.journeys[journey.journey]
            total = _friction_total(journey, memory)
            level = _friction_level(journey, total) if journey.friction else 0
            results.append(
                JourneyResult(
                    journey=journey.journey,
                    stage=memory.stage,
                    previous_stage=memory.stage,
                    transition=None,
                    transition_id=None,
                    friction_score=total,
                    friction_level=_level_name(journey, level),
                    statuses={},
                )
            )
        return ReferenceDecision(tuple(results), (), (), duplicate=True)


def _transition_id(journey: Journey, index: int | None) -> str | None:
    if index is None:
        return None
    transition = journey.transitions[index]
    return transition.id or f"to_{transition.to}"


def _level_name(journey: Journey, level: int) -> str | None:
    return list(journey.friction.levels)[level] if journey.friction else None


def _entered(memory: JourneyMemory, stage: str, at_ms: int) -> None:
    memory.recent_stages.insert(0, (stage, at_ms))
    del memory.recent_stages[RECENT_STAGES:]


def _reading(
    journey: Journey, memory: JourneyMemory, now_ms: int, traits: Mapping[str, PropertyValue]
) -> JourneyReading:
    clock_ms = now_ms if memory.last_event_ms is None else max(now_ms, memory.last_event_ms)
    total = _friction_total(journey, memory, _decay(journey, memory.friction_at_ms, clock_ms))
    level = _friction_level(journey, total) if journey.friction else 0
    shown = [
        (a.id, memory.last_shown_ms[a.id]) for a in journey.actions if a.id in memory.last_shown_ms
    ]
    return JourneyReading(
        journey=journey.journey,
        stage=memory.stage,
        stage_entered_ms=memory.stage_entered_ms if memory.last_event_ms is not None else 0,
        friction_score=total,
        friction_level=_level_name(journey, level),
        counters={
            name: _counter_value(journey, memory, name, clock_ms) for name in journey.counters
        },
        last_shown_ms=dict(sorted(shown, key=lambda item: -item[1])),
        recent_stages=tuple(memory.recent_stages),
        segments=tuple(
            name
            for name, segment in journey.segments.items()
            if holds(segment.when, Facts(journey, Event("", "", ""), traits, {}, 0, 0, 0))
        ),
    )


def _later(a_ms: int | None, b_ms: int | None) -> int | None:
    return b_ms if a_ms is None else a_ms if b_ms is None else max(a_ms, b_ms)


def _merged_exposures(
    journey: Journey, known: JourneyMemory, visitor: JourneyMemory
) -> tuple[dict[str, tuple[int, bool, str]], dict[tuple[str, str], int]]:
    """Of two exposures to an action the first counts, with the conversions made for it."""
    exposures, converted = dict(known.exposures), dict(known.converted_for_ms)
    for action_id, exposure in visitor.exposures.items():
        if action_id in known.exposures and known.exposures[action_id][0] <= exposure[0]:
            continue
        exposures[action_id] = exposure
        for goal in journey.goals:
            converted.pop((action_id, goal), None)
            if (action_id, goal) in visitor.converted_for_ms:
                converted[(action_id, goal)] = visitor.converted_for_ms[(action_id, goal)]
    return exposures, converted


def _merged(journey: Journey, known: JourneyMemory, visitor: JourneyMemory) -> JourneyMemory:
    stages = [stage.id for stage in journey.stages]
    further = stages.index(visitor.stage) > stages.index(known.stage)
    kept = visitor if further or known.last_event_ms is None else known
    friction_at_ms = _later(known.friction_at_ms, visitor.friction_at_ms)
    scores: dict[str, float] = {}
    for side in (known, visitor):
        factor = (
            0.0 if friction_at_ms is None else _decay(journey, side.friction_at_ms, friction_at_ms)
        )
        for signal, score in side.signal_scores.items():
            scores[signal] = scores.get(signal, 0.0) + score * factor
    buckets: dict[str, dict[int, float]] = {}
    for side in (known, visitor):
        for name, by_epoch in side.buckets.items():
            merged = buckets.setdefault(name, {})
            for epoch, amount in by_epoch.items():
                merged[epoch] = merged.get(epoch, 0.0) + amount
    shows = {}
    for action in journey.actions:
        both = known.shows_ms.get(action.id, []) + visitor.shows_ms.get(action.id, [])
        if both and action.cap is not None:
            shows[action.id] = sorted(both)[-action.cap.count :]
    exposures, converted = _merged_exposures(journey, known, visitor)
    last_shown = dict(visitor.last_shown_ms)
    for action_id, shown_ms in known.last_shown_ms.items():
        last_shown[action_id] = max(shown_ms, last_shown.get(action_id, shown_ms))
    return JourneyMemory(
        stage=kept.stage,
        stage_entered_ms=kept.stage_entered_ms,
        last_event_ms=_later(known.last_event_ms, visitor.last_event_ms),
        friction_at_ms=friction_at_ms,
        buckets=buckets,
        signal_scores=scores,
        last_shown_ms=last_shown,
        shows_ms=shows,
        exposures=exposures,
        converted_for_ms=converted,
        recent_stages=list(kept.recent_stages),
        contacts={
            i: sorted(known.contacts.get(i, []) + visitor.contacts.get(i, []))[-limit.count :]
            for i, limit in enumerate(
                journey.contact_policy.limits if journey.contact_policy else []
            )
        },
        activity_ms=_later(known.activity_ms, visitor.activity_ms),
        timer_checked_ms=kept.timer_checked_ms,  # the timers checked go with the stage visit
        last_sent_ms={
            sent: max(known.last_sent_ms.get(sent, at_ms), at_ms)
            for sent, at_ms in {**known.last_sent_ms, **visitor.last_sent_ms}.items()
        },
    )
