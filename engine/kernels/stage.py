"""Stage transitions: the first transition, in file order, that leaves the current stage."""

from __future__ import annotations

from engine.kernels.codes import NO_TRANSITION
from engine.kernels.jit import kernel


@kernel
def _pick_transition(rules, stage, values):
    """Index of the first transition from `stage` whose condition holds, or NO_TRANSITION.

    A transition into the stage the customer is already in is skipped, so a `from: "*"` rule
    neither blocks later rules nor restarts the time spent in the stage.
    """
    for transition in range(rules.transition_root.shape[0]):
        if rules.transition_to[transition] == stage:
            continue
        if rules.transition_from[transition, stage] and values[rules.transition_root[transition]]:
            return transition
    return NO_TRANSITION
