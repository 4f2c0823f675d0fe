"""Scenario tests for marketers: events at relative times and what must be true after each.

A scenario file (`rules/tests/*.yaml`) names the journeys it tests and lists scenarios; both
`journeyman rules test` and pytest run them. This module parses and runs them; reading the files is
the caller's job.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, ValidationError, model_validator

from engine.compile import Ruleset
from engine.decide import decide
from engine.decision import Decision
from engine.errors import RulesError
from engine.event import (
    RESPONDED_ACTION_PROPERTY,
    RESPONSE_EVENT_TYPE,
    RESPONSE_PROPERTY,
    Event,
    PropertyValue,
)
from engine.rules.explain import problems_from_validation
from engine.rules.model import Duration, Response, Strict, duration_ms
from engine.rules.yaml_tree import read_yaml
from engine.state import CustomerState, new_state
from engine.timers import next_due_ms, timer_event

DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

StageExpectation = str | dict[str, str]


class Expectation(Strict):
    stage: StageExpectation | None = Field(
        None, description="stage after the step (or per journey)"
    )
    transition: str | None = Field(None, description="transition that fired; `null` for none")
    friction: StageExpectation | None = Field(None, description="friction level (or per journey)")
    actions: list[str] | None = Field(None, description="exactly these actions, in this order")
    offers: list[str] | None = Field(None, description="these actions are among those offered")
    not_offered: list[str] | None = Field(None, description="none of these is offered")
    held_out: list[str] | None = Field(None, description="exactly these actions are held out")
    variants: dict[str, str] | None = Field(
        None, description="these offered actions carry these variants: action -> variant"
    )
    content: dict[str, dict[str, Any]] | None = Field(
        None, description="these offered actions carry at least these content keys"
    )
    conversions: dict[str, str | list[str]] | None = Field(
        None,
        description="exactly these conversions on this step: action -> goal (or goals); "
        "`{}` for none",
    )


class Step(Strict):
    after: Duration = Field("1m", description="time since the previous step (or the start)")
    event: str | None = None
    channel: str = "web"
    touchpoint: str = ""
    properties: dict[str, str | float | bool] = Field(default_factory=dict)
    identify: dict[str, str | float | bool] | None = Field(None, description="set these traits")
    response: Response | None = Field(
        None, description="the app records this response to `action` (RecordResponse)"
    )
    action: str | None = Field(None, description="the action a `response:` step responds to")
    advance: Duration | None = Field(
        None,
        description="let this much time pass with no event: the timed transitions that fall "
        "due fire, in order; `expect` checks the last one",
    )
    expect: Expectation | None = None

    @model_validator(mode="after")
    def _event_or_identify(self) -> Step:
        kinds = [
            k for k in ("event", "identify", "response", "advance") if getattr(self, k) is not None
        ]
        if len(kinds) > 1:
            raise ValueError(
                f"this step has both `{kinds[0]}:` and `{kinds[1]}:`; split it into two steps, "
                "the `identify:` first if the event should see the new traits"
            )
        if not kinds:
            raise ValueError(
                "this step has neither `event:` nor `identify:`; add `event: <type>` "
                "(or `identify:` with the traits to set, `response:` with an `action:`, or "
                "`advance:` with the time to let pass)"
            )
        if (self.response is None) != (self.action is None):
            raise ValueError(
                "`response:` and `action:` go together: write `response: click` and the "
                "`action:` it responds to"
            )
        return self


class Scenario(Strict):
    name: str
    customer: str | None = None
    traits: dict[str, str | float | bool] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)


class ScenarioFile(Strict):
    rules: list[str] = Field(min_length=1, description="journey files or folders, relative to here")
    start: datetime = Field(DEFAULT_START, description="when the first step's clock starts")
    scenarios: list[Scenario] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class LoadedScenarios:
    source: str
    spec: ScenarioFile
    step_lines: dict[tuple[int, int], int]  # (scenario, step) → line in the file


@dataclass
class ScenarioResult:
    name: str
    failures: list[str] = field(default_factory=list)
    steps_run: int = 0

    @property
    def passed(self) -> bool:
        return not self.failures


def parse_scenarios(text: str, source: str) -> LoadedScenarios:
    """Validate a scenario file. Raises `RulesError` with `file:line:column` problems."""
    tree = read_yaml(text, source)
    try:
        spec = ScenarioFile.model_validate(tree.data)
    except ValidationError as error:
        raise RulesError(problems_from_validation(error, tree, ScenarioFile)) from error
    lines = {
        (i, j): tree.position(("scenarios", i, "steps", j))[0]
        for i, scenario in enumerate(spec.scenarios)
        for j in range(len(scenario.steps))
    }
    return LoadedScenarios(source, spec, lines)


def _per_journey(expected: StageExpectation, decision: Decision, attribute: str) -> list[str]:
    got = {o.journey: getattr(o, attribute) for o in decision.journeys}
    wanted = expected if isinstance(expected, dict) else {decision.journeys[0].journey: expected}
    what = "friction" if attribute == "friction_level" else "stage"
    return [
        f"expected {what} {value!r} in journey {journey!r}, got {got.get(journey)!r}"
        for journey, value in wanted.items()
        if got.get(journey) != value
    ]


def _transition_text(decision: Decision, ruleset: Ruleset) -> str:
    fired = [
        f"`{o.transition}` ({ruleset.journey(o.journey).source}:{o.transition_line})"
        for o in decision.journeys
        if o.transition is not None
    ]
    return "transition " + ", ".join(fired) + " fired" if fired else "no transition fired"


def _not_fired(decision: Decision, ruleset: Ruleset, wanted: str, *, to_stage: bool) -> str:
    """Why the transitions into stage `wanted` (or named `wanted`) did not fire."""
    reasons = []
    for t in decision.not_fired:
        journey = ruleset.journey(t.journey)
        to = journey.model.transitions[journey.transition_lines.index(t.line)].to
        if (to if to_stage else t.transition) == wanted:
            reasons.append(f"`{t.transition}` (line {t.line}) did not fire: {t.reason}")
    return "; ".join(reasons)


def _missing_offers(missing: list[str], decision: Decision) -> str:
    """Why expected actions were not offered: held out, or excluded with the detail."""
    why = {e.action: f"{e.reason}: {e.detail}" if e.detail else e.reason for e in decision.excluded}
    parts = []
    for action in missing:
        if action in decision.held_out:
            parts.append(f"`{action}` held out: this customer is in its control group")
        elif action in why:
            parts.append(f"`{action}` {why[action]}")
    return "; ".join(parts)


def _known_names(ruleset: Ruleset) -> dict[str, set[str]]:
    journeys = ruleset.journeys
    return {
        "stage": {s for j in journeys for s in j.stage_ids},
        "transition": {t for j in journeys for t in j.transition_ids},
        "action": {a for j in journeys for a in j.action_ids},
        "goal": {g for j in journeys for g in j.goal_names},
        "friction level": {level for j in journeys for level in j.level_names},
        "journey": {j.name for j in journeys},
    }


def _named(expect: Expectation) -> list[tuple[str, str]]:
    """Every (kind, name) an expectation mentions."""
    names: list[tuple[str, str]] = []
    for kind, value in (("stage", expect.stage), ("friction level", expect.friction)):
        if isinstance(value, str):
            names.append((kind, value))
        elif isinstance(value, dict):
            names += [("journey", j) for j in value] + [(kind, v) for v in value.values()]
    if expect.transition is not None:
        names.append(("transition", expect.transition))
    for listed in (expect.actions, expect.offers, expect.not_offered, expect.held_out):
        names += [("action", a) for a in listed or []]
    names += [("action", a) for a in [*(expect.variants or {}), *(expect.content or {})]]
    for action, goals in (expect.conversions or {}).items():
        names.append(("action", action))
        names += [("goal", g) for g in ([goals] if isinstance(goals, str) else goals)]
    return names


def _unknown(expect: Expectation, known: dict[str, set[str]]) -> list[str]:
    """A name the rules under test do not have is a mistake in the scenario, not a failure of
    the rules: said as such, with the name it probably meant."""
    problems = []
    for kind, name in _named(expect):
        if name not in known[kind]:
            close = difflib.get_close_matches(name, sorted(known[kind]), n=1)
            guess = f"; did you mean `{close[0]}`?" if close else ""
            problems.append(
                f"the scenario names {kind} `{name}`, which the rules do not have{guess}"
            )
    return problems


def _check(expect: Expectation, decision: Decision, ruleset: Ruleset) -> list[str]:
    unknown = _unknown(expect, _known_names(ruleset))
    if unknown:
        return unknown
    failures: list[str] = []
    offered = list(decision.action_ids)
    if expect.stage is not None:
        stage_failures = _per_journey(expect.stage, decision, "stage")
        wanted = expect.stage if isinstance(expect.stage, str) else None
        if stage_failures and wanted is not None:
            why = _not_fired(decision, ruleset, wanted, to_stage=True)
            stage_failures = [f"{f}; {why}" if why else f for f in stage_failures]
        failures += stage_failures
    if expect.friction is not None:
        failures += _per_journey(expect.friction, decision, "friction_level")
    if "transition" in expect.model_fields_set:
        fired = [o.transition for o in decision.journeys if o.transition is not None]
        if (expect.transition is None and fired) or (
            expect.transition is not None and expect.transition not in fired
        ):
            why = _not_fired(decision, ruleset, expect.transition or "", to_stage=False)
            failures.append(
                f"expected transition {expect.transition!r}, got {fired or None}"
                + (f"; {why}" if why else "")
            )
    if expect.actions is not None and expect.actions != offered:
        why = _missing_offers([a for a in expect.actions if a not in offered], decision)
        failures.append(
            f"expected actions {expect.actions}, got {offered}" + (f"; {why}" if why else "")
        )
    missing = [a for a in expect.offers or [] if a not in offered]
    if missing:
        why = _missing_offers(missing, decision)
        failures.append(
            f"expected {missing} among the offers, got {offered}" + (f"; {why}" if why else "")
        )
    unwanted = [a for a in expect.not_offered or [] if a in offered]
    if unwanted:
        failures.append(f"expected {unwanted} not to be offered, got {offered}")
    if expect.held_out is not None and expect.held_out != list(decision.held_out):
        failures.append(f"expected held out {expect.held_out}, got {list(decision.held_out)}")
    if expect.conversions is not None:
        failures += _check_conversions(expect.conversions, decision)
    failures += _check_offers(expect, decision)
    context = _transition_text(decision, ruleset)
    return [f"{failure} ({context})" for failure in failures]


def _check_offers(expect: Expectation, decision: Decision) -> list[str]:
    """Variants and content of the actions offered."""
    offered = {a.action: a for a in decision.actions}
    failures = []
    for action, variant in (expect.variants or {}).items():
        got = offered[action].variant if action in offered else None
        if got != variant:
            shown = "not offered" if got is None else repr(got or "no variant")
            failures.append(f"expected {action} with variant {variant!r}, got {shown}")
    for action, wanted in (expect.content or {}).items():
        content = dict(offered[action].content) if action in offered else None
        if content is None or any(content.get(k) != v for k, v in wanted.items()):
            failures.append(f"expected {action} with content {wanted}, got {content}")
    return failures


def _check_conversions(expected: dict[str, str | list[str]], decision: Decision) -> list[str]:
    wanted = {
        (action, goal)
        for action, goals in expected.items()
        for goal in ([goals] if isinstance(goals, str) else goals)
    }
    got = {(c.action, c.goal): "treated" if c.treated else "control" for c in decision.conversions}
    if wanted == set(got):
        return []
    shown = ", ".join(f"{a} -> {g} ({group})" for (a, g), group in sorted(got.items())) or "none"
    listed = ", ".join(f"{a} -> {g}" for a, g in sorted(wanted)) or "none"
    return [f"expected conversions {listed}, got {shown}"]


def run_scenario(loaded: LoadedScenarios, index: int, ruleset: Ruleset) -> ScenarioResult:
    """Run scenario `index` of `loaded` against `ruleset` from a new customer."""
    scenario = loaded.spec.scenarios[index]
    result = ScenarioResult(scenario.name)
    customer = scenario.customer or f"scenario-{index}"
    state: CustomerState = new_state(ruleset).with_traits(scenario.traits)
    clock_ms = int(loaded.spec.start.timestamp() * 1000)
    for number, step in enumerate(scenario.steps):
        where = f"{loaded.source}:{loaded.step_lines[(index, number)]}"
        if step.advance is not None:
            clock_ms += duration_ms(step.advance)
            decision, state = _fire_timers(ruleset, state, customer, clock_ms, inclusive=True)
            result.steps_run += 1
            if step.expect is not None:
                result.failures += [
                    f"{where}: step {number + 1} (advance {step.advance}): {failure}"
                    for failure in _check(step.expect, decision, ruleset)
                ]
            continue
        clock_ms += duration_ms(step.after)
        # The timers that fell due before this step fire first, as the service's timer loop
        # fires them when they fall due.
        _, state = _fire_timers(ruleset, state, customer, clock_ms, inclusive=False)
        if step.identify is not None:
            state = state.with_traits(step.identify)
            result.steps_run += 1
            continue
        event = _event(step, f"{customer}-{number}", customer)
        decision, state = decide(ruleset, state, event, clock_ms, explain=True)
        result.steps_run += 1
        if step.expect is not None:
            result.failures += [
                f"{where}: step {number + 1} ({step.event or step.response}): {failure}"
                for failure in _check(step.expect, decision, ruleset)
            ]
    return result


def _fire_timers(
    ruleset: Ruleset, state: CustomerState, customer: str, until_ms: int, *, inclusive: bool
) -> tuple[Decision, CustomerState]:
    """Decide every timer due before `until_ms` (or at it, `inclusive`), in order; returns the
    last timer's decision (without one: where the customer stands, no transition) and the
    state after them."""
    decision: Decision | None = None
    while (due := next_due_ms(ruleset, state)) is not None and (
        due < until_ms or (inclusive and due == until_ms)
    ):
        decision, state = decide(
            ruleset, state, timer_event(ruleset, state, customer, due), due, explain=True
        )
        if decision.duplicate:  # deciding it again would change nothing: time would stand still
            raise AssertionError(f"the timer due at {due} ms was decided twice; please report")
    if decision is None:
        decision, _ = decide(
            ruleset, state, timer_event(ruleset, state, customer, until_ms), until_ms
        )
    return decision, state


def _event(step: Step, event_id: str, customer: str) -> Event:
    """The event of an `event:` step, or the one RecordResponse makes of a `response:` step."""
    properties = _properties(step.properties)
    if step.response is not None and step.action is not None:
        properties |= {RESPONSE_PROPERTY: step.response, RESPONDED_ACTION_PROPERTY: step.action}
        return Event(
            event_id, customer, RESPONSE_EVENT_TYPE, step.channel, step.touchpoint, properties
        )
    assert step.event is not None
    return Event(event_id, customer, step.event, step.channel, step.touchpoint, properties)


def _properties(values: dict[str, Any]) -> dict[str, PropertyValue]:
    return {k: v if isinstance(v, str | bool) else float(v) for k, v in values.items()}
