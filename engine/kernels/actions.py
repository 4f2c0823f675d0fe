"""Action eligibility, scoring, ranking, holdout draws and the record of what was offered."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engine.kernels.codes import (
    ACTION_CAPPED,
    ACTION_CONDITION_FALSE,
    ACTION_CONTACT_LIMIT,
    ACTION_COOLDOWN,
    ACTION_HELD_OUT,
    ACTION_OFFERED,
    ACTION_OUTRANKED,
    ACTION_QUIET_HOURS,
    ACTION_WRONG_SEGMENT,
    ACTION_WRONG_STAGE,
    HOLDOUT_SCALE,
    NEVER_MS,
)
from engine.kernels.jit import kernel

if TYPE_CHECKING:
    from engine.kernels.compiled import CompiledRules as CompiledRulesLike

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


@kernel
def _splitmix(z):
    """splitmix64's output function of `z` plus the golden gamma: well-mixed 64 bits."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


@kernel
def _holdout_draw(customer_hash, action_salt):
    """A stable number in [0, HOLDOUT_SCALE) for one customer and one action (splitmix64)."""
    return np.int64(_splitmix(customer_hash ^ action_salt) % np.uint64(HOLDOUT_SCALE))


@kernel
def _sampled_propensity(propensity, action, stage, event_seed, action_salt):
    """Thompson sampling: a draw of the action's goal rate in `stage` from its posterior,
    Beta(1 + conversions, 1 + exposures without one) (`propensity[action, stage]` holds the two
    counts). Seeded by the event and the action, so an event is always decided the same way."""
    seed = _splitmix(event_seed ^ action_salt) & np.uint64(0xFFFFFFFF)
    np.random.seed(np.uint32(seed))
    return np.random.beta(1.0 + propensity[action, stage, 0], 1.0 + propensity[action, stage, 1])


# The helpers below take arrays, never `CompiledRules`: passing the 47-array tuple by value to a
# function called once per action increfs and decrefs every array, measured at ~1 µs per call.


@kernel
def _in_a_segment(segment_values, first, count):
    """True when no segment is required, or the customer is in one of `count` listed ones."""
    if count == 0:
        return True
    for j in range(first, first + count):
        if segment_values[j]:
            return True
    return False


@kernel
def _shows_since(history, since_ms):
    """How many remembered show times in `history` are later than `since_ms`."""
    shows = 0
    for shown_ms in history:
        if shown_ms != NEVER_MS and shown_ms > since_ms:
            shows += 1
    return shows


@kernel
def _quiet_now(rules, action, event_channel, local_minute):
    """Whether the action's channel is kept quiet at the customer's minute of the day (-1:
    unknown, or no quiet hours)."""
    if local_minute < 0 or rules.quiet_from_minute < 0:
        return False
    channel = _channel_of(rules, action, event_channel)
    listed = False
    for j in range(rules.quiet_channel_code.shape[0]):
        if rules.quiet_channel_code[j] == channel:
            listed = True
    start, end = rules.quiet_from_minute, rules.quiet_to_minute
    if start < end:
        return listed and start <= local_minute < end
    return listed and (local_minute >= start or local_minute < end)


@kernel
def _eligibility(rules, stage, ints, clock_ms, values, event_channel, local_minute, status):
    """Why each action cannot be offered now (ACTION_*), or ACTION_OFFERED, into `status`."""
    n_segments_listed = rules.action_segments.shape[0]
    segment_values = np.empty(n_segments_listed, dtype=np.bool_)
    for j in range(n_segments_listed):
        segment_values[j] = values[rules.segment_root[rules.action_segments[j]]]
    for action in range(status.shape[0]):
        root = rules.action_root[action]
        last_shown_ms = ints[rules.action_last_shown_index + action]
        cooldown_ms = rules.action_cooldown_ms[action]
        cap = rules.action_cap_count[action]
        first = rules.action_cap_offset[action]
        if not rules.action_stages[action, stage]:
            status[action] = ACTION_WRONG_STAGE
        elif not _in_a_segment(
            segment_values, rules.action_segment_first[action], rules.action_segment_count[action]
        ):
            status[action] = ACTION_WRONG_SEGMENT
        elif root >= 0 and not values[root]:
            status[action] = ACTION_CONDITION_FALSE
        elif (
            cooldown_ms > 0 and last_shown_ms != NEVER_MS and clock_ms - last_shown_ms < cooldown_ms
        ):
            status[action] = ACTION_COOLDOWN
        elif (
            cap > 0
            and _shows_since(
                ints[first : first + cap], clock_ms - rules.action_cap_window_ms[action]
            )
            >= cap
        ):
            status[action] = ACTION_CAPPED
        elif _quiet_now(rules, action, event_channel, local_minute):
            status[action] = ACTION_QUIET_HOURS
        else:
            status[action] = ACTION_OFFERED


@kernel
def _score_eligible(rules, stage, values, propensity, event_seed, status, scores):
    """Priority plus the `add` of every boost whose condition holds, for each eligible action;
    an adaptive action's score is then multiplied by its sampled propensity in `stage`."""
    for action in range(status.shape[0]):
        score = rules.action_priority[action]
        first = rules.action_boost_first[action]
        for j in range(first, first + rules.action_boost_count[action]):
            if values[rules.boost_root[j]]:
                score += rules.boost_add[j]
        if status[action] == ACTION_OFFERED and rules.action_adaptive[action]:
            score *= _sampled_propensity(
                propensity, action, stage, event_seed, rules.action_salt[action]
            )
        scores[action] = score if status[action] == ACTION_OFFERED else 0.0


@kernel
def _channel_of(rules, action, event_channel):
    """The channel an action is delivered on: its own, or the event's."""
    channel = rules.action_channel_code[action]
    return event_channel if channel < 0 else channel


@kernel
def _within_contact_limits(rules, ints, clock_ms, channel, ranked, n_ranked, event_channel):
    """Whether one more offer on `channel` keeps every contact limit on it: the offers
    remembered within each limit's window, plus those already ranked in this decision."""
    for limit in range(rules.limit_count.shape[0]):
        if rules.limit_channel_code[limit] != channel:
            continue
        first, count = rules.limit_offset[limit], rules.limit_count[limit]
        used = _shows_since(ints[first : first + count], clock_ms - rules.limit_window_ms[limit])
        for j in range(n_ranked):
            if _channel_of(rules, ranked[j], event_channel) == channel:
                used += 1
        if used >= count:
            return False
    return True


@kernel
def _take_top(rules, ints, clock_ms, event_channel, status, scores, top_k, ranked):
    """Move the `top_k` best eligible actions into `ranked` (ties keep file order), skipping
    those whose channel's contact limit is reached (ACTION_CONTACT_LIMIT); every other eligible
    action becomes ACTION_OUTRANKED. Returns how many were ranked."""
    n_actions = status.shape[0]
    n_ranked = 0
    while n_ranked < top_k:
        best = -1
        for action in range(n_actions):
            if status[action] == ACTION_OFFERED and (best < 0 or scores[action] > scores[best]):
                best = action
        if best < 0:
            break
        channel = _channel_of(rules, best, event_channel)
        if not _within_contact_limits(
            rules, ints, clock_ms, channel, ranked, n_ranked, event_channel
        ):
            status[best] = ACTION_CONTACT_LIMIT
            continue
        status[best] = ACTION_OUTRANKED  # out of the pool; its final status is set by the caller
        ranked[n_ranked] = best
        n_ranked += 1
    for action in range(n_actions):
        if status[action] == ACTION_OFFERED:
            status[action] = ACTION_OUTRANKED
    return n_ranked


@kernel
def _rank_actions(
    rules,
    stage,
    ints,
    clock_ms,
    values,
    customer_hash,
    propensity,
    event_seed,
    event_channel,
    local_minute,
    top_k,
    status,
    scores,
    ranked,
):
    """Fill `status` and `scores` for every action; write the top `top_k` into `ranked`.

    Ranking is by score, highest first; equal scores keep file order. A ranked action whose
    holdout draw falls under its holdout keeps its place but is marked ACTION_HELD_OUT, so a
    held-out customer's slot stays empty (and it counts in its channel's contact limit for
    this decision, as it would have been sent). `event_channel` (an interned string) is where
    an action without a `channel` of its own is delivered; `local_minute` the customer's minute of
    the day for quiet hours (-1: none). Returns how many entries of `ranked` are filled.
    Adaptive actions are scored with a propensity drawn from `propensity` (float64,
    (n_actions, n_stages, 2): conversions and exposures without one) seeded by `event_seed`;
    holdout draws never depend on them.

    status : np.ndarray, int8, shape (n_actions,)
    scores : np.ndarray, float64, shape (n_actions,)
    ranked : np.ndarray, int64, shape (>= top_k,)
    """
    _eligibility(rules, stage, ints, clock_ms, values, event_channel, local_minute, status)
    _score_eligible(rules, stage, values, propensity, event_seed, status, scores)
    n_ranked = _take_top(rules, ints, clock_ms, event_channel, status, scores, top_k, ranked)
    for j in range(n_ranked):
        action = ranked[j]
        draw = _holdout_draw(customer_hash, rules.action_salt[action])
        status[action] = ACTION_HELD_OUT if draw < rules.action_holdout[action] else ACTION_OFFERED
    return n_ranked


def record_offer(
    ints: np.ndarray, last_shown_slot: int, cap_first: int, cap_count: int, clock_ms: int
) -> None:
    """Remember in `ints` that an action was offered at `clock_ms` (see `_record_offer`)."""
    _record_offer(ints, last_shown_slot, cap_first, cap_count, clock_ms)


@kernel
def _record_offer(ints, last_shown_slot, cap_first, cap_count, clock_ms):
    """Set the action's last-shown time and, when it is capped, replace the oldest entry of its
    cap history. Takes slots, not `CompiledRules`, so that the call from Python is cheap."""
    ints[last_shown_slot] = clock_ms
    if cap_count == 0:
        return
    oldest = cap_first
    for j in range(cap_first, cap_first + cap_count):
        if ints[j] < ints[oldest]:
            oldest = j
    ints[oldest] = clock_ms


def record_contact(
    rules: CompiledRulesLike, ints: np.ndarray, action: int, event_channel: int, clock_ms: int
) -> None:
    """Remember in `ints` an offer of `action` at `clock_ms` in the contact limits of its
    channel (see `_record_contact`)."""
    _record_contact(
        rules.action_channel_code, rules.limit_channel_code, rules.limit_count,
        rules.limit_offset, ints, action, event_channel, clock_ms,
    )  # fmt: skip


@kernel
def _record_contact(
    action_channel_code, limit_channel_code, limit_count, limit_offset, ints, action,
    event_channel, clock_ms,
):  # fmt: skip
    """Replace the oldest remembered offer time of each contact limit on the action's channel.
    Takes arrays, not `CompiledRules`, so that the call from Python is cheap."""
    channel = action_channel_code[action]
    if channel < 0:
        channel = event_channel
    for limit in range(limit_channel_code.shape[0]):
        if limit_channel_code[limit] != channel:
            continue
        oldest = limit_offset[limit]
        for j in range(limit_offset[limit], limit_offset[limit] + limit_count[limit]):
            if ints[j] < ints[oldest]:
                oldest = j
        ints[oldest] = clock_ms
