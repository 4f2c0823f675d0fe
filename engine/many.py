"""`decide_many`: many customers' events decided at once, each exactly as `decide()` would.

The events are turned into columns once (`EventBatch`), grouped by customer in order of arrival,
and decided in chunks of whole customers, one kernel call per chunk (`engine.kernels.many`). What
comes back is columns too (`ManyDecisions`): per event and journey the stage, the transition and
the friction; per event the actions chosen, the exposures and the conversions; per customer the
final state. `ManyDecisions.decision(i)` builds event `i`'s `Decision` for when one is wanted.

Equal to a loop of `decide()` over the events in their order, each at its own time, starting
from each customer's state in `states` (a new customer's otherwise), with the same `top_k`,
`dedupe_window` and `propensities`: customers never share state, so grouping them changes
nothing. A `Decision` rebuilt here leaves out what only `decide()` computes per call: the
strongest friction signals, the journey-statistics fields and explanations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from engine.compile import CompiledJourney, Ruleset
from engine.content import variant_of
from engine.decide import (
    customer_trait_features,
    duplicate_decision,
    journey_outcome,
    offered_action,
    time_zone_offsets,
)
from engine.decision import Conversion, Decision, Exposure, JourneyOutcome, OfferedAction
from engine.event import Event
from engine.history import STAGE_HISTORY
from engine.kernels import codes
from engine.kernels.compiled import KernelOutput
from engine.kernels.friction import strongest_signals
from engine.kernels.many import (
    CONVERSION_ACTION,
    CONVERSION_ARM,
    CONVERSION_COLUMNS,
    CONVERSION_EVENT,
    CONVERSION_EXPOSED_AT_MS,
    CONVERSION_GOAL,
    CONVERSION_JOURNEY,
    CONVERSION_STAGE,
    SLOT_COLUMNS,
    SLOT_EXPOSURE_INDEX,
    SLOT_EXPOSURE_WINDOW_MS,
    SLOT_FIRST_CAP,
    SLOT_HISTORY_ENTRIES,
    SLOT_HISTORY_INDEX,
    SLOT_LAST_SHOWN_INDEX,
    SLOT_N_ACTIONS,
    SLOT_N_GOALS,
    decide_many_kernel,
)
from engine.propensity import Propensities, propensity_of
from engine.state import (
    DEDUPE_WINDOW,
    CustomerState,
    JourneyState,
    customer_hash,
    event_id_hash,
)
from engine.timers import type_code

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

# Events per kernel call (whole customers, so a chunk may hold more): large enough that the call
# costs nothing per event, small enough to stop between chunks.
CHUNK_EVENTS = 65_536


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events as the kernels read them: one row per event, in the order given."""

    customer_ids: tuple[str, ...]  # each customer once, in order of first event
    customer: Ints  # per event: its customer's index in `customer_ids`
    now_ms: Ints  # when each event happened (ms since the epoch)
    codes: Ints  # (n, 3): event type, channel, touchpoint as interned strings
    kind: npt.NDArray[np.int8]  # (n, n_properties): VALUE_* of each property a rule reads
    num: Floats
    code: Ints
    event_hash: npt.NDArray[np.uint64]  # `event_id_hash` of each event id
    channels: tuple[str, ...]  # each event's channel: an action's default channel
    event_ids: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.now_ms.shape[0])


def encode_events(ruleset: Ruleset, events: Sequence[Event], times_ms: Sequence[int]) -> EventBatch:
    """`events`, which happened at `times_ms` (ms since the epoch), as columns for `ruleset`."""
    if len(events) != len(times_ms):
        raise ValueError(f"{len(events)} events but {len(times_ms)} times; give one time each")
    strings, unknown = ruleset.strings, codes.UNKNOWN_STRING
    customers: dict[str, int] = {}
    customer = np.fromiter(
        (customers.setdefault(e.customer_id, len(customers)) for e in events),
        dtype=np.int64, count=len(events),
    )  # fmt: skip
    event_codes = np.array(
        [
            (type_code(strings, e.type), strings.get(e.channel, unknown),
             strings.get(e.touchpoint, unknown))
            for e in events
        ],
        dtype=np.int64,
    ).reshape(len(events), 3)  # fmt: skip
    kind, num, code = _properties(ruleset, events)
    return EventBatch(
        customer_ids=tuple(customers),
        customer=customer,
        now_ms=np.asarray(times_ms, dtype=np.int64),
        codes=event_codes,
        kind=kind,
        num=num,
        code=code,
        event_hash=np.fromiter(
            (event_id_hash(e.event_id) for e in events), dtype=np.uint64, count=len(events)
        ),
        channels=tuple(e.channel for e in events),
        event_ids=tuple(e.event_id for e in events),
    )


def _properties(
    ruleset: Ruleset, events: Sequence[Event]
) -> tuple[npt.NDArray[np.int8], Floats, Ints]:
    """The property feature rows of `events` (see `engine.decide.event_features`)."""
    index, strings = ruleset.property_index, ruleset.strings
    n, width = len(events), len(index)
    kind = np.zeros((n, width), dtype=np.int8)
    num = np.zeros((n, width), dtype=np.float64)
    code = np.full((n, width), codes.UNKNOWN_STRING, dtype=np.int64)
    if not width:
        return kind, num, code
    for row, event in enumerate(events):
        for name, value in event.properties.items():
            slot = index.get(name)
            if slot is None:
                continue
            if isinstance(value, str):
                kind[row, slot] = codes.VALUE_STRING
                code[row, slot] = strings.get(value, codes.UNKNOWN_STRING)
            else:
                kind[row, slot] = (
                    codes.VALUE_BOOL if isinstance(value, bool) else codes.VALUE_NUMBER
                )
                num[row, slot] = value
    return kind, num, code


@dataclass(frozen=True, slots=True)
class _Customers:
    """Per customer: the kernel's view (order of their events, hashes, traits, remembered ids)
    and their states as one row per customer in each journey's arrays."""

    order: Ints
    starts: Ints
    hashes: npt.NDArray[np.uint64]
    traits: tuple[Ints, npt.NDArray[np.int8], Floats, Ints]
    recent: npt.NDArray[np.uint64]
    n_recent: Ints
    ints: tuple[Ints, ...]
    floats: tuple[Floats, ...]


def _customers(
    ruleset: Ruleset,
    batch: EventBatch,
    states: Mapping[str, CustomerState],
    window: int,
) -> _Customers:
    n = len(batch.customer_ids)
    order = np.argsort(batch.customer, kind="stable")
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(batch.customer, minlength=n), out=starts[1:])
    width = len(ruleset.trait_index)
    trait_kind = np.zeros((n, width), dtype=np.int8)
    trait_num = np.zeros((n, width), dtype=np.float64)
    trait_code = np.full((n, width), codes.UNKNOWN_STRING, dtype=np.int64)
    recent = np.zeros((n, window), dtype=np.uint64)
    n_recent = np.zeros(n, dtype=np.int64)
    ints, floats = [], []
    for journey in ruleset.journeys:
        initial_ints, initial_floats = journey.initial_state()
        ints.append(np.tile(initial_ints, (n, 1)))
        floats.append(np.tile(initial_floats, (n, 1)))
    for c, customer_id in enumerate(batch.customer_ids):
        state = states.get(customer_id)
        if state is None:
            continue
        if state.traits:
            features = customer_trait_features(ruleset, state)
            trait_kind[c], trait_num[c], trait_code[c] = features.kind, features.num, features.code
        remembered = state.recent_event_ids[-window:]
        recent[c, : len(remembered)] = remembered
        n_recent[c] = len(remembered)
        for j, journey in enumerate(ruleset.journeys):
            current = _fitting(journey, state)
            ints[j][c], floats[j][c] = current.ints, current.floats
    no_codes = np.zeros(3, dtype=np.int64)
    return _Customers(
        order=order.astype(np.int64),
        starts=starts,
        hashes=np.fromiter(
            (customer_hash(c) for c in batch.customer_ids), dtype=np.uint64, count=n
        ),
        traits=(no_codes, trait_kind, trait_num, trait_code),
        recent=recent,
        n_recent=n_recent,
        ints=tuple(ints),
        floats=tuple(floats),
    )


def _fitting(journey: CompiledJourney, state: CustomerState) -> JourneyState:
    current = state.journey(journey)
    if not current.fits(journey):
        raise ValueError(
            f"the state of journey {journey.name!r} has another layout than the ruleset; "
            "decode stored state with engine.codec.decode_state(data, ruleset)"
        )
    return current


@dataclass(frozen=True, slots=True)
class PerJourney:
    """Per event and journey (n_events, n_journeys): after the event, the stage; before it, the
    previous stage; the transition that fired (NO_TRANSITION: none); the friction level and
    score. Indices into the journey's `stage_ids`, `transition_ids`, `level_names`."""

    stage: Ints
    previous_stage: Ints
    transition: Ints
    level: Ints
    score: Floats

    @classmethod
    def allocate(cls, n_events: int, n_journeys: int) -> PerJourney:
        shape = (n_events, n_journeys)
        stage, previous, transition, level = (np.zeros(shape, dtype=np.int64) for _ in range(4))
        return cls(stage, previous, transition, level, np.zeros(shape, dtype=np.float64))


@dataclass(frozen=True, slots=True)
class Chosen:
    """Per event, the actions chosen, best first (n_events, top_k; the first `count` of each row
    are filled): journey and action indices, held out (control) or offered, score, and whether
    the choice was recorded as a new exposure; and whether the event was a repeat."""

    journey: Ints
    action: Ints
    held: Bools
    score: Floats
    count: Ints
    exposed: Bools
    duplicate: Bools

    @classmethod
    def allocate(cls, n_events: int, top_k: int) -> Chosen:
        shape = (n_events, top_k)
        return cls(
            journey=np.zeros(shape, dtype=np.int64),
            action=np.zeros(shape, dtype=np.int64),
            held=np.zeros(shape, dtype=np.bool_),
            score=np.zeros(shape, dtype=np.float64),
            count=np.zeros(n_events, dtype=np.int64),
            exposed=np.zeros(shape, dtype=np.bool_),
            duplicate=np.zeros(n_events, dtype=np.bool_),
        )


@dataclass(frozen=True)
class ManyDecisions:
    """What `decide_many` decided, as columns in the order the events were given."""

    ruleset: Ruleset
    batch: EventBatch
    journeys: PerJourney
    chosen: Chosen
    conversions: Ints  # (n, CONVERSION_COLUMNS), see engine.kernels.many.CONVERSION_*
    conversion_values: Floats
    _customers: _Customers = field(repr=False)
    _states_in: Mapping[str, CustomerState] = field(repr=False)

    def __len__(self) -> int:
        return len(self.batch)

    @cached_property
    def _conversions_by_event(self) -> dict[int, list[int]]:
        rows: dict[int, list[int]] = defaultdict(list)
        for row, event in enumerate(self.conversions[:, CONVERSION_EVENT].tolist()):
            rows[event].append(row)
        return rows

    def state(self, customer_id: str) -> CustomerState:
        """The customer's state after their last event in the batch."""
        c = self.batch.customer_ids.index(customer_id)
        return self._state(c)

    def states(self) -> dict[str, CustomerState]:
        """Every customer's state after their last event in the batch."""
        return {customer: self._state(c) for c, customer in enumerate(self.batch.customer_ids)}

    def _state(self, c: int) -> CustomerState:
        customers, ruleset = self._customers, self.ruleset
        before = self._states_in.get(self.batch.customer_ids[c])
        events = customers.order[customers.starts[c] : customers.starts[c + 1]]
        if before is not None and self.chosen.duplicate[events].all():
            return before  # only repeats: nothing changed, as decide() returns the same state
        journeys = dict(before.journeys) if before is not None else {}
        for j, journey in enumerate(ruleset.journeys):
            journeys[journey.name] = JourneyState(
                customers.ints[j][c].copy(), customers.floats[j][c].copy()
            )
        recent = tuple(customers.recent[c, : customers.n_recent[c]].tolist())
        if before is None:
            return CustomerState(journeys, {}, recent)
        return CustomerState(journeys, before.traits, recent, before.trait_view)

    def state_at(self, i: int) -> CustomerState:
        """The state of event `i`'s customer after their last event in the batch."""
        return self._state(int(self.batch.customer[i]))

    def decided_as_decide(
        self, i: int, before: CustomerState, event: Event
    ) -> tuple[Decision, CustomerState]:
        """Event `i` (`event`)'s decision and the state after it, exactly as
        `decide(ruleset, before, event, …)` returns them without `explain`, for a customer
        whose only event in the batch it is (`before`: their state in `states`, a new
        customer's when absent): the decision with what `decision(i)` leaves out but the
        explanations, the strongest signals, the fields journey statistics read and each
        action's variant."""
        ruleset, per, chosen = self.ruleset, self.journeys, self.chosen
        after = self.state_at(i)
        if chosen.duplicate[i]:
            return duplicate_decision(ruleset, before), after
        outcomes = []
        for j, journey in enumerate(ruleset.journeys):
            current = after.journey(journey)
            offset, n_signals = journey.rules.friction_offset, len(journey.signal_ids)
            outcomes.append(journey_outcome(
                journey, current, int(per.previous_stage[i, j]), int(per.transition[i, j]),
                int(per.level[i, j]), float(per.score[i, j]),
                strongest_signals(current.floats[offset : offset + n_signals]),
                before=before.journey(journey),
            ))  # fmt: skip
        offered, held_out, exposures = [], [], []
        for r in range(int(chosen.count[i])):
            j, action = int(chosen.journey[i, r]), int(chosen.action[i, r])
            journey, held = ruleset.journeys[j], bool(chosen.held[i, r])
            if held:
                held_out.append(journey.action_ids[action])
            else:
                offered.append(offered_action(ruleset, j, action, float(chosen.score[i, r]), event))
            if chosen.exposed[i, r]:
                model = journey.model.actions[action]
                variant = "" if held else variant_of(journey.name, model, event.customer_id)
                stage = journey.stage_ids[int(per.stage[i, j])]
                exposures.append(
                    Exposure(journey.action_ids[action], journey.name, not held, stage, variant)
                )
        decision = Decision(
            journeys=tuple(outcomes),
            actions=tuple(offered),
            held_out=tuple(held_out),
            excluded=(),
            ruleset_version=ruleset.version,
            exposures=tuple(exposures),
            conversions=tuple(
                self._conversion(row, event.customer_id) for row in self._conversions_by_event[i]
            ),
        )
        return decision, after

    def decision(self, i: int) -> Decision:
        """Event `i`'s decision, as `decide()` answered it (without the strongest signals,
        journey-statistics fields and explanations, which only `decide()` computes)."""
        ruleset, per, chosen = self.ruleset, self.journeys, self.chosen
        outcomes = tuple(_outcome(journey, per, i, j) for j, journey in enumerate(ruleset.journeys))
        if chosen.duplicate[i]:
            return Decision(outcomes, (), (), (), ruleset.version, duplicate=True)
        offered, held_out, exposures = [], [], []
        for r in range(int(chosen.count[i])):
            journey = ruleset.journeys[int(chosen.journey[i, r])]
            action, held = int(chosen.action[i, r]), bool(chosen.held[i, r])
            if held:
                held_out.append(journey.action_ids[action])
            else:
                offered.append(
                    OfferedAction(
                        action=journey.action_ids[action],
                        journey=journey.name,
                        score=float(chosen.score[i, r]),
                        channel=journey.action_channels[action] or self.batch.channels[i],
                        content=journey.action_contents[action],
                        reason=journey.action_reasons[action],
                    )
                )
            if chosen.exposed[i, r]:
                stage = journey.stage_ids[int(per.stage[i, int(chosen.journey[i, r])])]
                exposures.append(
                    Exposure(journey.action_ids[action], journey.name, not held, stage)
                )
        return Decision(
            journeys=outcomes,
            actions=tuple(offered),
            held_out=tuple(held_out),
            excluded=(),
            ruleset_version=ruleset.version,
            exposures=tuple(exposures),
            conversions=tuple(self._conversion(row) for row in self._conversions_by_event[i]),
        )

    def _conversion(self, row: int, customer_id: str | None = None) -> Conversion:
        """A conversion found; with `customer_id`, the variant it was treated with."""
        columns = self.conversions[row]
        journey = self.ruleset.journeys[int(columns[CONVERSION_JOURNEY])]
        action = int(columns[CONVERSION_ACTION])
        treated = int(columns[CONVERSION_ARM]) == codes.ARM_TREATED
        variant = (
            variant_of(journey.name, journey.model.actions[action], customer_id)
            if customer_id is not None and treated
            else ""
        )
        return Conversion(
            action=journey.action_ids[int(columns[CONVERSION_ACTION])],
            journey=journey.name,
            goal=journey.goal_names[int(columns[CONVERSION_GOAL])],
            treated=treated,
            value=float(self.conversion_values[row]),
            exposed_at_ms=int(columns[CONVERSION_EXPOSED_AT_MS]),
            stage=journey.stage_ids[int(columns[CONVERSION_STAGE])],
            variant=variant,
        )


def _outcome(journey: CompiledJourney, per: PerJourney, i: int, j: int) -> JourneyOutcome:
    transition = int(per.transition[i, j])
    changed = transition != codes.NO_TRANSITION
    return JourneyOutcome(
        journey=journey.name,
        stage=journey.stage_ids[int(per.stage[i, j])],
        previous_stage=journey.stage_ids[int(per.previous_stage[i, j])],
        transition=journey.transition_ids[transition] if changed else None,
        transition_line=journey.transition_lines[transition] if changed else None,
        friction_score=float(per.score[i, j]),
        friction_level=journey.level_names[int(per.level[i, j])],
        top_signals=(),
    )


def decide_many(
    ruleset: Ruleset,
    events: EventBatch | Sequence[Event],
    times_ms: Sequence[int] | None = None,
    states: Mapping[str, CustomerState] | None = None,
    *,
    top_k: int | None = None,
    dedupe_window: int = DEDUPE_WINDOW,
    propensities: Propensities | None = None,
    chunk_events: int = CHUNK_EVENTS,
) -> ManyDecisions:
    """Decide `events` (an `EventBatch`, or events with their `times_ms`), as a loop of
    `decide(ruleset, state, event, time, top_k=…, dedupe_window=…, propensities=…)` over them in
    order would, each customer starting from `states` (a new customer when absent).

    Customers are decided in chunks of about `chunk_events` events, one kernel call each; the
    states in `states` are not changed.
    """
    if isinstance(events, EventBatch):
        batch = events
    else:
        if times_ms is None:
            raise ValueError("give times_ms, one per event, or an EventBatch")
        batch = encode_events(ruleset, events, times_ms)
    k = top_k or ruleset.top_k
    window = max(1, min(dedupe_window, DEDUPE_WINDOW))
    states_in = states if states is not None else {}
    customers = _customers(ruleset, batch, states_in, window)
    kind, num = _with_time_zones(ruleset, batch, states_in)
    per, chosen = (
        PerJourney.allocate(len(batch), len(ruleset.journeys)),
        Chosen.allocate(len(batch), k),
    )
    rules_arrays = (
        tuple(journey.packed_arrays for journey in ruleset.journeys),
        tuple(propensity_of(journey, propensities) for journey in ruleset.journeys),
        tuple(
            tuple(KernelOutput.allocate(len(j.action_ids), k, len(j.goal_names)))
            for j in ruleset.journeys
        ),
        *_slots(ruleset),
    )
    event_arrays = (batch.now_ms, batch.codes, kind, num, batch.code, batch.event_hash)
    customer_arrays = (
        customers.order, customers.starts, customers.hashes, customers.traits,
        customers.recent, customers.n_recent,
    )  # fmt: skip
    conversions: list[Ints] = [np.zeros((0, CONVERSION_COLUMNS), dtype=np.int64)]
    values: list[Floats] = [np.zeros(0, dtype=np.float64)]
    for first, end in _chunks(customers.starts, chunk_events):
        found, worth = decide_many_kernel(
            rules_arrays, event_arrays, customer_arrays, (customers.ints, customers.floats),
            (first, end), k, tuple(getattr(per, f) for f in _PER_JOURNEY),
            tuple(getattr(chosen, f) for f in _CHOSEN),
        )  # fmt: skip
        conversions.append(found)
        values.append(worth)
    return ManyDecisions(
        ruleset=ruleset,
        batch=batch,
        journeys=per,
        chosen=chosen,
        conversions=np.concatenate(conversions),
        conversion_values=np.concatenate(values),
        _customers=customers,
        _states_in=states_in,
    )


def _with_time_zones(
    ruleset: Ruleset, batch: EventBatch, states: Mapping[str, CustomerState]
) -> tuple[npt.NDArray[np.int8], Floats]:
    """The batch's property kinds and numbers with each event's UTC offset of its customer
    filled in, as `decide()` fills it for quiet hours (copies: the batch is left as it was)."""
    if not ruleset.time_zones:
        return batch.kind, batch.num
    kind, num = batch.kind.copy(), batch.num.copy()
    for e, (c, at_ms) in enumerate(
        zip(batch.customer.tolist(), batch.now_ms.tolist(), strict=True)
    ):
        state = states.get(batch.customer_ids[c])
        traits = state.traits if state is not None else {}
        for name, offset in time_zone_offsets(ruleset, traits, at_ms).items():
            slot = ruleset.property_index[name]
            kind[e, slot], num[e, slot] = codes.VALUE_NUMBER, float(offset)
    return kind, num


def _slots(ruleset: Ruleset) -> tuple[Ints, Ints]:
    """Where the batched kernel records offers and exposures: per journey its SLOT_* columns,
    and per action of every journey its first cap slot and cap count."""
    slots = np.zeros((len(ruleset.journeys), SLOT_COLUMNS), dtype=np.int64)
    caps: list[tuple[int, int]] = []
    for j, journey in enumerate(ruleset.journeys):
        rules = journey.rules
        slots[j, SLOT_EXPOSURE_INDEX] = rules.exposure_index
        slots[j, SLOT_N_ACTIONS] = len(journey.action_ids)
        slots[j, SLOT_EXPOSURE_WINDOW_MS] = rules.exposure_window_ms
        slots[j, SLOT_LAST_SHOWN_INDEX] = rules.action_last_shown_index
        slots[j, SLOT_N_GOALS] = len(journey.goal_names)
        slots[j, SLOT_FIRST_CAP] = len(caps)
        slots[j, SLOT_HISTORY_INDEX] = journey.history_index
        slots[j, SLOT_HISTORY_ENTRIES] = STAGE_HISTORY
        caps.extend((cap_first, cap_count) for _, cap_first, cap_count in journey.offer_slots)
    return slots, np.array(caps, dtype=np.int64).reshape(len(caps), 2)


_PER_JOURNEY = ("stage", "previous_stage", "transition", "level", "score")
_CHOSEN = ("journey", "action", "held", "score", "count", "exposed", "duplicate")


def _chunks(starts: Ints, chunk_events: int) -> list[tuple[int, int]]:
    """Ranges of whole customers holding about `chunk_events` events each (at least one
    customer per range)."""
    n = starts.shape[0] - 1
    chunks, first = [], 0
    while first < n:
        end = int(np.searchsorted(starts, starts[first] + chunk_events, side="right")) - 1
        end = min(max(end, first + 1), n)
        chunks.append((first, end))
        first = end
    return chunks
