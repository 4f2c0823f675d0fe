"""What `decide(..., explain=True)` says about what did not happen: each action not offered with
the reason and its detail in a marketer's words (the condition that failed with the values seen,
when a cooldown or cap ends, the holdout), and each transition from the customer's stage that
did not fire with the first part of its `when` that failed.

Read after the kernels ran, from the states before and after the event (`engine.why`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.compile import CompiledJourney, Ruleset
from engine.decision import Exclusion, JourneyOutcome, NotFired
from engine.event import Event, PropertyValue
from engine.kernels import codes, readout
from engine.kernels.compiled import IntArray, KernelOutput
from engine.quiet import local_minute, utc_offset_ms, zone_name
from engine.rules.model import Action, Transition, duration_ms
from engine.state import CustomerState, JourneyState
from engine.timers import is_timer
from engine.why import Facts, readable_time, why_not


def _since(clock_ms: int, at_ms: int) -> int:
    return 0 if at_ms == codes.NEVER_MS else clock_ms - at_ms


def _facts(
    journey: CompiledJourney,
    before: JourneyState,
    after: JourneyState,
    event: Event,
    traits: Mapping[str, PropertyValue],
    *,
    for_actions: bool,
) -> Facts:
    """The facts as the kernel saw them: counters and friction after this event; time in stage
    before the transition for transitions, after it for actions."""
    rules, clock_ms = journey.rules, int(after.ints[codes.INT_LAST_EVENT_MS])
    counters = {
        name: readout.counter_value(rules, after.ints, after.floats, i, clock_ms)
        for i, name in enumerate(journey.counter_names)
    }
    level, _ = readout.friction_at(rules, after.ints, after.floats, clock_ms)
    entered = (after if for_actions else before).ints[codes.INT_STAGE_ENTERED_MS]
    return Facts(
        journey=journey.model, event=event, traits=traits, counters=counters, level=level,
        in_stage_ms=_since(clock_ms, int(entered)),
        # idle time runs from the customer's last real event: a timer is not activity
        idle_ms=_since(clock_ms, int(before.ints[rules.activity_index])),
        since_ms={
            event_type: clock_ms - int(after.ints[rules.since_index + j])
            for j, event_type in enumerate(journey.since_types)
            if int(after.ints[rules.since_index + j]) != codes.NEVER_MS
        },
        clock_ms=clock_ms,
        topic_levels=dict(zip(
            journey.topic_names,
            readout.topic_levels(rules, after.ints, after.floats, clock_ms),
            strict=True,
        )),
    )  # fmt: skip


def _cap_detail(action: Action, history: Sequence[int], clock_ms: int) -> str:
    assert action.cap is not None
    per_ms = max(1, duration_ms(action.cap.per))
    recent = sorted(ms for ms in history if ms != codes.NEVER_MS and ms > clock_ms - per_ms)
    again = readable_time(recent[0] + per_ms) if recent else "now"
    return f"offered {len(recent)} times in the last {action.cap.per}; offered again from {again}"


def _quiet_detail(journey: CompiledJourney, channel: str, facts: Facts) -> str:
    policy = journey.model.contact_policy
    quiet = policy.quiet_hours if policy else None
    if quiet is None:
        return ""
    zone = zone_name(facts.traits.get(quiet.time_zone_trait), quiet.default_time_zone)
    minute = local_minute(facts.clock_ms, utc_offset_ms(zone, zone, facts.clock_ms))
    now = f"{minute // 60:02d}:{minute % 60:02d}"
    return (
        f"{channel} is quiet from {quiet.from_} to {quiet.to} in {zone}, where it is {now}; "
        f"offered again from {quiet.to}"
    )


def _contact_detail(journey: CompiledJourney, channel: str, ints: IntArray, clock_ms: int) -> str:
    """The contact limits on `channel` that are reached, offers of this decision included."""
    policy, rules = journey.model.contact_policy, journey.rules
    reached = []
    for limit, spec in enumerate(policy.limits if policy else []):
        if spec.channel != channel:
            continue
        first, count = int(rules.limit_offset[limit]), int(rules.limit_count[limit])
        per_ms = duration_ms(spec.per)
        recent = sorted(
            ms for ms in ints[first : first + count].tolist()
            if ms != codes.NEVER_MS and ms > clock_ms - per_ms
        )  # fmt: skip
        if len(recent) >= spec.count:
            again = readable_time(recent[len(recent) - spec.count] + per_ms)
            reached.append(
                f"at most {spec.count} on {channel} per {spec.per}, {len(recent)} offered; "
                f"the next from {again}"
            )
    # Otherwise the actions ranked above it here reached it (held out ones are not remembered).
    return "; ".join(reached) or f"the contact limit on {channel} is reached in this decision"


def _detail(
    journey: CompiledJourney, index: int, reason: str, after: JourneyState, facts: Facts,
    score: float,
) -> str:  # fmt: skip
    action = journey.model.actions[index]
    rules, ints = journey.rules, after.ints
    clock_ms = int(ints[codes.INT_LAST_EVENT_MS])
    if reason == "stage":
        where = "any stage" if action.stages == "*" else ", ".join(list(action.stages))
        stage = journey.stage_ids[int(ints[codes.INT_STAGE])]
        return f"offered in {where}; the customer is in {stage}"
    if reason == "segment":
        segments = journey.model.segments
        failed = [f"not in {s} ({why_not(segments[s].when, facts)})" for s in action.segments or []]
        return " and ".join(failed)
    if reason == "condition" and action.when is not None:
        return why_not(action.when, facts) or ""
    if reason == "cooldown" and action.cooldown is not None:
        shown = int(ints[rules.action_last_shown_index + index])
        ends = readable_time(shown + duration_ms(action.cooldown))
        return f"offered {readable_time(shown)}; its {action.cooldown} cooldown ends {ends}"
    if reason == "cap" and action.cap is not None:
        first = int(rules.action_cap_offset[index])
        history = ints[first : first + int(rules.action_cap_count[index])].tolist()
        return _cap_detail(action, history, clock_ms)
    if reason == "quiet_hours":
        return _quiet_detail(journey, action.channel or facts.event.channel, facts)
    if reason == "contact_limit":
        return _contact_detail(journey, action.channel or facts.event.channel, ints, clock_ms)
    if reason == "holdout":
        return (f"this customer is in the {action.holdout:g} % held out of it (its control "
                "group): never offered to them, to measure what it changes")  # fmt: skip
    if reason == "rank":
        return f"score {score:g}: other actions scored higher"
    return ""


def exclusions(
    ruleset: Ruleset,
    before: CustomerState,
    after: Mapping[str, JourneyState],
    event: Event,
    outputs: list[KernelOutput],
    chosen: set[tuple[int, int]],
) -> tuple[Exclusion, ...]:
    """Every action not offered, with its reason (ACTION_STATUS_NAMES) and detail."""
    excluded = []
    for position, (journey, out) in enumerate(zip(ruleset.journeys, outputs, strict=True)):
        now = after[journey.name]
        facts = _facts(journey, before.journey(journey), now, event, before.traits,
                       for_actions=True)  # fmt: skip
        for action, status in enumerate(out.status.tolist()):
            if (position, action) in chosen:
                continue
            status = codes.ACTION_OUTRANKED if status == codes.ACTION_OFFERED else status
            reason = codes.ACTION_STATUS_NAMES[status]
            detail = _detail(journey, action, reason, now, facts, float(out.scores[action]))
            excluded.append(Exclusion(journey.action_ids[action], journey.name, reason, detail))
    return tuple(excluded)


def not_fired(
    ruleset: Ruleset,
    before: CustomerState,
    after: Mapping[str, JourneyState],
    event: Event,
    outcomes: Sequence[JourneyOutcome],
) -> tuple[NotFired, ...]:
    """Each transition tried from the customer's stage that did not fire, and why: the ones
    written before the one that fired, or all of them when none did."""
    found = []
    for journey, outcome in zip(ruleset.journeys, outcomes, strict=True):
        facts = _facts(journey, before.journey(journey), after[journey.name], event,
                       before.traits, for_actions=False)  # fmt: skip
        for index, transition in enumerate(journey.model.transitions):
            name, line = journey.transition_ids[index], journey.transition_lines[index]
            if name == outcome.transition and line == outcome.transition_line:
                break
            sources = transition.from_
            if sources != "*" and outcome.previous_stage not in sources:
                continue
            reason = _why_not_fired(transition, outcome.previous_stage, facts, is_timer(event))
            found.append(NotFired(journey.name, name, line, reason))
    return tuple(found)


def _why_not_fired(transition: Transition, stage: str, facts: Facts, timer: bool) -> str:
    """Why `transition`, tried from `stage`, did not fire on this event (or timer)."""
    if transition.to == stage:
        return f"it leads to {transition.to}, where the customer already is"
    if transition.is_timed and not timer:
        clock = f"after {transition.after}" if transition.after else f"idle {transition.idle}"
        return f"it fires on time ({clock}), not on an event"
    if timer and not transition.is_timed:
        return "it fires on an event, not on time"
    failed = why_not(transition.when, facts) if transition.when is not None else None
    if failed:
        return failed
    if timer:  # `engine.kernels.timers`: each due time is checked once per stage visit
        return "it is not due yet, or was checked already in this stage visit"
    return "its condition holds"
