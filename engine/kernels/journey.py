"""The coarse kernel: one call decides one event for one customer in one journey."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engine.kernels.actions import _rank_actions
from engine.kernels.codes import (
    CONTEXT_FRICTION_LEVEL,
    CONTEXT_IDLE,
    CONTEXT_TIME_IN_STAGE,
    INT_LAST_EVENT_MS,
    INT_STAGE,
    INT_STAGE_ENTERED_MS,
    NEVER_MS,
    NO_TRANSITION,
)
from engine.kernels.compiled import _unpack_rules
from engine.kernels.conditions import _evaluate_nodes
from engine.kernels.counters import _update_counters
from engine.kernels.friction import _update_friction
from engine.kernels.jit import kernel
from engine.kernels.stage import _pick_transition

if TYPE_CHECKING:
    from engine.decide import Features, KernelOutput
    from engine.kernels.compiled import PackedRules


@kernel
def _decide_journey(packed, event, traits, now_ms, customer_hash, top_k, ints, floats, out):
    """Apply one event to one journey's state and rank its actions.

    Parameters
    ----------
    packed : PackedRules
    event, traits : Features
    now_ms : int
        When the event happened. The journey clock never runs backwards: an event older than the
        customer's previous one is applied at the previous one's time.
    customer_hash : np.uint64
        Stable hash of the customer id, for holdout draws.
    top_k : int
        How many actions to rank.
    ints : np.ndarray, int64, shape (CompiledRules.n_ints,)
    floats : np.ndarray, float64, shape (CompiledRules.n_floats,)
        The journey state, updated in place.
    out : KernelOutput
        `status` and `scores` per action, `ranked` (top_k action indices), `counter_values`,
        `values` (every condition node), `context` (time in stage, idle, friction level).

    Returns
    -------
    (previous_stage, transition, n_ranked) : tuple of int
    """
    rules = _unpack_rules(packed)
    last_event_ms = ints[INT_LAST_EVENT_MS]
    clock_ms = max(now_ms, last_event_ms)
    if ints[INT_STAGE_ENTERED_MS] == NEVER_MS:
        ints[INT_STAGE_ENTERED_MS] = clock_ms
    previous_stage = ints[INT_STAGE]
    stage = previous_stage
    context = out.context
    context[CONTEXT_TIME_IN_STAGE] = float(clock_ms - ints[INT_STAGE_ENTERED_MS])
    context[CONTEXT_IDLE] = 0.0 if last_event_ms == NEVER_MS else float(clock_ms - last_event_ms)
    values = out.values

    _evaluate_nodes(
        rules, 0, rules.phase_end[0], values, event, traits, out.counter_values, context
    )
    _update_counters(rules, ints, floats, clock_ms, values, event, out.counter_values)
    context[CONTEXT_FRICTION_LEVEL] = float(_update_friction(rules, ints, floats, clock_ms, values))

    _evaluate_nodes(
        rules, rules.phase_end[0], rules.phase_end[1], values, event, traits,
        out.counter_values, context,
    )  # fmt: skip
    transition = _pick_transition(rules, stage, values)
    if transition != NO_TRANSITION:
        stage = rules.transition_to[transition]
        ints[INT_STAGE] = stage
        ints[INT_STAGE_ENTERED_MS] = clock_ms
        context[CONTEXT_TIME_IN_STAGE] = 0.0
    ints[INT_LAST_EVENT_MS] = clock_ms

    _evaluate_nodes(
        rules, rules.phase_end[1], rules.phase_end[2], values, event, traits,
        out.counter_values, context,
    )  # fmt: skip
    n_ranked = _rank_actions(
        rules, stage, ints, clock_ms, values, customer_hash, top_k,
        out.status, out.scores, out.ranked,
    )  # fmt: skip
    return np.int64(previous_stage), np.int64(transition), np.int64(n_ranked)


def decide_journey(
    packed: PackedRules,
    event: Features,
    traits: Features,
    now_ms: int,
    customer_hash: np.uint64,
    top_k: int,
    ints: np.ndarray,
    floats: np.ndarray,
    out: KernelOutput,
) -> tuple[int, int, int]:
    """Typed entry to `_decide_journey`; `engine.decide` checks the shapes before calling."""
    previous, transition, n_ranked = _decide_journey(
        packed, event, traits, now_ms, customer_hash, top_k, ints, floats, out
    )
    return int(previous), int(transition), int(n_ranked)
