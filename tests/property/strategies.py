"""Hypothesis strategies for journeys and event sequences, shared by the property tests.

Journeys are written as the dicts a marketer's YAML would load into (JSON is YAML), from small
pools of names and values so that conditions match often enough to exercise every branch: events
reuse a few types, channels, touchpoints, properties and traits; times move forward by gaps that
straddle counter buckets, durations and half-lives, sometimes not at all and sometimes backwards;
event ids repeat now and then. Some transitions are timed (`after:`, `idle:`), and some steps
are timers: the customer's next due timer, decided at its due time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from engine.errors import RulesError
from engine.event import Event, PropertyValue
from engine.rules.load import parse_journey
from engine.rules.model import duration_ms

Json = dict[str, Any]

EVENT_TYPES = ("view", "cart", "buy", "error")
CHANNELS = ("web", "app", "email")
TOUCHPOINTS = ("home", "shop")
RESPONSES = ("impression", "click", "accept", "dismiss")
# Responses name an action: a0..a2 are generated journeys' actions, zz is none of them.
RESPONDED = ("a0", "a1", "a2", "zz")
PROPERTIES = ("amount", "kind", "flag")
TRAITS = ("tier", "age", "vip", "ends", "zone")
# Time zones a `zone` trait names (two with daylight saving time), and one that is none.
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Mars/Olympus")
# Quiet hours: within a day, past midnight, and a single minute at the start of the generated
# clock (2023-11-14T22:13Z: 22:13 in UTC, 23:13 in Paris, 17:13 in New York).
QUIET_HOURS = (("09:00", "17:00"), ("21:00", "08:00"), ("22:13", "22:14"), ("17:00", "23:30"))
# "web" and "view" are also a channel and an event type: one string table serves them all.
STRINGS = ("gold", "silver", "web", "view")
NUMBERS = (-1, 0, 1, 2, 2.5, 3, 10)
LITERALS: tuple[PropertyValue, ...] = (*STRINGS, *NUMBERS, True, False)
# "bronze" is in no rule, 1.5 matches no literal; True next to 1 checks that bools are not numbers.
VALUES: tuple[PropertyValue, ...] = (*LITERALS, "bronze", 1.5)
DURATIONS = ("1s", "30s", "1m", "10m", "1h", "1d")
START_MS = 1_700_000_000_000
# Dates an `until:` reads (trait `ends`): ms since the epoch and ISO 8601 text around the first
# event (2023-11-14T22:13:20Z), with and without a zone, and text that is no date.
DATES: tuple[PropertyValue, ...] = (
    START_MS, START_MS + 1_000, START_MS + 3_600_000, START_MS + 86_400_000, START_MS - 60_000,
    "2023-11-14T22:13:20Z", "2023-11-14T23:13:20+01:00", "2023-11-15T22:13:20", "2023-11-16",
    "soon",
)  # fmt: skip
WINDOWS = ("1m", "10m", "1h", "1d", "7d")
PRECISIONS = ("1s", "10s", "1m", "10m", "1h", "1d")
HALF_LIVES = ("1s", "1m", "30m", "1h")
TIMER_DELAYS = ("1s", "1m", "10m", "1h", "1d")
SECOND_MS, MINUTE_MS, HOUR_MS, DAY_MS = 1_000, 60_000, 3_600_000, 86_400_000
GAPS_MS = (
    0, 0, 1, 999, SECOND_MS, 30 * SECOND_MS, MINUTE_MS, 10 * MINUTE_MS, HOUR_MS, DAY_MS,
    3 * DAY_MS, -SECOND_MS, -HOUR_MS,
)  # fmt: skip
# Exactly representable numbers keep float sums exact in any order, so ties and thresholds agree.
WEIGHTS = (0.5, 1, 2, 3, 4.5)
THRESHOLDS = (1, 2, 3, 4, 6, 8)
PRIORITIES = (-5, 0, 10, 20, 20, 35.5)
BOOSTS = (-10, 5, 10, 20)
# Whole basis points: a holdout of half a basis point (0.085 %) rounds differently depending on
# how the percent is scaled, which no draw of a random test would ever land on.
HOLDOUTS = (0, 0, 0, 12.5, 50, 100)

# -- journeys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What a condition may look at where it is written (the checker enforces the same)."""

    event: bool = False
    traits: bool = False
    counters: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()  # friction topics: `friction:` may name one with `topic:`
    time: bool = False

    def keys(self, depth: int) -> list[str]:
        keys = ["event", "channel", "touchpoint", "response", "property"] if self.event else []
        keys += ["trait"] if self.traits else []
        keys += ["counter"] if self.counters else []
        keys += ["time", "since"] if self.time else []
        keys += ["until"] if self.time and self.traits else []
        keys += ["segment"] if self.segments else []
        keys += ["friction"] if self.levels else []
        return keys + (["all", "any", "not"] if depth > 0 else [])


EVENT_SCOPE = Scope(event=True)
TRAIT_SCOPE = Scope(traits=True)
SUBJECTS = ("property", "trait", "counter", "time", "since", "until")


def one_or_many(pool: Sequence[str]) -> st.SearchStrategy[str | list[str]]:
    many = st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True)
    return st.sampled_from(pool) | many


def comparisons(numbers_only: bool) -> st.SearchStrategy[Json]:
    """One comparison on a property or trait (any literal) or a counter (numbers only)."""
    scalars = st.sampled_from(NUMBERS if numbers_only else LITERALS)
    items = st.lists(scalars, min_size=1, max_size=3)
    literal = {
        "eq": scalars, "ne": scalars, "in": items, "not_in": items, "exists": st.booleans(),
        "gt": st.sampled_from(NUMBERS), "gte": st.sampled_from(NUMBERS),
        "lt": st.sampled_from(NUMBERS), "lte": st.sampled_from(NUMBERS),
    }  # fmt: skip
    return st.sampled_from(sorted(literal)).flatmap(
        lambda op: st.fixed_dictionaries({op: literal[op]})
    )


def time_comparisons() -> st.SearchStrategy[Json]:
    ops = st.sampled_from(("gt", "gte", "lt", "lte"))
    return st.builds(
        lambda measure, op, duration: {"time": measure, op: duration},
        st.sampled_from(("in_stage", "idle")),
        ops,
        st.sampled_from(DURATIONS),
    )


def since_comparisons() -> st.SearchStrategy[Json]:
    """The time since the customer's last event of a type, or whether they ever sent one."""
    ops = st.sampled_from(("gt", "gte", "lt", "lte"))
    timed = st.builds(lambda op, duration: {op: duration}, ops, st.sampled_from(DURATIONS))
    ever = st.builds(lambda sent: {"exists": sent}, st.booleans())
    return st.builds(
        lambda event_type, comparison: {"since": event_type, **comparison},
        st.sampled_from(EVENT_TYPES),
        timed | ever,
    )


def until_comparisons() -> st.SearchStrategy[Json]:
    """The time until the date trait `ends` holds, or whether it holds a date."""
    ops = st.sampled_from(("gt", "gte", "lt", "lte"))
    timed = st.builds(lambda op, duration: {op: duration}, ops, st.sampled_from(DURATIONS))
    ever = st.builds(lambda dated: {"exists": dated}, st.booleans())
    return st.builds(lambda comparison: {"until": "ends", **comparison}, timed | ever)


def _subject(draw: st.DrawFn, key: str, scope: Scope) -> Json:
    if key == "time":
        return draw(time_comparisons())
    if key == "since":
        return draw(since_comparisons())
    if key == "until":
        return draw(until_comparisons())
    names = {"property": PROPERTIES, "trait": TRAITS, "counter": scope.counters}[key]
    return {key: draw(st.sampled_from(names)), **draw(comparisons(key == "counter"))}


@st.composite
def conditions(draw: st.DrawFn, scope: Scope, depth: int = 2) -> Json:
    """A condition mapping with one to three keys, nested `depth` levels at most."""
    keys = draw(st.lists(st.sampled_from(scope.keys(depth)), min_size=1, max_size=3, unique=True))
    subjects = [k for k in keys if k in SUBJECTS]
    condition: Json = _subject(draw, subjects[0], scope) if subjects else {}
    plain: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
        "event": lambda: one_or_many(EVENT_TYPES),
        "channel": lambda: one_or_many(CHANNELS),
        "touchpoint": lambda: one_or_many(TOUCHPOINTS),
        "response": lambda: one_or_many(RESPONSES),
        "segment": lambda: st.sampled_from(scope.segments),
        "friction": lambda: st.sampled_from(scope.levels),
        "all": lambda: st.lists(conditions(scope, depth - 1), min_size=1, max_size=3),
        "any": lambda: st.lists(conditions(scope, depth - 1), min_size=1, max_size=3),
        "not": lambda: conditions(scope, depth - 1),
    }
    for key in keys:
        if key in plain:
            condition[key] = draw(plain[key]())
    if "friction" in condition and scope.topics and draw(st.booleans()):
        condition["topic"] = draw(st.sampled_from(scope.topics))
    return condition


@st.composite
def counters(draw: st.DrawFn) -> Json:
    window = draw(st.sampled_from(WINDOWS))
    counter: Json = {"when": draw(conditions(EVENT_SCOPE, 1)), "window": window}
    fits = [p for p in PRECISIONS if _buckets(window, p) is not None]
    precision = draw(st.none() | st.sampled_from(fits))
    if precision is not None:
        counter["precision"] = precision
    if draw(st.booleans()):
        counter["sum"] = draw(st.sampled_from(PROPERTIES))
    return counter


@st.composite
def goals(draw: st.DrawFn) -> Json:
    goal: Json = {
        "when": draw(conditions(EVENT_SCOPE, 1)),
        "window": draw(st.sampled_from(WINDOWS)),
    }
    if draw(st.booleans()):
        goal["value"] = draw(st.sampled_from(PROPERTIES))
    return goal


def _buckets(window: str, precision: str) -> int | None:
    """How many buckets `precision` cuts `window` into, None when the checker refuses it."""
    window_ms, width_ms = duration_ms(window), duration_ms(precision)
    n_buckets = -(-window_ms // width_ms)
    return n_buckets if width_ms <= window_ms and n_buckets <= 64 else None


@st.composite
def frictions(draw: st.DrawFn) -> Json:
    names = ["low", "medium", "high"][: draw(st.integers(1, 3))]
    thresholds = sorted(draw(st.sets(st.sampled_from(THRESHOLDS), min_size=2, max_size=2)))
    signals = [
        {
            "id": f"sig{i}",
            "when": draw(conditions(EVENT_SCOPE, 1)),
            "weight": draw(st.sampled_from(WEIGHTS)),
        }
        for i in range(draw(st.integers(1, 3)))
    ]
    for signal in signals:
        topic = draw(st.sampled_from((None, "pricing", "help")))
        if topic is not None:
            signal["topic"] = topic
    return {
        "half_life": draw(st.sampled_from(HALF_LIVES)),
        "levels": dict(zip(names, [0, *thresholds], strict=False)),
        "signals": signals,
    }


def stage_lists(stages: list[str]) -> st.SearchStrategy[str | list[str]]:
    return st.just("*") | one_or_many(stages)


@st.composite
def timed_transitions(draw: st.DrawFn, stages: list[str], scope: Scope) -> Json:
    """`after:` or `idle:`, maybe with a `when` on the customer. Timed transitions lead only to
    a later stage, so they never go round in a circle (the check refuses circles)."""
    to = draw(st.integers(1, len(stages) - 1))
    clock = draw(st.sampled_from(("after", "idle")))
    transition: Json = {
        "from": draw(one_or_many(stages[:to])),
        "to": stages[to],
        clock: draw(st.sampled_from(TIMER_DELAYS)),
    }
    if draw(st.booleans()):
        customer = Scope(
            traits=True, counters=scope.counters, segments=scope.segments, levels=scope.levels,
            topics=scope.topics,
            time=True,
        )  # fmt: skip
        transition["when"] = draw(conditions(customer))
    return transition


@st.composite
def transitions(draw: st.DrawFn, index: int, stages: list[str], scope: Scope) -> Json:
    if len(stages) > 1 and draw(st.booleans()):  # about half: a timed transition
        transition = draw(timed_transitions(stages, scope))
    else:
        transition = {
            "from": draw(stage_lists(stages)),
            "to": draw(st.sampled_from(stages)),
            "when": draw(conditions(scope)),
        }
    if draw(st.booleans()):
        transition["id"] = f"t{index}"  # unnamed ones default to `to_<stage>`, maybe twice
    return transition


@st.composite
def actions(draw: st.DrawFn, action_id: str, stages: list[str], scope: Scope) -> Json:
    boost = st.fixed_dictionaries({"when": conditions(scope, 1), "add": st.sampled_from(BOOSTS)})
    action: Json = {
        "id": action_id,
        "stages": draw(stage_lists(stages)),
        "priority": draw(st.sampled_from(PRIORITIES)),
        "boosts": draw(st.lists(boost, max_size=2)),
        "holdout": draw(st.sampled_from(HOLDOUTS)),
    }
    if draw(st.booleans()) and scope.segments:
        action["segments"] = draw(st.lists(st.sampled_from(scope.segments), min_size=1, max_size=2))
    if draw(st.booleans()):
        action["when"] = draw(conditions(scope))
    if draw(st.booleans()):
        action["cooldown"] = draw(st.sampled_from(("1s", "1m", "1h", "1d")))
    if draw(st.booleans()):
        per = draw(st.sampled_from(("1m", "1h", "1d")))
        action["cap"] = {"count": draw(st.integers(1, 3)), "per": per}
    if draw(st.booleans()):
        action["channel"] = draw(st.sampled_from(CHANNELS))  # else the event's
    return action


@st.composite
def contact_policies(draw: st.DrawFn) -> Json:
    """One to three limits, on channels actions are delivered on, one per channel and window."""
    keys = draw(st.lists(
        st.tuples(st.sampled_from(CHANNELS), st.sampled_from(("1m", "1h", "1d"))),
        min_size=1, max_size=3, unique=True,
    ))  # fmt: skip
    policy: Json = {
        "limits": [
            {"channel": channel, "count": draw(st.integers(1, 3)), "per": per}
            for channel, per in keys
        ]
    }
    if draw(st.booleans()):
        start, end = draw(st.sampled_from(QUIET_HOURS))
        policy["quiet_hours"] = {
            "from": start, "to": end, "channels": draw(one_or_many(CHANNELS)),
            "time_zone_trait": "zone", "default_time_zone": draw(st.sampled_from(ZONES[:2])),
        }  # fmt: skip
        if isinstance(policy["quiet_hours"]["channels"], str):
            policy["quiet_hours"]["channels"] = [policy["quiet_hours"]["channels"]]
        if draw(st.booleans()):
            del policy["limits"]
    return policy


@st.composite
def journeys(draw: st.DrawFn, name: str = "j0", *, timed: bool = False) -> Json:
    """A journey dict that loads and passes every check; `timed`: one with a timed transition
    from its first stage, where every customer starts."""
    stages = [f"s{i}" for i in range(draw(st.integers(2 if timed else 1, 4)))]
    n_segments, n_counters = draw(st.integers(0, 2)), draw(st.integers(0, 3))
    segments = {f"g{i}": {"when": draw(conditions(TRAIT_SCOPE, 1))} for i in range(n_segments)}
    counter_defs = {f"c{i}": draw(counters()) for i in range(n_counters)}
    friction = draw(st.none() | frictions())
    goal_defs = {f"goal{i}": draw(goals()) for i in range(draw(st.integers(0, 2)))}
    scope = Scope(
        event=True,
        traits=True,
        counters=tuple(counter_defs),
        segments=tuple(segments),
        levels=tuple(friction["levels"]) if friction else (),
        topics=tuple(sorted({s["topic"] for s in friction["signals"] if "topic" in s}))
        if friction
        else (),
        time=True,
    )
    journey: Json = {
        "journey": name,
        "version": 1,
        "top_k": draw(st.integers(1, 4)),
        "stages": [{"id": stage} for stage in stages],
        "segments": segments,
        "counters": counter_defs,
        "goals": goal_defs,
        "transitions": [
            draw(transitions(i, stages, scope)) for i in range(draw(st.integers(0, 5)))
        ],
        "actions": [draw(actions(f"a{i}", stages, scope)) for i in range(draw(st.integers(0, 5)))],
    }
    if timed:
        # A timed transition from s0, and an event transition whose `when` reads only the
        # customer, so it often holds when a timer is decided (and must not fire then).
        first = {**draw(timed_transitions(stages, scope)), "from": "s0"}
        on_event = {"from": "*", "to": draw(st.sampled_from(stages)), "when": draw(conditions(
            Scope(traits=True, counters=scope.counters, time=True), 1
        ))}  # fmt: skip
        for transition in (first, on_event):
            at = draw(st.integers(0, len(journey["transitions"])))
            journey["transitions"].insert(at, transition)
    if friction is not None:
        journey["friction"] = friction
    if draw(st.booleans()):
        journey["contact_policy"] = draw(contact_policies())
    assume(not _has_a_timer_that_never_fires(journey))
    return journey


def _has_a_timer_that_never_fires(journey: Json) -> bool:
    """Whether the check refuses `journey` for a timed transition that a shorter one always
    beats (drawn now and then when two timed transitions leave one stage). Any other refusal
    is a mistake of these strategies, and raised."""
    try:
        parse_journey(json.dumps(journey), "generated.yaml")
    except RulesError as refused:
        if all("timed transition never fires" in p.message for p in refused.problems):
            return True
        raise
    return False


# -- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One event to decide, with the trait update (if any) that comes just before it."""

    event: Event
    gap_ms: int  # since the previous step's `now_ms`; negative: the event arrives late
    traits: Mapping[str, PropertyValue]
    # A timer step: the customer's next due timer is decided at its due time instead of `event`
    # (whose customer it names); none due, the step decides nothing.
    timer: bool = False


property_values = st.sampled_from(VALUES)
trait_values = st.sampled_from((*VALUES, *DATES, *ZONES))


@st.composite
def step_lists(draw: st.DrawFn, customers: Sequence[str] = ("c0", "c1")) -> list[Step]:
    """Up to 25 events of `customers`, interleaved; about one in eight repeats an earlier id."""
    steps: list[Step] = []
    for index in range(draw(st.integers(1, 25))):
        event_id = f"e{index}"
        if steps and draw(st.integers(0, 7)) == 0:
            event_id = draw(st.sampled_from([s.event.event_id for s in steps]))  # a repeat
        properties = draw(st.dictionaries(st.sampled_from(PROPERTIES), property_values, max_size=3))
        type_ = draw(st.sampled_from((*EVENT_TYPES, "response")))
        if type_ == "response":  # as RecordResponse builds it
            properties["response"] = draw(st.sampled_from(RESPONSES))
            properties["action"] = draw(st.sampled_from(RESPONDED))
        event = Event(
            event_id=event_id,
            customer_id=draw(st.sampled_from(customers)),
            type=type_,
            channel=draw(st.sampled_from(CHANNELS)),
            touchpoint=draw(st.sampled_from(TOUCHPOINTS)),
            properties=properties,
        )
        traits = draw(st.dictionaries(st.sampled_from(TRAITS), trait_values, max_size=2))
        # The first gap moves the start anywhere in a week, so bucket and epoch edges vary.
        gap_ms = draw(st.integers(0, 7 * DAY_MS) if index == 0 else st.sampled_from(GAPS_MS))
        if index and draw(st.integers(0, 2)) == 0:  # about one in three: a timer
            steps.append(Step(event, gap_ms, {}, timer=True))
            continue
        steps.append(Step(event, gap_ms, traits))
    return steps
