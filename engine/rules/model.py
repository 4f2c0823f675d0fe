"""The journey rules language v1, as typed models.

One YAML file holds one journey. `rules/README.md` explains every key for marketers; this module is
the single source of truth for the spelling, and `rules/journey.schema.json` is generated from it.
Cross-references (a transition to an unknown stage, an unknown counter) are checked by
`engine.rules.check`, which knows where each value stands in the file. `model_at` finds the model
behind a path into a file, for error messages that name its keys.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.fields import FieldInfo

from engine.kernels.codes import MAX_CAP_COUNT, MAX_COUNTER_BUCKETS

_DURATION_UNITS_MS = {
    "ms": 1,
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
DURATION_PATTERN = _DURATION.pattern
NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
_NAME_RULE = "lower-case letters, digits and `_`, starting with a letter"


def duration_ms(text: str) -> int:
    """Milliseconds in a duration such as `30s`, `15m`, `2h`, `7d` or `4w` (already validated)."""
    match = _DURATION.match(text)
    assert match is not None, text
    return int(match.group(1)) * _DURATION_UNITS_MS[match.group(2)]


def _positive_duration(text: str) -> str:
    if duration_ms(text) <= 0:
        raise ValueError("a duration must be longer than zero")
    return text


Name = Annotated[
    str,
    StringConstraints(pattern=NAME_PATTERN, max_length=64),
    Field(description=_NAME_RULE),
]
Duration = Annotated[
    str,
    StringConstraints(pattern=DURATION_PATTERN),
    AfterValidator(_positive_duration),
    Field(description="a number and a unit: `500ms`, `30s`, `15m`, `2h`, `7d` or `4w`"),
]
# A duration a time is compared with: zero is meaningful there (`until:` a date, `gt: 0s`: it
# has not passed yet), where a window, a delay or a cooldown of zero is a mistake.
TimeSpan = Annotated[
    str,
    StringConstraints(pattern=DURATION_PATTERN),
    Field(description="a number and a unit: `0s`, `30s`, `15m`, `2h`, `7d` or `4w`"),
]
Scalar = str | float | bool
Arbitration = Literal["priority", "adaptive"]
Response = Literal["impression", "click", "accept", "dismiss"]  # engine.event.RESPONSES
OneOrMany = str | list[str]
Percent = Annotated[float, Field(ge=0, le=100)]


class Strict(BaseModel):
    """Every rules model: unknown keys are mistakes, and a loaded model never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists")
SUBJECTS = ("property", "trait", "counter", "time", "since", "until")
TIME_MEASURES = ("in_stage", "idle")


class Condition(Strict):
    """A test on the event, the customer or the clock. Every key written must hold (logical and)."""

    event: OneOrMany | None = Field(
        None, description="the event type is this one (or one of these)"
    )
    channel: OneOrMany | None = Field(None, description="the event came through this channel")
    touchpoint: OneOrMany | None = Field(None, description="the event happened at this touchpoint")
    response: Response | list[Response] | None = Field(
        None,
        description="the event is a response the app recorded to an offered action "
        "(impression, click, accept, dismiss)",
    )
    property: str | None = Field(None, description="compare this property of the event")
    trait: str | None = Field(None, description="compare this trait of the customer")
    counter: Name | None = Field(None, description="compare the current value of this counter")
    time: Literal["in_stage", "idle"] | None = Field(
        None, description="compare time spent in the current stage, or since the previous event"
    )
    since: str | None = Field(
        None,
        description="compare the time since the customer last sent this event type (this "
        "event included); `exists: false` while they never have",
    )
    until: str | None = Field(
        None,
        description="compare the time from now until the date this trait holds (ISO 8601 or "
        "ms since the epoch; negative once it has passed)",
    )
    segment: Name | None = Field(None, description="the customer belongs to this segment")
    friction: Name | None = Field(None, description="friction is at this level or higher")
    topic: Name | None = Field(
        None, description="with `friction`: the level of this topic's signals alone"
    )
    eq: Scalar | None = None
    ne: Scalar | None = None
    gt: float | TimeSpan | None = None
    gte: float | TimeSpan | None = None
    lt: float | TimeSpan | None = None
    lte: float | TimeSpan | None = None
    in_: list[Scalar] | None = Field(None, alias="in", min_length=1)
    not_in: list[Scalar] | None = Field(None, min_length=1)
    exists: bool | None = None
    all: list[Condition] | None = Field(None, min_length=1, description="every one of these holds")
    any: list[Condition] | None = Field(None, min_length=1, description="at least one holds")
    not_: Condition | None = Field(None, alias="not", description="this does not hold")

    @model_validator(mode="after")
    def _one_subject_per_comparison(self) -> Condition:
        subjects = [s for s in SUBJECTS if getattr(self, s) is not None]
        comparisons = [c for c in COMPARISONS if self.comparison(c) is not None]
        if len(subjects) > 1:
            raise ValueError(
                f"compare one thing per condition, not {' and '.join(subjects)}; "
                "put each comparison in its own item under `all:`"
            )
        if subjects and len(comparisons) != 1:
            found = ", ".join(comparisons) or "none"
            raise ValueError(
                f"`{subjects[0]}:` needs exactly one comparison "
                f"(eq, ne, gt, gte, lt, lte, in, not_in or exists); found {found}"
            )
        if comparisons and not subjects:
            raise ValueError(
                f"`{comparisons[0]}:` compares nothing; add `property:`, `trait:`, "
                "`counter:`, `time:`, `since:` or `until:` to say what it compares"
            )
        if self.topic is not None and self.friction is None:
            raise ValueError(
                f"`topic: {self.topic}` says which friction; add `friction: <level>` beside it"
            )
        if not self.model_fields_set:
            raise ValueError("an empty condition; write what must hold, e.g. `event: purchase`")
        return self

    def comparison(self, name: str) -> Any:
        """The value of comparison `name` (`in` and `not_in` included), or None."""
        return self.in_ if name == "in" else getattr(self, name)


class Stage(Strict):
    id: Name = Field(description=f"the stage's name in `from`, `to` and `stages`: {_NAME_RULE}")
    label: str | None = None
    description: str | None = None


class Segment(Strict):
    description: str | None = None
    when: Condition = Field(description="who belongs to the segment (conditions on traits)")


class Counter(Strict):
    description: str | None = None
    when: Condition = Field(description="which events count (conditions on the event only)")
    window: Duration = Field(description="how far back the counter looks")
    sum: str | None = Field(None, description="add up this numeric property instead of counting")
    precision: Duration | None = Field(
        None,
        description=f"bucket width; default window/8, at most {MAX_COUNTER_BUCKETS} buckets",
    )


class Goal(Strict):
    description: str | None = None
    when: Condition = Field(description="which events reach the goal (conditions on the event)")
    window: Duration = Field(
        description="an exposure to an action counts for the goal this long after it"
    )
    value: str | None = Field(
        None, description="the numeric event property that holds what the goal is worth"
    )


class Transition(Strict):
    id: Name | None = Field(None, description="a name for reports; defaults to `to_<stage>`")
    from_: OneOrMany = Field(alias="from", description='a stage, a list of stages, or "*" for any')
    to: Name = Field(description="the stage the customer moves to (its `id`)")
    when: Condition | None = Field(
        None,
        description="the customer moves on an event for which this holds; with `after` or "
        "`idle`, it must hold (on the customer's state) when the time comes",
    )
    after: Duration | None = Field(
        None, description="fire on its own once the customer has been in a `from` stage this long"
    )
    idle: Duration | None = Field(
        None, description="fire on its own once the customer has sent no event for this long"
    )

    @model_validator(mode="after")
    def _event_or_time(self) -> Transition:
        if self.after is not None and self.idle is not None:
            raise ValueError(
                "a transition fires `after:` a time in the stage or when `idle:`, not both; "
                "write two transitions"
            )
        if self.when is None and not self.is_timed:
            raise ValueError(
                "a transition needs `when:` (the event that moves the customer), "
                "or `after:` / `idle:` to fire on its own when time passes"
            )
        return self

    @property
    def is_timed(self) -> bool:
        """True when the transition fires on time (`after` or `idle`), not on an event."""
        return self.after is not None or self.idle is not None


class Signal(Strict):
    id: Name = Field(description=f"the signal's name, for reports: {_NAME_RULE}")
    description: str | None = None
    when: Condition = Field(description="which events are this signal (conditions on the event)")
    weight: float = Field(gt=0, le=1_000)
    topic: Name | None = Field(
        None,
        description="the topic it is about (e.g. pricing): a condition `friction: high` with "
        "`topic: pricing` reads the level of that topic's signals alone",
    )


class Friction(Strict):
    half_life: Duration = Field(
        description="time for friction to fall to half when nothing happens"
    )
    levels: dict[Name, Annotated[float, Field(ge=0)]] = Field(
        description="level names and the score where each starts; the first starts at 0",
        min_length=1,
    )
    signals: list[Signal] = Field(min_length=1)


class Cap(Strict):
    count: int = Field(ge=1, le=MAX_CAP_COUNT, description="at most this many times")
    per: Duration = Field(description="in any window this long")


class ContactLimit(Strict):
    channel: str = Field(description="the delivery channel limited, e.g. email")
    count: int = Field(ge=1, le=MAX_CAP_COUNT, description="at most this many offers")
    per: Duration = Field(description="in any window this long")


CLOCK_TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"`{name}` is not a time zone name; write one such as UTC, Europe/Paris or "
            "America/New_York"
        ) from None
    return name


class QuietHours(Strict):
    from_: str = Field(
        alias="from", pattern=CLOCK_TIME_PATTERN, description="quiet from this time (HH:MM, local)"
    )
    to: str = Field(pattern=CLOCK_TIME_PATTERN, description="until this time (HH:MM, local)")
    channels: list[str] = Field(min_length=1, description="the outbound channels kept quiet")
    time_zone_trait: Name = Field(
        "time_zone", description="the trait holding the customer's time zone (e.g. Europe/Paris)"
    )
    default_time_zone: Annotated[str, AfterValidator(_time_zone)] = Field(
        "UTC", description="the time zone of a customer whose trait holds none (or no valid one)"
    )

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.from_ == self.to:
            raise ValueError(f"quiet from {self.from_} to {self.to} is no time at all")
        return self


class ContactPolicy(Strict):
    limits: list[ContactLimit] = Field(
        default_factory=list,
        description="at most `count` offers of this journey's actions on `channel` per `per`, "
        "whatever the action",
    )
    quiet_hours: QuietHours | None = Field(
        None, description="hours in the customer's time zone when outbound channels stay quiet"
    )

    @model_validator(mode="after")
    def _one_limit_per_channel_and_window(self) -> ContactPolicy:
        if not self.limits and self.quiet_hours is None:
            raise ValueError("a contact policy says `limits:`, `quiet_hours:` or both")
        seen: set[tuple[str, int]] = set()
        for limit in self.limits:
            key = (limit.channel, duration_ms(limit.per))
            if key in seen:
                raise ValueError(
                    f"two limits on `{limit.channel}` per {limit.per}; keep one, with the "
                    "smaller count"
                )
            seen.add(key)
        return self


class Boost(Strict):
    when: Condition = Field(description="the boost applies while this holds")
    add: float = Field(description="added to the action's score while `when` holds")


class Variant(Strict):
    id: Name = Field(description=f"the variant's name in decisions and the report: {_NAME_RULE}")
    weight: float = Field(gt=0, description="its share of the customers offered the action")
    content: dict[str, Any] = Field(
        default_factory=dict, description="merged over the action's content for this variant"
    )
    content_by_channel: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per delivery channel, merged over the rest"
    )


class Action(Strict):
    id: Name = Field(description=f"the action's name in decisions and reports: {_NAME_RULE}")
    label: str | None = None
    stages: OneOrMany = Field("*", description='stages where the action may be offered; "*" = all')
    segments: list[Name] | None = Field(None, description="customer must be in one of these")
    when: Condition | None = Field(None, description="offered only while this holds")
    channel: str | None = Field(None, description="where it is delivered; default: event channel")
    priority: float = Field(0, ge=-1_000_000, le=1_000_000)
    boosts: list[Boost] = Field(default_factory=list)
    cooldown: Duration | None = Field(None, description="wait this long before offering it again")
    cap: Cap | None = None
    holdout: Percent = Field(0, description="percent of customers who never get it (control)")
    arbitration: Arbitration | None = Field(
        None, description="adaptive: learn its rate; priority: never; default: the journey's"
    )
    content: dict[str, Any] = Field(default_factory=dict, description="passed through to the app")
    content_by_channel: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per delivery channel (email, web...), merged over `content` when the "
        "action is delivered there",
    )
    variants: list[Variant] = Field(
        default_factory=list,
        description="an experiment: each customer offered the action gets one variant, for "
        "good, drawn by weight",
    )


class Journey(Strict):
    """One journey file."""

    journey: Name = Field(description=f"the journey's name, unique in a ruleset: {_NAME_RULE}")
    version: str | int = Field(description="your own label for this revision, e.g. 2026-11-23.1")
    description: str | None = None
    top_k: int = Field(3, ge=1, le=50, description="how many actions a decision returns")
    arbitration: Arbitration = Field(
        "priority",
        description="priority: rank by score; adaptive: multiply each action's score by a "
        "learned, sampled rate of `adaptive_goal` (Thompson sampling)",
    )
    adaptive_goal: Name | None = Field(
        None, description="the goal whose rate adaptive arbitration learns; default: the first"
    )
    stages: list[Stage] = Field(min_length=1, description="in order; customers start in the first")
    segments: dict[Name, Segment] = Field(default_factory=dict)
    counters: dict[Name, Counter] = Field(default_factory=dict)
    friction: Friction | None = None
    goals: dict[Name, Goal] = Field(
        default_factory=dict, description="what counts as success, for the action report"
    )
    transitions: list[Transition] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    contact_policy: ContactPolicy | None = Field(
        None, description="how often a customer may be contacted on each channel, over actions"
    )
    stall_after: Duration = Field(
        "7d", description="a customer with no event for this long counts as stalled (the map)"
    )


# -- the model behind a path into a file ---------------------------------------------------------


def fields_by_key(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the key written in a file (`in`, not `in_`)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _unwrap(current: Any, part: int | str) -> Any:
    """Step through Annotated and unions to the type that validates `part`."""
    while True:
        origin, args = typing.get_origin(current), typing.get_args(current)
        if origin is typing.Annotated:
            current = args[0]
        elif origin in (typing.Union, types.UnionType):
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            containers = [a for a in args if typing.get_origin(a) in (list, dict)]
            if models and isinstance(part, str):
                current = models[0]
            else:
                current = containers[0] if containers else None
        else:
            return current


def model_at(root: type[BaseModel], path: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model that validates the mapping at `path` (keys and list indices) in a file whose
    whole is a `root`; None where the path leads to anything else."""
    current: Any = root
    for part in path:
        current = _unwrap(current, part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = fields_by_key(current).get(str(part))
            current = info.annotation if info else None
        elif typing.get_origin(current) in (list, dict):
            current = typing.get_args(current)[-1]
        else:
            return None
    current = _unwrap(current, "")
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None
