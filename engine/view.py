"""The single customer view: a customer's state read as of a moment, by name.

Friction and counters are read by `engine.kernels.readout`, as a decision at that moment would
read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine import history
from engine.compile import CompiledJourney, Ruleset
from engine.event import Event, PropertyValue
from engine.kernels import codes, readout
from engine.state import CustomerState, JourneyState
from engine.why import Facts, why_not


@dataclass(frozen=True, slots=True)
class JourneyView:
    journey: str
    stage: str
    stage_entered_ms: int  # 0 for a customer this journey has not seen
    friction_score: float  # decayed to the moment of the view
    friction_level: str
    counters: Mapping[str, float]  # each counter's value at the moment of the view
    last_shown_ms: Mapping[str, int]  # actions offered so far, most recent first
    recent_stages: tuple[tuple[str, int], ...] = ()  # (stage, entered_ms), newest first
    segments: tuple[str, ...] = ()  # the journey's segments the customer's traits put them in


@dataclass(frozen=True, slots=True)
class CustomerView:
    journeys: tuple[JourneyView, ...]
    traits: Mapping[str, PropertyValue]
    last_event_ms: int  # 0 when no event was seen


def _ms(value: int) -> int:
    return 0 if value == codes.NEVER_MS else value


def _counter_values(journey: CompiledJourney, state: JourneyState, now_ms: int) -> dict[str, float]:
    return {
        name: readout.counter_value(journey.rules, state.ints, state.floats, index, now_ms)
        for index, name in enumerate(journey.counter_names)
    }


def _trait_facts(journey: CompiledJourney, traits: Mapping[str, PropertyValue]) -> Facts:
    """What a segment looks at: traits only (the rules check keeps it so)."""
    return Facts(journey.model, Event("", "", ""), traits, {}, 0, 0, 0, {})


def _journey_view(
    journey: CompiledJourney,
    state: JourneyState,
    now_ms: int,
    traits: Mapping[str, PropertyValue] | None = None,
) -> JourneyView:
    traits = traits or {}
    rules, ints = journey.rules, state.ints
    level, friction = readout.friction_at(rules, ints, state.floats, now_ms)
    shown = {
        action: int(ints[rules.action_last_shown_index + i])
        for i, action in enumerate(journey.action_ids)
        if ints[rules.action_last_shown_index + i] != codes.NEVER_MS
    }
    return JourneyView(
        journey=journey.name,
        stage=journey.stage_ids[int(ints[codes.INT_STAGE])],
        stage_entered_ms=_ms(int(ints[codes.INT_STAGE_ENTERED_MS])),
        friction_score=friction,
        friction_level=journey.level_names[level],
        counters=_counter_values(journey, state, now_ms),
        last_shown_ms=dict(sorted(shown.items(), key=lambda item: -item[1])),
        recent_stages=tuple(history.entries(journey, state)),
        segments=tuple(
            name
            for name, segment in journey.model.segments.items()
            if why_not(segment.when, _trait_facts(journey, traits)) is None
        ),
    )


def customer_view(ruleset: Ruleset, state: CustomerState, now_ms: int) -> CustomerView:
    """`state` as it stands at `now_ms`: windows and friction moved on, nothing changed."""
    journeys = tuple(
        _journey_view(j, state.journey(j), now_ms, state.traits) for j in ruleset.journeys
    )
    last = max(int(state.journey(j).ints[codes.INT_LAST_EVENT_MS]) for j in ruleset.journeys)
    return CustomerView(journeys, dict(state.traits), _ms(last))
