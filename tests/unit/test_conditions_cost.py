"""The benchmark of time conditions and the contact policy (`benchmarks.engine.conditions_cost`,
issue 17), small: that its variants really differ as they say, and what its figures must satisfy
whatever the machine, never how fast it went.

The variants' rules are read from their compiled form; their decisions over the simulated trial
users each keep the rule their variant adds and break it in the base; the `--quick` run goes once
for the module and section 13 of RESULTS.md is drawn from it.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from benchmarks.engine.conditions_cost import (
    DAY_MS,
    PLAIN_TRAIT,
    QUICK,
    TRIAL,
    VARIANTS,
    _rotated,
    measure,
    plain_time_conditions,
    replay,
    variant_texts,
    workloads,
)
from benchmarks.engine.workload import Workload
from benchmarks.journey_text import without_block
from benchmarks.report.markdown import section_markdown
from benchmarks.report.run_figures import ConditionsCostFigures
from benchmarks.report.sections import Runs, conditions_section
from engine.compile import compile_ruleset
from engine.dates import date_ms
from engine.rules.load import parse_journeys

Offers = list[tuple[str, int, str]]


@pytest.fixture(scope="module")
def trial() -> dict[str, Workload]:
    return workloads(QUICK.customers)


@pytest.fixture(scope="module")
def offered(trial: dict[str, Workload]) -> dict[str, Offers]:
    """Every variant's offers (customer, ms, action) over the same trial users."""
    return {name: replay(workload)[0] for name, workload in trial.items()}


@pytest.fixture(scope="module")
def figures() -> ConditionsCostFigures:
    return measure(quick=True)


# --- the variants' rules -------------------------------------------------------------------------


def test_each_variant_has_only_what_it_says_and_the_same_condition_nodes() -> None:
    texts = variant_texts(TRIAL.read_text(encoding="utf-8"))
    assert list(texts) == list(VARIANTS)
    compiled = {name: compile_ruleset(parse_journeys([(name, t)])) for name, t in texts.items()}
    (full,) = compiled["all"].journeys
    found = {}
    for name, ruleset in compiled.items():
        (journey,) = ruleset.journeys
        found[name] = (journey.since_types, ruleset.date_traits, bool(journey.limit_keys))
        assert journey.action_ids == full.action_ids
        # A plain trait comparison in place of each time condition: as many nodes to evaluate.
        assert journey.rules.node_kind.shape == full.rules.node_kind.shape, name
    assert found == {
        "base": ((), (), False),
        "since": (("signup",), (), False),
        "until": ((), ("trial_ends_at",), False),
        "contact": ((), (), True),
        "all": (("signup",), ("trial_ends_at",), True),
    }


def test_a_time_condition_becomes_a_plain_trait_compared_with_a_number() -> None:
    text = "when:\n  all:\n    - since: signup   # a comment\n      lte: 7d\n    - event: login\n"
    assert plain_time_conditions(text, "since") == (
        f"when:\n  all:\n    - trait: {PLAIN_TRAIT}\n      lte: 7\n    - event: login\n"
    )
    with pytest.raises(ValueError, match="no `until:` condition"):
        plain_time_conditions(text, "until")
    with pytest.raises(ValueError, match="not followed by its comparison"):
        plain_time_conditions("when:\n  lte: 7d\n  since: signup\n", "since")


def test_only_the_block_and_the_comment_above_it_go() -> None:
    text = "journey: j\n# one a day\ncontact_policy:\n  limits: []\n\n# next\nactions: []\n"
    assert without_block(text, "contact_policy") == "journey: j\n# next\nactions: []\n"
    with pytest.raises(ValueError, match="no `contact_policy:`"):
        without_block("journey: j\nactions: []\n", "contact_policy")


def test_the_variants_run_in_every_position_of_the_rotation_alike() -> None:
    order = list(_rotated(len(VARIANTS)))
    rounds = [order[i : i + len(VARIANTS)] for i in range(0, len(order), len(VARIANTS))]
    assert all(sorted(r) == sorted(VARIANTS) for r in rounds)
    for position in range(len(VARIANTS)):
        assert sorted(r[position] for r in rounds) == sorted(VARIANTS)


# --- their decisions -----------------------------------------------------------------------------


def _of(offers: Offers, action: str) -> Offers:
    found = [offer for offer in offers if offer[2] == action]
    assert found, f"{action} never offered"
    return found


def test_the_setup_call_goes_only_within_a_week_of_signup_with_since(
    trial: dict[str, Workload], offered: dict[str, Offers]
) -> None:
    signup = {t.event.customer_id: t.now_ms for t in trial["base"].events
              if t.event.type == "signup"}  # fmt: skip

    def late(name: str) -> list[str]:
        offers = _of(offered[name], "fast_start_call")
        return [customer for customer, ms, _ in offers if ms - signup[customer] > 7 * DAY_MS]

    assert late("since") == late("all") == []
    assert late("base")  # the plain trait in its place does not read the time


def test_the_last_call_goes_only_in_the_last_two_days_with_until(
    trial: dict[str, Workload], offered: dict[str, Offers]
) -> None:
    ends = {customer: date_ms(t["trial_ends_at"]) for customer, t in trial["base"].traits.items()}

    def outside(name: str) -> list[str]:
        offers = _of(offered[name], "trial_last_call")
        return [c for c, ms, _ in offers if not 0 < (ends[c] or 0) - ms <= 2 * DAY_MS]

    assert outside("until") == outside("all") == []
    assert outside("base")


def _most_in_a_window(offers: Offers, window_ms: int) -> int:
    """The most offers one customer had within any `window_ms`."""
    times: dict[str, list[int]] = defaultdict(list)
    for customer, ms, _ in offers:
        times[customer].append(ms)
    return max(
        sum(1 for later in each if start <= later < start + window_ms)
        for each in times.values()
        for start in each
    )


def test_at_most_one_email_a_day_and_three_a_week_with_the_contact_policy(
    trial: dict[str, Workload], offered: dict[str, Offers]
) -> None:
    (journey,) = trial["all"].ruleset.journeys
    channels = dict(zip(journey.action_ids, journey.action_channels, strict=True))

    def most(name: str, window_ms: int) -> int:
        emails = [offer for offer in offered[name] if channels[offer[2]] == "email"]
        return _most_in_a_window(emails, window_ms)

    for name in ("contact", "all"):
        assert most(name, DAY_MS) == 1, name
        assert most(name, 7 * DAY_MS) <= 3, name
    assert most("base", DAY_MS) >= 2  # the sign-up's e-mail, the setup call within the hour


# --- the quick run -------------------------------------------------------------------------------


def test_every_variant_was_timed_each_round_and_its_figures_are_sane(
    figures: ConditionsCostFigures,
) -> None:
    assert figures["plan"]["rounds"] == QUICK.rounds
    assert figures["events"] > QUICK.customers * 5  # signup and sessions: several each
    for name, variant in figures["variants"].items():
        assert len(variant["samples_us"]) == QUICK.rounds, name
        assert all(0 < us < 10_000 for us in variant["samples_us"]), name
        assert variant["us_per_event"] == min(variant["samples_us"])
        assert (
            variant["us_per_event"] <= variant["us_per_event_median"] <= max(variant["samples_us"])
        )
        assert 0 < variant["traits_us"] < variant["us_per_event"] * 10, name
        assert 0 < variant["state_bytes_mean"] <= variant["state_bytes_max"] < 4096, name
        # One at each signup, but at night on the customer's clock with the quiet hours.
        at_signup = variant["offers"]["getting_started"]
        if name in ("contact", "all"):
            assert 0 < at_signup < QUICK.customers, name
        else:
            assert at_signup == QUICK.customers, name
    assert set(figures["many_events_per_s"]) == {"base", "all"}
    assert all(rate > 0 for rate in figures["many_events_per_s"].values())


def test_the_time_kept_and_the_offers_remembered_make_the_state_larger(
    figures: ConditionsCostFigures,
) -> None:
    variants = figures["variants"]
    base = variants["base"]["state_bytes_mean"]
    for name in ("since", "contact", "all"):
        assert variants[name]["state_bytes_mean"] > base, name
    assert variants["all"]["offers"] != variants["base"]["offers"]


def test_section_13_shows_every_figure_beside_the_base(figures: ConditionsCostFigures) -> None:
    section = conditions_section(Runs({"conditions": figures}))
    assert section.errors == []
    for figure in section.figures:
        assert figure.measured is not None and figure.measured > 0, figure.name
        if figure.ceiling is not None:
            assert figure.ratio is not None and figure.ratio > 0, figure.name
        assert figure.target is None  # the issue states none
    text = section_markdown(13, section)
    assert "## 13. Time conditions and the contact policy: what they cost (issue 17)" in text
    assert all(f"| {name} " not in text for name in ("nan", "None"))
