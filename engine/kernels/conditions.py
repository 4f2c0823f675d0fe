"""Condition evaluation: one pass over a range of nodes stored children-first.

The compiler writes every condition tree in post-order, so when node `i` is evaluated all of its
children (and every segment it names) already have values. A pass evaluates every node in its
range, with no short-circuit: the trees are small and a straight loop beats branching on them.
"""

from __future__ import annotations

import numpy as np

from engine.kernels.codes import (
    CONTEXT_CLOCK,
    CONTEXT_FRICTION_LEVEL,
    CONTEXT_IDLE,
    CONTEXT_SIZE,
    CONTEXT_TIME_IN_STAGE,
    NODE_ALL,
    NODE_ANY,
    NODE_CHANNEL,
    NODE_COUNTER,
    NODE_EVENT_TYPE,
    NODE_FRICTION,
    NODE_IDLE,
    NODE_NOT,
    NODE_PROPERTY,
    NODE_SEGMENT,
    NODE_SINCE,
    NODE_TIME_IN_STAGE,
    NODE_TOUCHPOINT,
    NODE_TRAIT,
    NODE_UNTIL,
    OP_EQ,
    OP_EXISTS,
    OP_GT,
    OP_GTE,
    OP_IN,
    OP_LT,
    OP_LTE,
    OP_MISSING,
    OP_NE,
    OP_NOT_IN,
    VALUE_MISSING,
    VALUE_NUMBER,
    VALUE_STRING,
)
from engine.kernels.jit import kernel


@kernel
def _same_value(kind, num, code, lit_kind, lit_num, lit_code):
    """True when a value (kind, number, string code) equals a literal of the same kind."""
    if kind != lit_kind or kind == VALUE_MISSING:
        return False
    if kind == VALUE_STRING:
        return code == lit_code
    return num == lit_num


@kernel
def _in_list(rules, node, kind, num, code):
    first = rules.node_first[node]
    for j in range(first, first + rules.node_count[node]):
        if _same_value(kind, num, code, rules.list_kind[j], rules.list_num[j], rules.list_code[j]):
            return True
    return False


@kernel
def _compare(rules, node, kind, num, code):
    """Apply node `node`'s operator to a value.

    Ordering operators hold only between numbers; `ne` and `not_in` are the negations of `eq` and
    `in`, so they hold for a missing value.
    """
    op = rules.node_op[node]
    if op == OP_EXISTS:
        return kind != VALUE_MISSING
    if op == OP_MISSING:
        return kind == VALUE_MISSING
    if op == OP_EQ or op == OP_NE:
        equal = _same_value(
            kind, num, code, rules.node_lit_kind[node], rules.node_num[node], rules.node_code[node]
        )
        return equal if op == OP_EQ else not equal
    if op == OP_IN:
        return _in_list(rules, node, kind, num, code)
    if op == OP_NOT_IN:
        return not _in_list(rules, node, kind, num, code)
    if kind != VALUE_NUMBER:
        return False
    limit = rules.node_num[node]
    if op == OP_GT:
        return num > limit
    if op == OP_GTE:
        return num >= limit
    if op == OP_LT:
        return num < limit
    if op == OP_LTE:
        return num <= limit
    return False


@kernel
def _code_listed(rules, node, code):
    first = rules.node_first[node]
    for j in range(first, first + rules.node_count[node]):
        if rules.list_code[j] == code:
            return True
    return False


@kernel
def _combine(rules, node, values):
    """Value of an all/any/not node from its children's values."""
    kind = rules.node_kind[node]
    first = rules.node_first[node]
    last = first + rules.node_count[node]
    if kind == NODE_NOT:
        return not values[rules.children[first]]
    if kind == NODE_ALL:
        for j in range(first, last):
            if not values[rules.children[j]]:
                return False
        return True
    for j in range(first, last):  # NODE_ANY
        if values[rules.children[j]]:
            return True
    return False


@kernel
def _compare_time(rules, node, kind, arg, traits, context):
    """A node on a time: in stage, idle, since an event type (NaN in `context`: never sent),
    until a date trait (negative once passed; a trait with no date in it). A time that is not
    there is a missing value: only `exists: false` holds for it."""
    if kind == NODE_TIME_IN_STAGE:
        return _compare(rules, node, VALUE_NUMBER, context[CONTEXT_TIME_IN_STAGE], 0)
    if kind == NODE_IDLE:
        return _compare(rules, node, VALUE_NUMBER, context[CONTEXT_IDLE], 0)
    if kind == NODE_SINCE:
        since_ms = context[CONTEXT_SIZE + arg]
        if np.isnan(since_ms):
            return _compare(rules, node, VALUE_MISSING, 0.0, 0)
        return _compare(rules, node, VALUE_NUMBER, since_ms, 0)
    if traits.kind[arg] != VALUE_NUMBER:  # NODE_UNTIL
        return _compare(rules, node, VALUE_MISSING, 0.0, 0)
    return _compare(rules, node, VALUE_NUMBER, traits.num[arg] - context[CONTEXT_CLOCK], 0)


@kernel
def _evaluate_nodes(rules, start, stop, values, event, traits, counter_values, context):
    """Evaluate nodes `start`..`stop-1` into `values`.

    Parameters
    ----------
    rules : CompiledRules
    start, stop : int
        The node range of one phase (see `CompiledRules.phase_end`).
    values : np.ndarray, bool, shape (n_nodes,)
        Written for the range; read for children and segments evaluated before it.
    event, traits : Features
        The event's codes and property slots; the customer's trait slots.
    counter_values : np.ndarray, float64, shape (n_counters,)
    context : np.ndarray, float64, shape (CONTEXT_SIZE + n_since,)
        Time in stage (ms), idle time (ms), friction level, the clock (ms); then the time since
        each event type `since:` reads (ms; NaN when the customer never sent it); then the
        friction level of each topic.
    """
    n_since = rules.since_code.shape[0]
    for node in range(start, stop):
        kind = rules.node_kind[node]
        arg = rules.node_arg[node]
        if kind == NODE_ALL or kind == NODE_ANY or kind == NODE_NOT:
            values[node] = _combine(rules, node, values)
        elif kind == NODE_EVENT_TYPE or kind == NODE_CHANNEL or kind == NODE_TOUCHPOINT:
            values[node] = _code_listed(rules, node, event.codes[kind - NODE_EVENT_TYPE])
        elif kind == NODE_PROPERTY:
            values[node] = _compare(rules, node, event.kind[arg], event.num[arg], event.code[arg])
        elif kind == NODE_TRAIT:
            values[node] = _compare(
                rules, node, traits.kind[arg], traits.num[arg], traits.code[arg]
            )
        elif kind == NODE_COUNTER:
            values[node] = _compare(rules, node, VALUE_NUMBER, counter_values[arg], 0)
        elif (
            kind == NODE_TIME_IN_STAGE or kind == NODE_IDLE or kind == NODE_SINCE
            or kind == NODE_UNTIL
        ):  # fmt: skip
            values[node] = _compare_time(rules, node, kind, arg, traits, context)
        elif kind == NODE_SEGMENT:
            values[node] = values[rules.segment_root[arg]]
        elif kind == NODE_FRICTION:
            topic = rules.node_code[node]  # -1: every signal; else the level of one topic
            at = CONTEXT_FRICTION_LEVEL if topic < 0 else CONTEXT_SIZE + n_since + topic
            values[node] = context[at] >= arg
        else:
            values[node] = False
