"""The batched kernel: many customers' events in one call, each event decided as `decide()` does.

`_decide_many` loops over customers, and over each customer's events in order, calling the same
per-event kernel as `decide()` (`_decide_journey`) for every journey, then doing in compiled code
what `decide()` does in Python after it: merging the journeys' rankings, recording offers and
exposures, collecting conversions and remembering the event id. A customer's state never leaves
its row of the state arrays between events, and nothing is boxed per event.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.kernels.actions import _record_contact, _record_offer
from engine.kernels.codes import (
    ACTION_HELD_OUT,
    ARM_CONTROL,
    ARM_NONE,
    ARM_TREATED,
    INT_FRICTION_AT_MS,
    INT_LAST_EVENT_MS,
    INT_STAGE,
    NEVER_MS,
    NO_TRANSITION,
)
from engine.kernels.compiled import _packed, _unpack_rules
from engine.kernels.goals import record_exposure
from engine.kernels.jit import kernel
from engine.kernels.journey import _decide_journey
from engine.kernels.readout import _friction_readout

# Columns of the conversions `_decide_many` returns (int64), beside their values (float64).
CONVERSION_EVENT = 0
CONVERSION_JOURNEY = 1
CONVERSION_ACTION = 2
CONVERSION_GOAL = 3
CONVERSION_ARM = 4
CONVERSION_EXPOSED_AT_MS = 5
CONVERSION_STAGE = 6
CONVERSION_COLUMNS = 7

# The same function `decide()` calls in Python, compiled: one source for both.
_record_exposure = kernel(record_exposure)


@kernel
def _is_repeat(recent, n_recent, event_hash):
    """True when `event_hash` is among the first `n_recent` entries of `recent`."""
    for r in range(n_recent):
        if recent[r] == event_hash:
            return True
    return False


@kernel
def _remember(recent, n_recent, event_hash):
    """Append `event_hash` to the `n_recent` remembered ids, dropping the oldest when full;
    returns how many are remembered now."""
    window = recent.shape[0]
    if n_recent == window:
        for r in range(window - 1):
            recent[r] = recent[r + 1]
        n_recent -= 1
    recent[n_recent] = event_hash
    return n_recent + 1


@kernel
def _grown(conversions, values, n_conversions):
    """Room for one more conversion: the buffers, doubled when full."""
    if n_conversions < conversions.shape[0]:
        return conversions, values
    bigger = np.empty((2 * conversions.shape[0], CONVERSION_COLUMNS), dtype=np.int64)
    bigger[:n_conversions] = conversions[:n_conversions]
    more = np.empty(2 * values.shape[0], dtype=np.float64)
    more[:n_conversions] = values[:n_conversions]
    return bigger, more


@kernel
def _merge_ranked(candidate_score, candidate_journey, candidate_action, candidate_held, n):
    """Sort the first `n` candidates by score, highest first, keeping their order on ties (as
    Python's stable sort does in `decide()`): journey order, then rank."""
    for i in range(1, n):
        score, journey = candidate_score[i], candidate_journey[i]
        action, held = candidate_action[i], candidate_held[i]
        j = i
        while j > 0 and candidate_score[j - 1] < score:
            candidate_score[j] = candidate_score[j - 1]
            candidate_journey[j] = candidate_journey[j - 1]
            candidate_action[j] = candidate_action[j - 1]
            candidate_held[j] = candidate_held[j - 1]
            j -= 1
        candidate_score[j], candidate_journey[j] = score, journey
        candidate_action[j], candidate_held[j] = action, held


@kernel
def _repeat_outcome(packed_arrays, ints, floats, e, j, per_journey):
    """A repeated event changes nothing: the journey's stage and friction as last recorded."""
    rules = _unpack_rules(_packed(packed_arrays))
    stage_out, previous_out, transition_out, level_out, score_out = per_journey
    n_signals = rules.signal_root.shape[0]
    level, total = _friction_readout(
        floats[rules.friction_offset : rules.friction_offset + n_signals],
        ints[INT_FRICTION_AT_MS], ints[INT_FRICTION_AT_MS], rules.half_life_ms,
        rules.level_threshold,
    )  # fmt: skip
    stage_out[e, j] = ints[INT_STAGE]
    previous_out[e, j] = ints[INT_STAGE]
    transition_out[e, j] = NO_TRANSITION
    level_out[e, j] = level
    score_out[e, j] = total


# Columns of the per-journey slots `_decide_many` reads after the journey kernel (int64).
SLOT_EXPOSURE_INDEX = 0
SLOT_N_ACTIONS = 1
SLOT_EXPOSURE_WINDOW_MS = 2
SLOT_LAST_SHOWN_INDEX = 3
SLOT_N_GOALS = 4
SLOT_FIRST_CAP = 5  # the journey's first row in the cap table
SLOT_HISTORY_INDEX = 6  # the recent stages (`engine.history`)
SLOT_HISTORY_ENTRIES = 7
SLOT_COLUMNS = 8


@kernel
def _record_entry(ints, first, n_entries, stage, at_ms):
    """`engine.history.record_entry`: the customer entered `stage` at `at_ms`; the entries (two
    slots each, from `first`, newest first) move down one, the oldest falls off."""
    for slot in range(first + 2 * n_entries - 1, first + 1, -1):
        ints[slot] = ints[slot - 2]
    ints[first], ints[first + 1] = stage, at_ms


@kernel
def _record_chosen(journeys, slots, caps, states_ints, c, n_take, merged, chosen, e, channel):
    """What `decide()` does once the ranking is known: record the offers (when several journeys
    ranked together; one journey's kernel records its own), then the exposures of every chosen
    action in journeys with goals, and write the chosen actions out. `slots` (int64,
    (n_journeys, SLOT_COLUMNS)) places them in the state; `caps` (int64, (n_actions of every
    journey, 2)) holds each action's first cap slot and cap count; `journeys` the packed rules
    (the contact limits), `channel` the event's channel code."""
    candidate_score, candidate_journey, candidate_action, candidate_held = merged
    chosen_journey, chosen_action, chosen_held = chosen[0], chosen[1], chosen[2]
    chosen_score, n_chosen, exposed = chosen[3], chosen[4], chosen[5]
    several = slots.shape[0] > 1
    for r in range(n_take):
        j, action = candidate_journey[r], candidate_action[r]
        if several and not candidate_held[r]:
            ints = states_ints[j][c]
            cap = slots[j, SLOT_FIRST_CAP] + action
            _record_offer(
                ints, slots[j, SLOT_LAST_SHOWN_INDEX] + action, caps[cap, 0], caps[cap, 1],
                ints[INT_LAST_EVENT_MS],
            )  # fmt: skip
            rules = _unpack_rules(_packed(journeys[j]))
            _record_contact(
                rules.action_channel_code, rules.limit_channel_code, rules.limit_count,
                rules.limit_offset, ints, action, channel, ints[INT_LAST_EVENT_MS],
            )  # fmt: skip
    for r in range(n_take):
        j, action = candidate_journey[r], candidate_action[r]
        exposed[e, r] = False
        if slots[j, SLOT_N_GOALS] > 0:
            ints = states_ints[j][c]
            arm = ARM_CONTROL if candidate_held[r] else ARM_TREATED
            exposed[e, r] = _record_exposure(
                ints, slots[j, SLOT_EXPOSURE_INDEX] + action, slots[j, SLOT_N_ACTIONS],
                slots[j, SLOT_EXPOSURE_WINDOW_MS], arm, ints[INT_LAST_EVENT_MS],
            )  # fmt: skip
        chosen_journey[e, r], chosen_action[e, r] = j, action
        chosen_held[e, r], chosen_score[e, r] = candidate_held[r], candidate_score[r]
    n_chosen[e] = n_take


@kernel
def _remember_stage(ints, slots, first_event, previous, transition):
    """As decide() keeps the recent stages: the first stage, then each one moved to."""
    history, entries = slots[SLOT_HISTORY_INDEX], slots[SLOT_HISTORY_ENTRIES]
    if first_event:
        _record_entry(ints, history, entries, previous, ints[INT_LAST_EVENT_MS])
    if transition != NO_TRANSITION:
        _record_entry(ints, history, entries, ints[INT_STAGE], ints[INT_LAST_EVENT_MS])


@kernel
def _write_outcome(per_journey, e, j, stage, per_event):
    stage_out, previous_out, transition_out, level_out, score_out = per_journey
    previous, transition, level, score = per_event
    stage_out[e, j] = stage
    previous_out[e, j] = previous
    transition_out[e, j] = transition
    level_out[e, j] = level
    score_out[e, j] = score


@kernel
def _add_candidates(out, n_ranked, j, merged, n_candidates):
    """Append journey `j`'s ranked actions to the candidates; returns how many there are."""
    candidate_score, candidate_journey, candidate_action, candidate_held = merged
    status, scores, ranked = out[0], out[1], out[2]
    for r in range(n_ranked):
        action = ranked[r]
        candidate_score[n_candidates] = scores[action]
        candidate_journey[n_candidates] = j
        candidate_action[n_candidates] = action
        candidate_held[n_candidates] = status[action] == ACTION_HELD_OUT
        n_candidates += 1
    return n_candidates


@kernel
def _collect_conversions(out, ints, slots, e, j, found):
    """Append the conversions journey `j`'s kernel reported for event `e` (as decide() lists
    them: by action, then goal) to `found`, `(conversions, values, n)`; returns it."""
    conversions, values, n_conversions = found
    converted, goal_values = out[4], out[5]
    n_actions, n_goals = converted.shape[0], converted.shape[1]
    exposure_index = slots[SLOT_EXPOSURE_INDEX]
    for action in range(n_actions if n_goals > 0 else 0):
        for goal in range(n_goals):
            if converted[action, goal] == ARM_NONE:
                continue
            conversions, values = _grown(conversions, values, n_conversions)
            row = conversions[n_conversions]
            row[CONVERSION_EVENT], row[CONVERSION_JOURNEY] = e, j
            row[CONVERSION_ACTION], row[CONVERSION_GOAL] = action, goal
            row[CONVERSION_ARM] = converted[action, goal]
            row[CONVERSION_EXPOSED_AT_MS] = ints[exposure_index + action]
            row[CONVERSION_STAGE] = ints[exposure_index + 2 * n_actions + action]
            values[n_conversions] = goal_values[goal]
            n_conversions += 1
    return conversions, values, n_conversions


@kernel
def _decide_many(
    rules_arrays,
    event_arrays,
    customer_arrays,
    states,
    first_customer,
    end_customer,
    top_k,
    per_journey,
    chosen,
):
    """Decide the events of customers `first_customer` to `end_customer - 1`, each customer's
    in order, every journey per event, as a loop of `decide()` would.

    Parameters
    ----------
    rules_arrays : tuple
        `(journeys, propensities, outputs, slots, caps)`: per journey (tuples of equal length)
        its packed rules (`CompiledJourney.packed_arrays`), its propensity table (float64,
        (n_actions, n_stages, 2)) and a scratch `KernelOutput` for `top_k`; then the slots and
        caps `_record_chosen` reads.
    event_arrays : tuple
        `(now_ms, codes, kind, num, code, event_hash)`: per event (n_events rows) its time
        (int64), its `Features` as rows (int64 (n, 3), int8 / float64 / int64 (n, n_properties))
        and its `event_id_hash` (uint64).
    customer_arrays : tuple
        `(order, starts, customer_hash, traits, recent, n_recent)`: `order` (int64) lists the
        events customer by customer, each customer's in time of arrival; customer `c`'s are
        `order[starts[c]:starts[c + 1]]`. `customer_hash` (uint64, (n_customers,)); `traits` the
        customers' trait `Features` as rows (codes (3,), then (n_customers, n_traits) arrays);
        `recent` (uint64, (n_customers, window)) and `n_recent` (int64): the remembered event ids,
        oldest first, updated in place.
    states : tuple
        `(ints, floats)`: per journey, (n_customers, n_ints) int64 and (n_customers, n_floats)
        float64 state rows, updated in place.
    top_k : int
        How many actions a decision holds at most.
    per_journey : tuple
        Written per event and journey (n_events, n_journeys): `stage`, `previous_stage`,
        `transition` (NO_TRANSITION when none fired), friction `level` (int64) and `score`
        (float64).
    chosen : tuple
        Written per event: `journey`, `action` (int64, (n_events, top_k)), `held` (bool), `score`
        (float64), `n_chosen` (int64, (n_events,)), `exposed` (bool, (n_events, top_k): the choice
        was recorded as a new exposure) and `duplicate` (bool, (n_events,)).

    Returns
    -------
    (conversions, values) : int64 (n, CONVERSION_COLUMNS) and float64 (n,)
        Every conversion, in the order `decide()` reports them, event by event.
    """
    journeys, propensities, outputs, slots, caps = rules_arrays
    now_ms, ev_codes, ev_kind, ev_num, ev_code, event_hash = event_arrays
    order, starts, customer_hash, traits, recent, n_recent = customer_arrays
    trait_codes, trait_kind, trait_num, trait_code = traits
    states_ints, states_floats = states
    duplicate = chosen[6]
    n_journeys = len(journeys)
    room = n_journeys * top_k
    candidate_score = np.empty(room, dtype=np.float64)
    candidate_journey = np.empty(room, dtype=np.int64)
    candidate_action = np.empty(room, dtype=np.int64)
    candidate_held = np.empty(room, dtype=np.bool_)
    merged = (candidate_score, candidate_journey, candidate_action, candidate_held)
    conversions = np.empty((64, CONVERSION_COLUMNS), dtype=np.int64)
    values = np.empty(64, dtype=np.float64)
    n_conversions = 0
    found = (conversions, values, n_conversions)
    for c in range(first_customer, end_customer):
        customer_traits = (trait_codes, trait_kind[c], trait_num[c], trait_code[c])
        for k in range(starts[c], starts[c + 1]):
            e = order[k]
            seed = event_hash[e]
            if _is_repeat(recent[c], n_recent[c], seed):
                duplicate[e] = True
                chosen[4][e] = 0
                for j in range(n_journeys):
                    _repeat_outcome(
                        journeys[j], states_ints[j][c], states_floats[j][c], e, j, per_journey
                    )
                continue
            duplicate[e] = False
            event = (ev_codes[e], ev_kind[e], ev_num[e], ev_code[e])
            n_candidates = 0
            for j in range(n_journeys):
                ints = states_ints[j][c]
                first_event = ints[INT_LAST_EVENT_MS] == NEVER_MS
                previous, transition, n_ranked, level, score = _decide_journey(
                    journeys[j], event, customer_traits, now_ms[e], customer_hash[c],
                    propensities[j], seed, top_k, n_journeys == 1, ints, states_floats[j][c],
                    outputs[j],
                )  # fmt: skip
                _remember_stage(ints, slots[j], first_event, previous, transition)
                per_event = (previous, transition, level, score)
                _write_outcome(per_journey, e, j, ints[INT_STAGE], per_event)
                n_candidates = _add_candidates(outputs[j], n_ranked, j, merged, n_candidates)
                found = _collect_conversions(outputs[j], ints, slots[j], e, j, found)
            if n_journeys > 1:
                _merge_ranked(
                    candidate_score, candidate_journey, candidate_action, candidate_held,
                    n_candidates,
                )  # fmt: skip
            n_take = min(n_candidates, top_k)
            _record_chosen(
                journeys, slots, caps, states_ints, c, n_take, merged, chosen, e, ev_codes[e][1]
            )
            n_recent[c] = _remember(recent[c], n_recent[c], seed)
    conversions, values, n_conversions = found
    return conversions[:n_conversions].copy(), values[:n_conversions].copy()


def decide_many_kernel(
    rules_arrays: tuple[Any, ...],
    event_arrays: tuple[np.ndarray, ...],
    customer_arrays: tuple[Any, ...],
    states: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]],
    customers: tuple[int, int],
    top_k: int,
    per_journey: tuple[np.ndarray, ...],
    chosen: tuple[np.ndarray, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Typed entry to `_decide_many` for `customers` (first, end); `engine.many` builds and
    checks the arrays. Returns the conversions and their values."""
    conversions, values = _decide_many(
        rules_arrays, event_arrays, customer_arrays, states, customers[0], customers[1], top_k,
        per_journey, chosen,
    )  # fmt: skip
    return conversions, values
