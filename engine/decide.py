"""`decide`: one event, one customer, every journey; pure and total on validated input."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from engine.compile import CompiledJourney, Ruleset
from engine.decision import (
    Decision,
    Exclusion,
    JourneyOutcome,
    OfferedAction,
    SignalScore,
)
from engine.event import Event, PropertyValue
from engine.kernels import codes
from engine.kernels.actions import record_offer
from engine.kernels.journey import decide_journey
from engine.state import (
    DEDUPE_WINDOW,
    CustomerState,
    JourneyState,
    customer_hash,
    event_id_hash,
)

TOP_SIGNALS = 3


class Features(NamedTuple):
    """Values the kernels read: `codes` (event type, channel, touchpoint) and one slot per
    property or trait a rule reads: `kind` (VALUE_*), `num` (numbers, bools as 0/1), `code`
    (interned strings, UNKNOWN_STRING for strings no rule mentions)."""

    codes: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int8]
    num: npt.NDArray[np.float64]
    code: npt.NDArray[np.int64]


class KernelOutput(NamedTuple):
    status: npt.NDArray[np.int8]  # ACTION_* per action
    scores: npt.NDArray[np.float64]
    ranked: npt.NDArray[np.int64]
    counter_values: npt.NDArray[np.float64]
    values: npt.NDArray[np.bool_]  # every condition node
    context: npt.NDArray[np.float64]  # time in stage (ms), idle (ms), friction level

    @classmethod
    def allocate(cls, journey: CompiledJourney, top_k: int) -> KernelOutput:
        rules = journey.rules
        n_actions = rules.action_root.shape[0]
        return cls(
            status=np.empty(n_actions, dtype=np.int8),
            scores=np.empty(n_actions, dtype=np.float64),
            ranked=np.empty(top_k, dtype=np.int64),
            counter_values=np.empty(rules.counter_root.shape[0], dtype=np.float64),
            values=np.empty(rules.node_kind.shape[0], dtype=np.bool_),
            context=np.empty(codes.CONTEXT_SIZE, dtype=np.float64),
        )


_NO_CODES = np.zeros(3, dtype=np.int64)


def _encode_values(
    slots: tuple[str, ...], values: Mapping[str, PropertyValue], strings: Mapping[str, int]
) -> Features:
    n = len(slots)
    kind = np.zeros(n, dtype=np.int8)
    num = np.zeros(n, dtype=np.float64)
    code = np.full(n, codes.UNKNOWN_STRING, dtype=np.int64)
    for slot, name in enumerate(slots):
        value = values.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            kind[slot] = codes.VALUE_STRING
            code[slot] = strings.get(value, codes.UNKNOWN_STRING)
        else:
            kind[slot] = codes.VALUE_BOOL if isinstance(value, bool) else codes.VALUE_NUMBER
            num[slot] = float(value)
    return Features(_NO_CODES, kind, num, code)


def event_features(ruleset: Ruleset, event: Event) -> Features:
    """The event as the kernels read it, once for every journey."""
    strings = ruleset.strings
    unknown = codes.UNKNOWN_STRING
    encoded = _encode_values(ruleset.property_slots, event.properties, strings)
    event_codes = np.array(
        [
            strings.get(event.type, unknown),
            strings.get(event.channel, unknown),
            strings.get(event.touchpoint, unknown),
        ],
        dtype=np.int64,
    )
    return encoded._replace(codes=event_codes)


def trait_features(ruleset: Ruleset, traits: Mapping[str, PropertyValue]) -> Features:
    return _encode_values(ruleset.trait_slots, traits, ruleset.strings)


@dataclass(frozen=True, slots=True)
class _Ranked:
    score: float
    journey: int
    action: int
    held_out: bool


def _journey_outcome(
    journey: CompiledJourney, state: JourneyState, previous_stage: int, transition: int, level: int
) -> JourneyOutcome:
    offset = journey.rules.friction_offset
    signal_scores = state.floats[offset : offset + len(journey.signal_ids)].tolist()
    strongest = sorted(
        (
            SignalScore(name, score)
            for name, score in zip(journey.signal_ids, signal_scores, strict=True)
            if score
        ),
        key=lambda signal: -signal.score,
    )[:TOP_SIGNALS]
    changed = transition != codes.NO_TRANSITION
    return JourneyOutcome(
        journey=journey.name,
        stage=journey.stage_ids[int(state.ints[codes.INT_STAGE])],
        previous_stage=journey.stage_ids[previous_stage],
        transition=journey.transition_ids[transition] if changed else None,
        transition_line=journey.transition_lines[transition] if changed else None,
        friction_score=sum(signal_scores),
        friction_level=journey.level_names[level],
        top_signals=tuple(strongest),
    )


def _friction_level(journey: CompiledJourney, state: JourneyState) -> int:
    """The friction level of a stored state, as of its last event."""
    offset = journey.rules.friction_offset
    total = float(state.floats[offset : offset + len(journey.signal_ids)].sum())
    thresholds = journey.rules.level_threshold.tolist()
    return max(i for i, threshold in enumerate(thresholds) if total >= threshold or i == 0)


def _checked_state(journey: CompiledJourney, state: CustomerState) -> JourneyState:
    current = state.journey(journey)
    if not current.fits(journey):
        raise ValueError(
            f"the state of journey {journey.name!r} has another layout than the ruleset; "
            "decode stored state with engine.codec.decode_state(data, ruleset)"
        )
    return JourneyState(current.ints.copy(), current.floats.copy())


def decide(
    ruleset: Ruleset,
    state: CustomerState,
    event: Event,
    now_ms: int,
    *,
    top_k: int | None = None,
    explain: bool = False,
) -> tuple[Decision, CustomerState]:
    """Apply `event`, which happened at `now_ms` (ms since the epoch), to every journey.

    Returns the decision and the customer's new state; `state` itself is not changed. A repeated
    `event_id` changes nothing and is answered with `duplicate=True` and no actions.
    """
    if state.has_seen(event.event_id):
        return _duplicate(ruleset, state), state
    k = top_k or ruleset.top_k
    event_view = event_features(ruleset, event)
    trait_view = trait_features(ruleset, state.traits)
    seed = np.uint64(customer_hash(event.customer_id))
    new_journeys: dict[str, JourneyState] = dict(state.journeys)
    outcomes: list[JourneyOutcome] = []
    outputs: list[KernelOutput] = []
    candidates: list[_Ranked] = []
    for index, journey in enumerate(ruleset.journeys):
        current = _checked_state(journey, state)
        out = KernelOutput.allocate(journey, k)
        previous, transition, n_ranked = decide_journey(
            journey.packed,
            event_view,
            trait_view,
            now_ms,
            seed,
            k,
            current.ints,
            current.floats,
            out,
        )
        new_journeys[journey.name] = current
        level = int(out.context[codes.CONTEXT_FRICTION_LEVEL])
        outcomes.append(_journey_outcome(journey, current, previous, transition, level))
        outputs.append(out)
        for action in out.ranked[:n_ranked]:
            held_out = out.status[action] == codes.ACTION_HELD_OUT
            candidates.append(_Ranked(float(out.scores[action]), index, int(action), held_out))
    if len(ruleset.journeys) > 1:
        candidates.sort(key=lambda c: -c.score)  # stable: journey order, then rank, on ties
    chosen = candidates[:k]
    offered = [c for c in chosen if not c.held_out]
    for candidate in offered:
        journey = ruleset.journeys[candidate.journey]
        ints = new_journeys[journey.name].ints
        clock_ms = int(ints[codes.INT_LAST_EVENT_MS])
        record_offer(journey.packed, ints, candidate.action, clock_ms)
    decision = Decision(
        journeys=tuple(outcomes),
        actions=tuple(_offered(ruleset, c, event) for c in offered),
        held_out=tuple(
            ruleset.journeys[c.journey].action_ids[c.action] for c in chosen if c.held_out
        ),
        excluded=_exclusions(ruleset, outputs, chosen) if explain else (),
        ruleset_version=ruleset.version,
    )
    recent = (*state.recent_event_ids, event_id_hash(event.event_id))[-DEDUPE_WINDOW:]
    return decision, CustomerState(new_journeys, state.traits, recent)


def _offered(ruleset: Ruleset, candidate: _Ranked, event: Event) -> OfferedAction:
    journey = ruleset.journeys[candidate.journey]
    action = candidate.action
    return OfferedAction(
        action=journey.action_ids[action],
        journey=journey.name,
        score=candidate.score,
        channel=journey.action_channels[action] or event.channel,
        content=journey.action_contents[action],
        reason=f"{journey.action_reasons[action]}; score {candidate.score:g}",
    )


def _exclusions(
    ruleset: Ruleset, outputs: list[KernelOutput], chosen: list[_Ranked]
) -> tuple[Exclusion, ...]:
    kept = {(c.journey, c.action) for c in chosen}
    excluded = []
    for index, (journey, out) in enumerate(zip(ruleset.journeys, outputs, strict=True)):
        for action, status in enumerate(out.status):
            if (index, action) in kept:
                continue
            reason = codes.ACTION_STATUS_NAMES[
                codes.ACTION_OUTRANKED if status == codes.ACTION_OFFERED else status
            ]
            excluded.append(Exclusion(journey.action_ids[action], journey.name, reason))
    return tuple(excluded)


def _duplicate(ruleset: Ruleset, state: CustomerState) -> Decision:
    outcomes = []
    for journey in ruleset.journeys:
        current = state.journey(journey)
        stage = int(current.ints[codes.INT_STAGE])
        level = _friction_level(journey, current)
        outcomes.append(_journey_outcome(journey, current, stage, codes.NO_TRANSITION, level))
    return Decision(tuple(outcomes), (), (), (), ruleset.version, duplicate=True)
