"""The coarse kernel: one call decides one event for one customer in one journey."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engine.kernels.actions import _rank_actions, _record_contact, _record_offer
from engine.kernels.codes import (
    ACTION_OFFERED,
    CONTEXT_CLOCK,
    CONTEXT_FRICTION_LEVEL,
    CONTEXT_IDLE,
    CONTEXT_SIZE,
    CONTEXT_TIME_IN_STAGE,
    INT_LAST_EVENT_MS,
    INT_STAGE,
    INT_STAGE_ENTERED_MS,
    MINUTES_PER_DAY,
    MS_PER_MINUTE,
    NEVER_MS,
    NO_TRANSITION,
    VALUE_NUMBER,
)
from engine.kernels.compiled import KernelOutput, _features, _packed, _unpack_rules
from engine.kernels.conditions import _evaluate_nodes
from engine.kernels.counters import _update_counters
from engine.kernels.friction import _strongest_signals, _update_friction
from engine.kernels.goals import _attribute_goals
from engine.kernels.jit import kernel
from engine.kernels.readout import _friction_level
from engine.kernels.stage import _pick_transition
from engine.kernels.timers import (
    _after_decision,
    _gate_transitions,
    _is_timer,
    _last_activity_ms,
    _mute_event_rules,
)

if TYPE_CHECKING:
    from engine.kernels.compiled import Features


@kernel
def _decide_journey(
    packed_arrays,
    event_arrays,
    trait_arrays,
    now_ms,
    customer_hash,
    propensity,
    event_seed,
    top_k,
    record_offers,
    ints,
    floats,
    out_arrays,
):
    """Apply one event to one journey's state and rank its actions.

    Parameters
    ----------
    packed_arrays : tuple, the fields of PackedRules
    event_arrays, trait_arrays : tuple, the fields of Features
    now_ms : int
        When the event happened (a timer: when it fell due, see `engine.kernels.timers`). The
        journey clock never runs backwards: an event older than the customer's previous one
        is applied at the previous one's time.
    customer_hash : np.uint64
        Stable hash of the customer id, for holdout draws.
    propensity : np.ndarray, float64, shape (n_actions, n_stages, 2)
        Per action and stage, the adaptive goal's conversions and exposures without one (zeros
        when nothing is known): the posterior adaptive actions are sampled from.
    event_seed : np.uint64
        Hash of the event id: the seed of those samples.
    top_k : int
        How many actions to rank.
    record_offers : bool
        Remember the offered actions (for cooldowns and caps) here. With several journeys the
        caller records them instead, once their rankings are merged.
    ints : np.ndarray, int64, shape (CompiledRules.n_ints,)
    floats : np.ndarray, float64, shape (CompiledRules.n_floats,)
        The journey state, updated in place.
    out_arrays : tuple, the fields of KernelOutput
        Written: `status` and `scores` per action, `ranked` (top_k action indices),
        `top_signals` (the strongest friction signals), `converted` and `goal_values` (the
        goals this event reached and the exposures they converted, see `_attribute_goals`).

    Returns
    -------
    (previous_stage, transition, n_ranked, friction_level, friction_score) : tuple
    """
    rules = _unpack_rules(_packed(packed_arrays))
    event = _features(event_arrays)
    traits = _features(trait_arrays)
    out = KernelOutput(
        out_arrays[0], out_arrays[1], out_arrays[2], out_arrays[3], out_arrays[4], out_arrays[5]
    )
    last_event_ms = ints[INT_LAST_EVENT_MS]
    clock_ms = max(now_ms, last_event_ms)
    if ints[INT_STAGE_ENTERED_MS] == NEVER_MS:
        ints[INT_STAGE_ENTERED_MS] = clock_ms
    previous_stage = ints[INT_STAGE]
    stage = previous_stage
    # Scratch only the kernel reads: allocated here, where it is cheaper than boxing it.
    n_since = rules.since_code.shape[0]
    context = np.empty(CONTEXT_SIZE + n_since + rules.n_topics, dtype=np.float64)
    values = np.empty(rules.node_kind.shape[0], dtype=np.bool_)
    counter_values = np.empty(rules.counter_root.shape[0], dtype=np.float64)
    context[CONTEXT_TIME_IN_STAGE] = float(clock_ms - ints[INT_STAGE_ENTERED_MS])
    context[CONTEXT_CLOCK] = float(clock_ms)
    is_timer = _is_timer(event)
    activity_ms = _last_activity_ms(rules, ints)
    context[CONTEXT_IDLE] = 0.0 if activity_ms == NEVER_MS else float(clock_ms - activity_ms)

    # Every condition node is evaluated, in three passes: measured, that is cheaper than picking
    # out the transitions and actions of the current stage, even with 200 rules.
    _evaluate_nodes(rules, 0, rules.phase_end[0], values, event, traits, counter_values, context)
    if is_timer:
        _mute_event_rules(rules, values)
    _update_counters(rules, ints, floats, clock_ms, values, event, counter_values)
    _attribute_goals(rules, ints, clock_ms, values, event, out.converted, out.goal_values)
    level, friction_score = _update_friction(rules, ints, floats, clock_ms, values)
    context[CONTEXT_FRICTION_LEVEL] = float(level)
    _topic_levels(rules, floats, context, CONTEXT_SIZE + n_since)
    signals = floats[rules.friction_offset : rules.friction_offset + rules.signal_root.shape[0]]
    _strongest_signals(signals, out.top_signals)
    _update_since(rules, ints, clock_ms, event.codes[0], is_timer, context)

    _evaluate_nodes(
        rules, rules.phase_end[0], rules.phase_end[1], values, event, traits,
        counter_values, context,
    )  # fmt: skip
    _gate_transitions(rules, ints, stage, clock_ms, is_timer, values)
    transition = _pick_transition(rules, stage, values)
    if transition != NO_TRANSITION:
        stage = rules.transition_to[transition]
        ints[INT_STAGE] = stage
        ints[INT_STAGE_ENTERED_MS] = clock_ms
        context[CONTEXT_TIME_IN_STAGE] = 0.0
    ints[INT_LAST_EVENT_MS] = clock_ms
    _after_decision(rules, ints, clock_ms, is_timer, transition != NO_TRANSITION)

    _evaluate_nodes(
        rules, rules.phase_end[1], rules.phase_end[2], values, event, traits,
        counter_values, context,
    )  # fmt: skip
    event_channel = event.codes[1]
    n_ranked = _rank_actions(
        rules, stage, ints, clock_ms, values, customer_hash, propensity, event_seed,
        event_channel, _local_minute(rules, event, clock_ms), top_k, out.status, out.scores,
        out.ranked,
    )  # fmt: skip
    if record_offers:
        for j in range(n_ranked):
            action = out.ranked[j]
            if out.status[action] == ACTION_OFFERED:
                _record_offer(
                    ints, rules.action_last_shown_index + action, rules.action_cap_offset[action],
                    rules.action_cap_count[action], clock_ms,
                )  # fmt: skip
                _record_contact(
                    rules.action_channel_code, rules.limit_channel_code, rules.limit_count,
                    rules.limit_offset, ints, action, event_channel, clock_ms,
                )  # fmt: skip
    return (
        np.int64(previous_stage), np.int64(transition), np.int64(n_ranked), np.int64(level),
        friction_score,
    )  # fmt: skip


@kernel
def _local_minute(rules, event, clock_ms):
    """The customer's minute of the day at `clock_ms`, from the UTC offset the event carries for
    quiet hours (`engine.quiet`); -1 without quiet hours."""
    slot = rules.quiet_offset_slot
    if slot < 0 or event.kind[slot] != VALUE_NUMBER:
        return -1
    return ((clock_ms + np.int64(event.num[slot])) // MS_PER_MINUTE) % MINUTES_PER_DAY


@kernel
def _topic_levels(rules, floats, context, first):
    """The friction level of each topic's signals alone, into `context[first:]`."""
    base = rules.friction_offset
    for topic in range(rules.n_topics):
        total = 0.0
        for signal in range(rules.signal_topic.shape[0]):
            if rules.signal_topic[signal] == topic:
                total += floats[base + signal]
        context[first + topic] = float(_friction_level(rules.level_threshold, total))


@kernel
def _update_since(rules, ints, clock_ms, event_type, is_timer, context):
    """Remember this event as the latest of its type where a `since:` condition reads that type
    (a timer is no event of the customer's), then put the time since each into `context`."""
    for j in range(rules.since_code.shape[0]):
        slot = rules.since_index + j
        if not is_timer and event_type == rules.since_code[j]:
            ints[slot] = clock_ms
        seen_ms = ints[slot]
        context[CONTEXT_SIZE + j] = np.nan if seen_ms == NEVER_MS else float(clock_ms - seen_ms)


def decide_journey(
    packed_arrays: tuple[np.ndarray, ...],
    event: Features,
    traits: Features,
    now_ms: int,
    customer_hash: np.uint64,
    propensity: np.ndarray,
    event_seed: np.uint64,
    top_k: int,
    record_offers: bool,
    ints: np.ndarray,
    floats: np.ndarray,
    out: KernelOutput,
) -> tuple[int, int, int, int, float]:
    """Typed entry to `_decide_journey`; `engine.decide` checks the shapes before calling.

    Returns the previous stage, the transition that fired (or NO_TRANSITION), how many actions
    were ranked into `out.ranked`, the friction level and the friction score.
    """
    previous, transition, n_ranked, level, score = _decide_journey(
        packed_arrays, tuple(event), tuple(traits), now_ms, customer_hash, propensity,
        event_seed, top_k, record_offers, ints, floats, tuple(out),
    )  # fmt: skip
    return int(previous), int(transition), int(n_ranked), int(level), float(score)
