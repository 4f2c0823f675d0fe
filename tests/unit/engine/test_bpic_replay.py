"""Replays a real loan-application log through `rules/loan_application.yaml`.

The BPI Challenge 2012 log (262,200 events, 13,087 applications) goes through `decide` event by
event, one customer per application. What the engine ends with is checked against the same
facts computed straight from the log by a plain reading of what the rules mean, so a kernel,
compiler or rules mistake shows up as a difference in real numbers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.compile import Ruleset, compile_ruleset
from engine.rules.load import LoadedJourney, parse_journeys
from engine.rules.model import Journey, duration_ms
from server.tools.event_logs import LoanEvent, bpic2012_csv, decide_log, read_bpic2012

pytestmark = pytest.mark.slow

RULES_FILE = Path(__file__).resolve().parents[3] / "rules" / "loan_application.yaml"

# What the stages mean, read off the log: an outcome is final (a case has at most one), and
# otherwise an application stands at the furthest milestone it reached.
OUTCOMES = {"A_APPROVED": "approved", "A_DECLINED": "declined", "A_CANCELLED": "cancelled"}
MILESTONES_FURTHEST_FIRST = (
    ("O_SENT_BACK", "offer_signed"),
    ("O_SENT", "offer_sent"),
    ("A_PREACCEPTED", "pre_accepted"),
)
FIRST_STAGE = "submitted"

# Which rows of the log each friction signal stands for; weights and half-life come from the file.
SIGNAL_ROWS = {
    "document_call": ("W_Nabellen incomplete dossiers", "START"),
    "offer_call": ("W_Nabellen offertes", "START"),
    "offer_withdrawn": ("O_CANCELLED", "COMPLETE"),
}


@dataclass
class Replay:
    """What the engine said while the whole log went through it."""

    final_stage: dict[str, str] = field(default_factory=dict)
    ever_high: set[str] = field(default_factory=set)  # friction reached `high` at some event
    offered: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    offers: Counter[str] = field(default_factory=Counter)
    explained_first_offer: set[str] = field(default_factory=set)


def replay(ruleset: Ruleset, rows: Iterable[LoanEvent]) -> Replay:
    result = Replay()
    has_offer: set[str] = set()
    for row, decision in decide_log(ruleset, rows):
        case = row.case_id
        actions = decision.action_ids
        result.final_stage[case] = decision.stage
        if decision.outcome.friction_level == "high":
            result.ever_high.add(case)
        for action in actions:
            result.offered[action].add(case)
            result.offers[action] += 1
        if row.activity == "O_SENT" and case not in has_offer:
            has_offer.add(case)
            if "offer_explainer" in actions:
                result.explained_first_offer.add(case)
    return result


def expected_final_stage(activities: list[str]) -> str:
    outcomes = [OUTCOMES[activity] for activity in activities if activity in OUTCOMES]
    if outcomes:
        return outcomes[0]
    reached = set(activities)
    return next((s for a, s in MILESTONES_FURTHEST_FIRST if a in reached), FIRST_STAGE)


def friction_high(journey: Journey, events: list[LoanEvent]) -> tuple[bool, bool]:
    """Whether friction, recomputed from the log, ever reached `high`: at all, and while the
    application was still open (the outcome event itself already closes it)."""
    assert journey.friction is not None
    weights = {SIGNAL_ROWS[s.id]: s.weight for s in journey.friction.signals}
    half_life_ms = duration_ms(journey.friction.half_life)
    high = journey.friction.levels["high"]
    score, last_ms, is_open = 0.0, events[0].timestamp_ms, True
    ever, while_open = False, False
    for event in events:
        decay = 0.5 ** ((event.timestamp_ms - last_ms) / half_life_ms)
        score = score * decay + weights.get((event.activity, event.lifecycle), 0.0)
        last_ms = event.timestamp_ms
        is_open = is_open and event.activity not in OUTCOMES
        ever = ever or score >= high
        while_open = while_open or (is_open and score >= high)
    return ever, while_open


@pytest.fixture(scope="module")
def log() -> list[LoanEvent]:
    path = bpic2012_csv()
    if not path.is_file():
        pytest.skip(
            f"the BPIC 2012 log is not at {path}; set JOURNEYMAN_EVENT_DATA_DIR to its folder"
        )
    return list(read_bpic2012(path))


@pytest.fixture(scope="module")
def cases(log: list[LoanEvent]) -> dict[str, list[LoanEvent]]:
    by_case: dict[str, list[LoanEvent]] = defaultdict(list)
    for event in log:
        by_case[event.case_id].append(event)
    return by_case


@pytest.fixture(scope="module")
def loaded() -> list[LoadedJourney]:
    return parse_journeys([(str(RULES_FILE), RULES_FILE.read_text(encoding="utf-8"))])


@pytest.fixture(scope="module")
def journey(loaded: list[LoadedJourney]) -> Journey:
    return loaded[0].model


@pytest.fixture(scope="module")
def replayed(log: list[LoanEvent], loaded: list[LoadedJourney]) -> Replay:
    return replay(compile_ruleset(loaded), log)


def test_final_stages_match_the_log(
    cases: dict[str, list[LoanEvent]], replayed: Replay, journey: Journey
) -> None:
    expected = {
        case: expected_final_stage([e.activity for e in rows]) for case, rows in cases.items()
    }
    found, from_log = Counter(replayed.final_stage.values()), Counter(expected.values())
    print("\nfinal stage     engine    log")
    for stage in (s.id for s in journey.stages):
        print(f"{stage:<14} {found[stage]:>7} {from_log[stage]:>6}")
    assert found == from_log
    wrong = [c for c in cases if replayed.final_stage[c] != expected[c]]
    assert not wrong, f"{len(wrong)} cases end elsewhere, e.g. {wrong[:5]}"


def test_call_back_goes_to_customers_whose_friction_got_high(
    cases: dict[str, list[LoanEvent]], replayed: Replay, journey: Journey
) -> None:
    reference = {case: friction_high(journey, events) for case, events in cases.items()}
    ever_high = {case for case, (ever, _) in reference.items() if ever}
    high_while_open = {case for case, (_, while_open) in reference.items() if while_open}
    print(f"\nfriction high: {len(ever_high)} cases, {len(high_while_open)} while open")
    print(f"offers: {dict(replayed.offers)}")
    assert replayed.ever_high == ever_high
    # The call-back outranks every other action and has no holdout, so the first time friction
    # is high in an open stage it is offered.
    assert replayed.offered["call_back"] == high_while_open


def test_every_first_offer_is_explained(
    cases: dict[str, list[LoanEvent]], replayed: Replay
) -> None:
    with_offer = {case for case, evs in cases.items() if any(e.activity == "O_SENT" for e in evs)}
    assert replayed.explained_first_offer == with_offer
