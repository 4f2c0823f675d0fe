"""Goal attribution: an event that reaches a goal converts the customer for every action they
were exposed to (offered it, or held out in its place) within the goal's window, once per
exposure, action and goal. A goal on a response (`response: click`) converts only the action
the response names."""

from __future__ import annotations

from engine.kernels.codes import ARM_NONE, INT_STAGE, NEVER_MS, VALUE_NUMBER, VALUE_STRING
from engine.kernels.compiled import IntArray
from engine.kernels.jit import kernel


@kernel
def _attribute_goals(rules, ints, clock_ms, values, event, converted, goal_values):
    """Record this event's conversions in `ints` and report them.

    `values` holds the goals' conditions (evaluated before). Written: `converted[action, goal]`,
    the ARM_* of the exposure that converted (ARM_NONE where nothing converted), and
    `goal_values[goal]`, the value of the goal's property on this event (0 when absent or not
    reached). Exposures are read as they stood before this event's own offers.
    """
    n_actions = rules.action_root.shape[0]
    n_goals = rules.goal_root.shape[0]
    for goal in range(n_goals):
        reached = values[rules.goal_root[goal]]
        slot = rules.goal_value_slot[goal]
        has_value = reached and slot >= 0 and event.kind[slot] == VALUE_NUMBER
        goal_values[goal] = event.num[slot] if has_value else 0.0
        responded = rules.goal_action_slot[goal]
        for action in range(n_actions):
            converted[action, goal] = ARM_NONE
            if not reached:
                continue
            if responded >= 0 and not (
                event.kind[responded] == VALUE_STRING
                and event.code[responded] == rules.action_code[action]
            ):
                continue  # a response converts the action responded to, not the others
            exposed_ms = ints[rules.exposure_index + action]
            if exposed_ms == NEVER_MS or clock_ms - exposed_ms > rules.goal_window_ms[goal]:
                continue
            counted = rules.conversion_index + action * n_goals + goal
            if ints[counted] == exposed_ms:
                continue  # this exposure converted for this goal already
            ints[counted] = exposed_ms
            converted[action, goal] = ints[rules.exposure_index + n_actions + action]


def record_exposure(
    ints: IntArray, exposure_slot: int, n_actions: int, window_ms: int, arm: int, clock_ms: int
) -> bool:
    """Remember that the customer was exposed to an action at `clock_ms`, in group `arm`, in
    their current stage, unless an earlier exposure still counts (within `window_ms`, the
    longest goal window): the first exposure is the one a goal attributes to. True when this
    exposure is new. The action's arm and stage slots follow `exposure_slot` by `n_actions`.

    Plain Python: called for the few actions a decision chose, after the kernel.
    """
    exposed_ms = int(ints[exposure_slot])
    if exposed_ms != NEVER_MS and clock_ms - exposed_ms <= window_ms:
        return False
    ints[exposure_slot] = clock_ms
    ints[exposure_slot + n_actions] = arm
    ints[exposure_slot + 2 * n_actions] = ints[INT_STAGE]
    return True
