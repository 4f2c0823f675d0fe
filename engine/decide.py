"""`decide`: one event, one customer, every journey; pure and total on validated input."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from engine import history
from engine.compile import CompiledJourney, Ruleset
from engine.content import content_for, variant_of
from engine.dates import date_ms, date_slot_name
from engine.decision import (
    Conversion,
    Decision,
    Exposure,
    JourneyOutcome,
    OfferedAction,
    SignalScore,
)
from engine.event import Event, PropertyValue
from engine.explanations import exclusions, not_fired
from engine.kernels import codes
from engine.kernels.actions import record_contact, record_offer
from engine.kernels.compiled import Features, KernelOutput
from engine.kernels.friction import strongest_signals
from engine.kernels.goals import record_exposure
from engine.kernels.journey import decide_journey
from engine.kernels.readout import decay_factor, friction_when_recorded
from engine.propensity import Propensities, propensity_of
from engine.quiet import offset_slot_name, utc_offset_ms
from engine.state import (
    DEDUPE_WINDOW,
    CustomerState,
    JourneyState,
    customer_hash,
    event_id_hash,
)
from engine.timers import type_code

_NO_CODES = np.zeros(3, dtype=np.int64)

# Kernels never write features or read outputs they did not write, so these are reused: one
# set of all-missing feature arrays per size, and per thread one set of output arrays per
# journey position and shape. Measured: ~1.5 µs of the ~21 µs a retail decision took.
_MISSING: dict[int, tuple[npt.NDArray[np.int8], npt.NDArray[np.float64], npt.NDArray[np.int64]]]
_MISSING = {}
_scratch = threading.local()


def _missing(n: int) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    arrays = _MISSING.get(n)
    if arrays is None:
        code = np.full(n, codes.UNKNOWN_STRING, dtype=np.int64)
        arrays = _MISSING[n] = (np.zeros(n, dtype=np.int8), np.zeros(n, dtype=np.float64), code)
    return arrays


def _output(position: int, n_actions: int, top_k: int, n_goals: int) -> KernelOutput:
    """This thread's output arrays for the journey at `position` (decide is not reentrant
    within a thread, and nothing keeps them past the call)."""
    cache: dict[tuple[int, int, int, int], KernelOutput] | None = getattr(_scratch, "outputs", None)
    if cache is None:
        cache = _scratch.outputs = {}
    key = (position, n_actions, top_k, n_goals)
    out = cache.get(key)
    if out is None:
        out = cache[key] = KernelOutput.allocate(n_actions, top_k, n_goals)
    return out


def _encode_values(
    codes_: npt.NDArray[np.int64],
    index: Mapping[str, int],
    values: Mapping[str, PropertyValue],
    strings: Mapping[str, int],
) -> Features:
    """Feature slots for `values`; names no rule reads are skipped without a lookup per slot."""
    n = len(index)
    read = [
        (slot, value) for name, value in values.items() if (slot := index.get(name)) is not None
    ]
    if not read:
        return Features(codes_, *_missing(n))
    missing_kind, missing_num, missing_code = _missing(n)
    kind, num, code = missing_kind.copy(), missing_num.copy(), missing_code.copy()
    for slot, value in read:
        if isinstance(value, str):
            kind[slot] = codes.VALUE_STRING
            code[slot] = strings.get(value, codes.UNKNOWN_STRING)
        else:
            kind[slot] = codes.VALUE_BOOL if isinstance(value, bool) else codes.VALUE_NUMBER
            num[slot] = value
    return Features(codes_, kind, num, code)


def time_zone_offsets(
    ruleset: Ruleset, traits: Mapping[str, PropertyValue], at_ms: int
) -> dict[str, PropertyValue]:
    """For quiet hours: the customer's UTC offset (ms) at `at_ms` in each time zone trait the
    rules read, as the event slots the kernels find it in (`engine.quiet`)."""
    return {
        offset_slot_name(trait, default): utc_offset_ms(traits.get(trait), default, at_ms)
        for trait, default in ruleset.time_zones
    }


def event_features(
    ruleset: Ruleset, event: Event, offsets: Mapping[str, PropertyValue] | None = None
) -> Features:
    """The event as the kernels read it, once for every journey; `offsets` from
    `time_zone_offsets` when the rules have quiet hours."""
    strings = ruleset.strings
    unknown = codes.UNKNOWN_STRING
    event_codes = np.array(
        (
            type_code(strings, event.type),
            strings.get(event.channel, unknown),
            strings.get(event.touchpoint, unknown),
        ),
        dtype=np.int64,
    )
    properties = {**event.properties, **offsets} if offsets else event.properties
    return _encode_values(event_codes, ruleset.property_index, properties, strings)


def customer_trait_features(ruleset: Ruleset, state: CustomerState) -> Features:
    """`trait_features` of the customer's traits: the view the decision that made `state` kept
    (`CustomerState.trait_view`), when it was made under this ruleset."""
    kept = state.trait_view
    if kept is not None and kept[0] == ruleset.version:
        return kept[1]
    return trait_features(ruleset, state.traits)


def trait_features(ruleset: Ruleset, traits: Mapping[str, PropertyValue]) -> Features:
    """The customer's traits as the kernels read them; a date trait also as its ms."""
    if ruleset.date_traits:
        dates = {
            date_slot_name(trait): moment
            for trait in ruleset.date_traits
            if (moment := date_ms(traits.get(trait))) is not None
        }
        traits = {**traits, **dates}
    return _encode_values(_NO_CODES, ruleset.trait_index, traits, ruleset.strings)


class _Ranked(NamedTuple):
    score: float
    journey: int
    action: int
    held_out: bool


# The int state's header, read as one list here in this order.
assert (codes.INT_STAGE, codes.INT_STAGE_ENTERED_MS, codes.INT_LAST_EVENT_MS,
        codes.INT_FRICTION_AT_MS, codes.INT_HEADER_SIZE) == (0, 1, 2, 3, 4)  # fmt: skip


def journey_outcome(
    journey: CompiledJourney,
    state: JourneyState,
    previous_stage: int,
    transition: int,
    level: int,
    friction_score: float,
    strongest: list[int],
    before: JourneyState | None = None,
) -> JourneyOutcome:
    """The outcome of one journey; `before` (the state the event was applied to) adds what
    journey statistics read: time in the previous stage, the previous event, signals fired."""
    offset = journey.rules.friction_offset
    floats = state.floats
    # Lists, not generators, where a decision builds a tuple: a generator is resumed per item.
    top_signals = tuple(
        [SignalScore(journey.signal_ids[i], float(floats[offset + i])) for i in strongest]
    )
    changed = transition != codes.NO_TRANSITION
    entered_ms = last_event_ms = 0
    fired: tuple[str, ...] = ()
    if before is not None:
        # One list of the header, not a numpy scalar read per field.
        _, entered_ms, last_event_ms, _ = before.ints[: codes.INT_HEADER_SIZE].tolist()
        entered_ms = 0 if entered_ms == codes.NEVER_MS else entered_ms
        last_event_ms = 0 if last_event_ms == codes.NEVER_MS else last_event_ms
        fired = _fired_signals(journey, before, state)
    # Positional, in field order: a decision makes one per journey.
    return JourneyOutcome(
        journey.name,
        journey.stage_ids[int(state.ints[codes.INT_STAGE])],
        journey.stage_ids[previous_stage],
        journey.transition_ids[transition] if changed else None,
        journey.transition_lines[transition] if changed else None,
        friction_score,
        journey.level_names[level],
        top_signals,
        entered_ms,
        last_event_ms,
        fired,
    )


def _fired_signals(
    journey: CompiledJourney, before: JourneyState, after: JourneyState
) -> tuple[str, ...]:
    """The signals the event added its weight to: their score rose above the old one decayed
    to the event (weights are > 0, so half a weight tells a firing from rounding). A few signals
    are cheaper as Python floats than as numpy operations: measured, about 2 µs a journey."""
    n_signals = len(journey.signal_ids)
    rules = journey.rules
    new = after.floats[rules.friction_offset : rules.friction_offset + n_signals].tolist()
    if not any(new):
        return ()
    factor = decay_factor(rules, before.ints, int(after.ints[codes.INT_FRICTION_AT_MS]))
    old = before.floats[rules.friction_offset : rules.friction_offset + n_signals].tolist()
    weights = rules.signal_weight.tolist()
    return tuple(
        [
            journey.signal_ids[i]
            for i in range(n_signals)
            if new[i] - old[i] * factor > 0.5 * weights[i]
        ]
    )


def _checked_copy(journey: CompiledJourney, current: JourneyState) -> JourneyState:
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
    dedupe_window: int = DEDUPE_WINDOW,
    propensities: Propensities | None = None,
) -> tuple[Decision, CustomerState]:
    """Apply `event`, which happened at `now_ms` (ms since the epoch), to every journey.

    Returns the decision and the customer's new state; `state` itself is not changed. An
    `event_id` among the customer's last `dedupe_window` events (at most DEDUPE_WINDOW) changes
    nothing and is answered with `duplicate=True` and no actions; an older one is a new event.
    A caller that keeps its own record of decisions (the service's decision ring) passes its
    size, so that both agree on what counts as a repeat. `propensities` is what adaptive
    arbitration has learned (`engine.propensity`); without it, adaptive actions explore.
    """
    window = max(1, min(dedupe_window, DEDUPE_WINDOW))
    event_hash = event_id_hash(event.event_id)
    if event_hash in state.recent_event_ids[-window:]:
        return duplicate_decision(ruleset, state), state
    k = top_k or ruleset.top_k
    run = _run_journeys(ruleset, state, event, now_ms, k, (propensities, np.uint64(event_hash)))
    chosen = run.candidates[:k]
    offered = [c for c in chosen if not c.held_out]
    # One journey: the kernel recorded its offers. Several: only now is the merged list known.
    for candidate in offered if len(ruleset.journeys) > 1 else ():
        journey = ruleset.journeys[candidate.journey]
        ints = run.journeys[journey.name].ints
        last_shown_slot, cap_first, cap_count = journey.offer_slots[candidate.action]
        clock_ms = int(ints[codes.INT_LAST_EVENT_MS])
        record_offer(ints, last_shown_slot, cap_first, cap_count, clock_ms)
        channel = ruleset.strings.get(event.channel, codes.UNKNOWN_STRING)
        record_contact(journey.rules, ints, candidate.action, channel, clock_ms)
    exposures = _record_exposures(ruleset, run.journeys, chosen, event.customer_id)
    decision = Decision(
        journeys=run.outcomes,
        actions=tuple([_offered(ruleset, c, event) for c in offered]),
        held_out=tuple(
            [ruleset.journeys[c.journey].action_ids[c.action] for c in chosen if c.held_out]
        ),
        excluded=(
            exclusions(
                ruleset,
                state,
                run.journeys,
                event,
                run.outputs,
                {(c.journey, c.action) for c in chosen},
            )
            if explain
            else ()
        ),
        not_fired=not_fired(ruleset, state, run.journeys, event, run.outcomes) if explain else (),
        ruleset_version=ruleset.version,
        exposures=exposures,
        conversions=run.conversions,
    )
    recent = (*state.recent_event_ids, event_hash)[-window:]
    after = CustomerState(run.journeys, state.traits, recent, (ruleset.version, run.trait_view))
    return decision, after


class _Run(NamedTuple):
    journeys: dict[str, JourneyState]  # every journey's new state
    outcomes: tuple[JourneyOutcome, ...]
    outputs: list[KernelOutput]
    candidates: list[_Ranked]  # every journey's ranked actions, best first
    conversions: tuple[Conversion, ...]
    trait_view: Features  # the customer's traits as the kernels read them


def _run_journeys(
    ruleset: Ruleset,
    state: CustomerState,
    event: Event,
    now_ms: int,
    top_k: int,
    learned: tuple[Propensities | None, np.uint64],
) -> _Run:
    """One kernel call per journey; their ranked actions merged by score. `learned`: the
    propensities and the event's seed for adaptive actions."""
    propensities, event_seed = learned
    offsets = time_zone_offsets(ruleset, state.traits, now_ms) if ruleset.time_zones else None
    event_view = event_features(ruleset, event, offsets)
    trait_view = customer_trait_features(ruleset, state)
    seed = np.uint64(customer_hash(event.customer_id))
    journeys: dict[str, JourneyState] = dict(state.journeys)
    outcomes: list[JourneyOutcome] = []
    outputs: list[KernelOutput] = []
    candidates: list[_Ranked] = []
    conversions: list[Conversion] = []
    record_offers = len(ruleset.journeys) == 1
    for index, journey in enumerate(ruleset.journeys):
        before = state.journey(journey)
        current = _checked_copy(journey, before)
        n_goals = len(journey.goal_names)
        out = _output(index, len(journey.action_ids), top_k, n_goals)
        previous, transition, n_ranked, level, friction_score = decide_journey(
            journey.packed_arrays, event_view, trait_view, now_ms, seed,
            propensity_of(journey, propensities), event_seed, top_k, record_offers,
            current.ints, current.floats, out,
        )  # fmt: skip
        journeys[journey.name] = current
        _remember_stage(journey, before, current, transition)
        strongest = [i for i in out.top_signals.tolist() if i >= 0]
        outcome = journey_outcome(
            journey, current, previous, transition, level, friction_score, strongest, before
        )
        outcomes.append(outcome)
        outputs.append(out)
        if n_goals:
            conversions.extend(_conversions(journey, out, current.ints, event.customer_id))
        for action in out.ranked[:n_ranked].tolist():
            held_out = out.status[action] == codes.ACTION_HELD_OUT
            candidates.append(_Ranked(float(out.scores[action]), index, action, held_out))
    if len(ruleset.journeys) > 1:
        candidates.sort(key=lambda c: -c.score)  # stable: journey order, then rank, on ties
    return _Run(journeys, tuple(outcomes), outputs, candidates, tuple(conversions), trait_view)


def _remember_stage(
    journey: CompiledJourney, before: JourneyState, after: JourneyState, transition: int
) -> None:
    """The stage a customer starts in (their first event) or moves to, in the recent stages."""
    clock_ms = int(after.ints[codes.INT_LAST_EVENT_MS])
    if before.ints[codes.INT_LAST_EVENT_MS] == codes.NEVER_MS:
        history.record_entry(journey, after, int(before.ints[codes.INT_STAGE]), clock_ms)
    if transition != codes.NO_TRANSITION:
        history.record_entry(journey, after, int(after.ints[codes.INT_STAGE]), clock_ms)


def _conversions(
    journey: CompiledJourney, out: KernelOutput, ints: npt.NDArray[np.int64], customer_id: str
) -> list[Conversion]:
    """The conversions `_attribute_goals` reported for one journey, by name."""
    converted = out.converted
    if converted.tobytes().count(codes.ARM_NONE) == converted.size:  # most events: 0.2 us, not 2.5
        return []
    exposed_at = journey.rules.exposure_index
    stage_at = exposed_at + 2 * len(journey.action_ids)
    found = []
    for action, goal in zip(*np.nonzero(out.converted), strict=True):
        treated = out.converted[action, goal] == codes.ARM_TREATED
        model = journey.model.actions[action]
        found.append(Conversion(
            action=journey.action_ids[action],
            journey=journey.name,
            goal=journey.goal_names[goal],
            treated=bool(treated),
            value=float(out.goal_values[goal]),
            exposed_at_ms=int(ints[exposed_at + action]),
            stage=journey.stage_ids[int(ints[stage_at + action])],
            variant=variant_of(journey.name, model, customer_id) if treated else "",
        ))  # fmt: skip
    return found


def _record_exposures(
    ruleset: Ruleset,
    journeys: Mapping[str, JourneyState],
    chosen: list[_Ranked],
    customer_id: str,
) -> tuple[Exposure, ...]:
    """Remember each chosen action (offered or held out) as an exposure, in journeys with goals;
    the new exposures, in the order chosen."""
    exposures = []
    for candidate in chosen:
        journey = ruleset.journeys[candidate.journey]
        if not journey.goal_names:
            continue
        rules, ints = journey.rules, journeys[journey.name].ints
        arm = codes.ARM_CONTROL if candidate.held_out else codes.ARM_TREATED
        n_actions = len(journey.action_ids)
        exposure_slot = rules.exposure_index + candidate.action
        if record_exposure(
            ints, exposure_slot, n_actions, rules.exposure_window_ms, arm,
            int(ints[codes.INT_LAST_EVENT_MS]),
        ):  # fmt: skip
            action = journey.action_ids[candidate.action]
            stage = journey.stage_ids[int(ints[codes.INT_STAGE])]
            treated = not candidate.held_out
            model = journey.model.actions[candidate.action]
            variant = variant_of(journey.name, model, customer_id) if treated else ""
            exposures.append(Exposure(action, journey.name, treated, stage, variant))
    return tuple(exposures)


def _offered(ruleset: Ruleset, candidate: _Ranked, event: Event) -> OfferedAction:
    return offered_action(ruleset, candidate.journey, candidate.action, candidate.score, event)


def offered_action(
    ruleset: Ruleset, journey_index: int, action: int, score: float, event: Event
) -> OfferedAction:
    """An action offered for `event`: its channel, its content (its variant's, for this
    customer, when it has variants) and its reason."""
    journey = ruleset.journeys[journey_index]
    model = journey.model.actions[action]
    channel = journey.action_channels[action] or event.channel
    if not (model.variants or model.content_by_channel):
        content: Mapping[str, Any] = journey.action_contents[action]
        variant = ""
    else:
        variant = variant_of(journey.name, model, event.customer_id)
        content = content_for(model, variant, channel)
    return OfferedAction(
        action=journey.action_ids[action],
        journey=journey.name,
        score=score,
        channel=channel,
        content=content,
        reason=journey.action_reasons[action],
        variant=variant,
    )


def duplicate_decision(ruleset: Ruleset, state: CustomerState) -> Decision:
    """The answer to a repeated event: where the customer stands, no actions, nothing changed."""
    outcomes = []
    for journey in ruleset.journeys:
        current = state.journey(journey)
        stage = int(current.ints[codes.INT_STAGE])
        level, score = friction_when_recorded(journey.rules, current.ints, current.floats)
        offset, n_signals = journey.rules.friction_offset, len(journey.signal_ids)
        strongest = strongest_signals(current.floats[offset : offset + n_signals])
        outcomes.append(
            journey_outcome(journey, current, stage, codes.NO_TRANSITION, level, score, strongest)
        )
    return Decision(tuple(outcomes), (), (), (), ruleset.version, duplicate=True)
