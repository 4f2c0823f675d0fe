"""What `decide` answers: stages, friction and ranked actions, with their reasons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple


class SignalScore(NamedTuple):
    """One friction signal's current (decayed) contribution to the score."""

    signal: str
    score: float


class JourneyOutcome(NamedTuple):
    """Where one journey stands for the customer after the event.

    Like `Decision`, a named tuple rather than a frozen dataclass: every event makes one per
    journey, and a frozen dataclass sets each field through `object.__setattr__`."""

    journey: str
    stage: str
    previous_stage: str
    transition: str | None  # the transition that fired, if the stage changed
    transition_line: int | None  # its line in the journey file
    friction_score: float
    friction_level: str
    top_signals: tuple[SignalScore, ...]  # the largest contributions to friction, highest first
    # For journey statistics: when the customer entered `previous_stage` and when their previous
    # event was (ms since the epoch; 0 when this journey had not seen them), and the friction
    # signals this event fired, in signal order.
    previous_stage_entered_ms: int = 0
    previous_event_ms: int = 0
    fired_signals: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.transition is not None


@dataclass(frozen=True, slots=True)
class OfferedAction:
    action: str
    journey: str
    score: float
    channel: str
    content: Mapping[str, Any]
    reason: str
    variant: str = ""  # the experiment arm this customer gets (`variants`), "" for none


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Why an action was not offered: one of `engine.kernels.codes.ACTION_STATUS_NAMES`."""

    action: str
    journey: str
    reason: str
    detail: str = ""  # in a marketer's words: the failing condition and its values, when...


@dataclass(frozen=True, slots=True)
class NotFired:
    """A transition from the customer's stage that did not fire, and the first part of its
    `when` that failed (with `decide(..., explain=True)`)."""

    journey: str
    transition: str
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class Exposure:
    """The customer met an action, as its first exposure within the journey's goal windows:
    offered it (`treated`) or held out in its place (control)."""

    action: str
    journey: str
    treated: bool
    stage: str  # where the customer was when exposed
    variant: str = ""  # a treated customer's arm of the action's `variants`


@dataclass(frozen=True, slots=True)
class Conversion:
    """The event reached `goal` within its window after the customer's exposure to `action`:
    one conversion of this customer for that action and goal, worth `value`. Reports count it
    on the day of the exposure (`exposed_at_ms`), so that each day's exposed customers are a
    cohort whose conversions follow them."""

    action: str
    journey: str
    goal: str
    treated: bool
    value: float
    exposed_at_ms: int
    stage: str  # where the customer was when exposed
    variant: str = ""  # a treated customer's arm of the action's `variants`


class Decision(NamedTuple):
    """What `decide` answers for one event (a named tuple: see `JourneyOutcome`)."""

    journeys: tuple[JourneyOutcome, ...]
    actions: tuple[OfferedAction, ...]
    held_out: tuple[str, ...]  # actions this customer would have been offered, withheld as control
    excluded: tuple[Exclusion, ...]  # filled only when `decide(..., explain=True)`
    ruleset_version: str
    duplicate: bool = False  # the event id was seen before; nothing changed
    exposures: tuple[Exposure, ...] = ()  # new exposures: only in journeys with goals
    conversions: tuple[Conversion, ...] = ()
    not_fired: tuple[NotFired, ...] = ()  # filled only when `decide(..., explain=True)`

    @property
    def outcome(self) -> JourneyOutcome:
        """The first journey's outcome: the whole story when one journey is loaded."""
        return self.journeys[0]

    @property
    def stage(self) -> str:
        return self.journeys[0].stage

    @property
    def is_held_out(self) -> bool:
        return bool(self.held_out)

    @property
    def action_ids(self) -> tuple[str, ...]:
        return tuple(a.action for a in self.actions)
