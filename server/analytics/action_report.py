"""The action report: per action and goal of a journey, the customers offered the action against
those held out of it, over a range of UTC days, with the uplift statistics of `engine.uplift`.

Counts are cohorts by exposure day (`server.store.keys`, outcomes hash): a day's exposed customers
and the conversions they made afterwards, within each goal's window.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

from engine.compile import CompiledJourney, Ruleset
from engine.kernels.codes import HOLDOUT_SCALE
from engine.uplift import Arm, Interval, UpliftReport, uplift_report
from journeyman.v1 import journeyman_pb2 as pb
from server.protocol.errors import EventInvalid, FieldViolation
from server.store.keys import VALUE_SCALE, outcome_field
from server.store.redis_store import Store

DEFAULT_DAYS = 30


def report_days(since: str, until: str, today: date, max_days: int) -> list[str]:
    """The UTC days from `since` to `until`, both included (`YYYY-MM-DD`; empty `until` is
    today, empty `since` is DEFAULT_DAYS - 1 days before `until`)."""
    last = _day("until", until) if until else today
    first = _day("since", since) if since else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise EventInvalid([FieldViolation("since", f"{first} is after until ({last})")])
    if (last - first).days >= max_days:
        raise EventInvalid([FieldViolation(
            "since", f"{first} to {last} is more than the {max_days} days statistics are kept; "
            "ask for a shorter range",
        )])  # fmt: skip
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _day(field: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        problem = f"{text!r} is not a day; write YYYY-MM-DD"
        raise EventInvalid([FieldViolation(field, problem)]) from None


def report_journey(ruleset: Ruleset, name: str) -> CompiledJourney:
    """The journey named `name` (the first loaded when empty)."""
    if not name:
        return ruleset.journeys[0]
    for journey in ruleset.journeys:
        if journey.name == name:
            return journey
    known = ", ".join(j.name for j in ruleset.journeys)
    raise EventInvalid([FieldViolation("journey", f"no journey {name!r}; loaded: {known}")])


def holdout_percent(journey: CompiledJourney, action: int) -> float:
    return float(journey.rules.action_holdout[action]) * 100 / HOLDOUT_SCALE


Totals = Counter[tuple[str, str, str, str]]  # (kind, action, goal, arm) -> count


def goal_rows(journey: CompiledJourney, counts: Counter[str]) -> list[pb.ActionGoalReport]:
    """Per action and goal, a row for everyone offered the action, then one per variant of
    it, each against the action's control group; from outcome counts (fields of the outcomes
    hash, summed over days; every stage of exposure counts)."""
    totals = _over_stages(counts)
    rows = []
    for index, action in enumerate(journey.model.actions):
        holdout = holdout_percent(journey, index)
        for goal in journey.goal_names:
            control = _arm(totals, action.id, goal, "c")
            rows.append(_row(action.id, goal, _arm(totals, action.id, goal, "t"), control, holdout))
            weights = sum(v.weight for v in action.variants)
            for variant in action.variants:
                treated = _arm(totals, action.id, goal, f"t.{variant.id}")
                # Against the whole control group, the share expected in control is larger.
                share = (100 - holdout) * variant.weight / weights
                expected = 100 * holdout / (holdout + share) if holdout else 0.0
                row = _row(action.id, goal, treated, control, expected)
                row.variant = variant.id
                rows.append(row)
    return rows


def _over_stages(counts: Counter[str]) -> Totals:
    """(kind, action, goal, arm) -> count, summed over the stages of exposure; arm is "c",
    "t" (every treated customer) or "t.<variant>"."""
    totals: Totals = Counter()
    for name, count in counts.items():
        field = outcome_field(name)
        if field is None:
            continue
        arm = "t" if field.treated else "c"
        totals[field.kind, field.action, field.goal, arm] += count
        if field.variant:
            totals[field.kind, field.action, field.goal, f"t.{field.variant}"] += count
    return totals


async def action_report(
    store: Store, ruleset: Ruleset, request: pb.GetActionReportRequest, now_ms: int, max_days: int
) -> pb.GetActionReportResponse:
    """The report `request` asks for, read from `store` in one round trip."""
    journey = report_journey(ruleset, request.journey)
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
    days = report_days(request.since, request.until, today, max_days)
    counts = await store.outcome_counts(journey.name, days)
    return pb.GetActionReportResponse(
        journey=journey.name, since=days[0], until=days[-1], rows=goal_rows(journey, counts),
        ruleset_version=ruleset.version,
    )  # fmt: skip


def _arm(totals: Totals, action: str, goal: str, arm: str) -> Arm:
    customers = totals["x", action, "", arm]
    # A conversion is counted on its exposure's day, so it never outnumbers that day's cohort;
    # the bound guards against counts lost in a crash between commit and statistics flush.
    conversions = min(totals["c", action, goal, arm], customers)
    value = totals["v", action, goal, arm] / VALUE_SCALE
    return Arm(customers, conversions, value)


def _row(action: str, goal: str, treated: Arm, control: Arm, holdout: float) -> pb.ActionGoalReport:
    row = pb.ActionGoalReport(
        action=action, goal=goal, holdout_percent=holdout,
        treated_customers=treated.customers, treated_conversions=treated.conversions,
        treated_value=treated.value or 0.0, control_customers=control.customers,
        control_conversions=control.conversions, control_value=control.value or 0.0,
    )  # fmt: skip
    if treated.rate is not None:
        row.treated_rate = treated.rate
    if control.rate is not None:
        row.control_rate = control.rate
    if not 0 < holdout < 100:
        row.verdict = "no holdout: write `holdout: 10` on the action to compare"
        return row
    _fill(row, uplift_report(treated, control, holdout))
    return row


def _fill(row: pb.ActionGoalReport, report: UpliftReport) -> None:
    if report.absolute_uplift is not None:
        row.uplift = report.absolute_uplift
    row.uplift_fixed.CopyFrom(_interval(report.absolute_fixed))
    row.uplift_sequential.CopyFrom(_interval(report.absolute_sequential))
    if report.relative_uplift is not None:
        row.relative_uplift = report.relative_uplift
    if report.relative_fixed is not None:
        row.relative_fixed.CopyFrom(_interval(report.relative_fixed))
    if report.relative_sequential is not None:
        row.relative_sequential.CopyFrom(_interval(report.relative_sequential))
    if report.incremental_conversions is not None:
        row.incremental_conversions = report.incremental_conversions
    if report.incremental_value is not None:
        row.incremental_value = report.incremental_value
    row.verdict = report.verdict
    row.verdict_interval = report.verdict_interval
    if report.customers_needed is not None:
        row.customers_needed = report.customers_needed
    row.control_share = report.sample_ratio.control_share
    row.sample_ratio_mismatch = report.sample_ratio.mismatch
    row.sample_ratio_message = report.sample_ratio.message


def _interval(interval: Interval) -> pb.Interval:
    return pb.Interval(low=interval.low, high=interval.high)
