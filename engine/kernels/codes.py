"""Every integer code the kernels branch on, named once and shared with the compiler.

The kernels see only arrays of these codes; `engine.compile` writes them and the explanations in
`engine.decide` read them back through the name tables at the bottom.
"""

from __future__ import annotations

from typing import Final

# Condition node kinds (`CompiledRules.node_kind`).
NODE_ALL: Final = 0
NODE_ANY: Final = 1
NODE_NOT: Final = 2
NODE_EVENT_TYPE: Final = 3  # event type is one of the listed codes
NODE_CHANNEL: Final = 4
NODE_TOUCHPOINT: Final = 5
NODE_PROPERTY: Final = 6  # compare event feature slot `node_arg`
NODE_TRAIT: Final = 7  # compare trait feature slot `node_arg`
NODE_COUNTER: Final = 8  # compare counter `node_arg`
NODE_TIME_IN_STAGE: Final = 9
NODE_IDLE: Final = 10
NODE_SEGMENT: Final = 11  # segment `node_arg` holds (its root node was evaluated earlier)
NODE_FRICTION: Final = 12  # friction level >= `node_arg`
NODE_SINCE: Final = 13  # compare the time since the event type `since_code[node_arg]`
NODE_UNTIL: Final = 14  # compare the time until the date in trait slot `node_arg`

# Comparison operators (`CompiledRules.node_op`).
OP_NONE: Final = 0
OP_EQ: Final = 1
OP_NE: Final = 2
OP_GT: Final = 3
OP_GTE: Final = 4
OP_LT: Final = 5
OP_LTE: Final = 6
OP_IN: Final = 7
OP_NOT_IN: Final = 8
OP_EXISTS: Final = 9
OP_MISSING: Final = 10  # `exists: false`

OPERATOR_CODES: Final = {
    "eq": OP_EQ,
    "ne": OP_NE,
    "gt": OP_GT,
    "gte": OP_GTE,
    "lt": OP_LT,
    "lte": OP_LTE,
    "in": OP_IN,
    "not_in": OP_NOT_IN,
}

# What a feature slot or a literal holds (`feature_kind`, `node_lit_kind`, `list_kind`).
VALUE_MISSING: Final = 0
VALUE_NUMBER: Final = 1
VALUE_STRING: Final = 2
VALUE_BOOL: Final = 3

# A string that no rule mentions: never equal to any literal, whose codes start at 0.
UNKNOWN_STRING: Final = -1
# The event type code of a timer (`engine.timers`): no event of the customer's, the clock only.
TIMER_EVENT: Final = -2

# What moves a transition (`CompiledRules.transition_timer`): an event, or time passing.
TIMER_NONE: Final = 0
TIMER_AFTER: Final = 1  # `after:` this long in the stage
TIMER_IDLE: Final = 2  # `idle:` this long since the customer's last event

# Why an action was not offered (`action_status`), in the order the kernel checks them.
ACTION_OFFERED: Final = 0
ACTION_WRONG_STAGE: Final = 1
ACTION_WRONG_SEGMENT: Final = 2
ACTION_CONDITION_FALSE: Final = 3
ACTION_COOLDOWN: Final = 4
ACTION_CAPPED: Final = 5
ACTION_HELD_OUT: Final = 6
ACTION_OUTRANKED: Final = 7
ACTION_CONTACT_LIMIT: Final = 8  # its channel's contact limit is reached (ranked in its turn)
ACTION_QUIET_HOURS: Final = 9  # its channel is kept quiet at the customer's local time

ACTION_STATUS_NAMES: Final = (
    "offered",
    "stage",
    "segment",
    "condition",
    "cooldown",
    "cap",
    "holdout",
    "rank",
    "contact_limit",
    "quiet_hours",
)

# Which group an exposure to an action put the customer in (goal attribution).
ARM_NONE: Final = 0
ARM_TREATED: Final = 1  # offered the action
ARM_CONTROL: Final = 2  # held out in its place
ARM_NAMES: Final = ("none", "treated", "control")

# "Never": the time an action was never shown, a counter that never saw an event.
NEVER_MS: Final = -(2**62)
NO_TRANSITION: Final = -1

# Indices into the per-journey integer state (`StateArrays.ints`); per-counter and per-action
# slots follow at offsets the compiler records.
INT_STAGE: Final = 0
INT_STAGE_ENTERED_MS: Final = 1
INT_LAST_EVENT_MS: Final = 2
INT_FRICTION_AT_MS: Final = 3
INT_HEADER_SIZE: Final = 4

# Slots of the kernel's `context` output: what time-based and friction conditions read.
CONTEXT_TIME_IN_STAGE: Final = 0
CONTEXT_IDLE: Final = 1
CONTEXT_FRICTION_LEVEL: Final = 2
# Quiet hours read the customer's minute of the day (`engine.quiet`).
MS_PER_MINUTE: Final = 60_000
MINUTES_PER_DAY: Final = 1440

CONTEXT_CLOCK: Final = 3  # the journey clock (ms), for `until:` dates
CONTEXT_SIZE: Final = 4

# How many friction signals a decision names as the strongest contributors.
TOP_SIGNALS: Final = 3

# Bounds that keep a customer's state small whatever their history.
MAX_COUNTER_BUCKETS: Final = 64
DEFAULT_COUNTER_BUCKETS: Final = 8
MAX_CAP_COUNT: Final = 50

# Holdout draws are in basis points so that 12.5 % is exact.
HOLDOUT_SCALE: Final = 10_000
