"""The locust shoppers convert with known odds, and the action report finds the truth (issue 12).

`benchmarks/traffic.py` sets how likely a shopper offered an action, or held out of it, is to
order and to click (`CONVERSION_ODDS`): the true uplift of each action. A run of known size
(SHOPPERS locust users, CUSTOMERS customers each, CUSTOMER_EVENTS events per customer) walks the
retail journey against a real `journeyman serve`; then GetActionReport must count exactly the
exposures and conversions the shoppers made, and give intervals that contain the true uplift of
every action with a holdout.

The run is reproducible: the run id fixes the customer ids (so their holdout draws), each
shopper's walks and answers are seeded by its number, and the run ends when every shopper has
made its customers, however fast the machine. The server runs no timer loop: a timer's decisions
(retail's abandoned cart) reach no shopper, and when they fire against the shoppers' simulated
clocks depends on the machine's speed. A 95 % interval misses its truth 1 time in 20 by
design: on this run none does. After changing the odds, the sizes or the rules, a fixed interval
that misses by a little is chance, not a bug (`tests/unit/engine/test_uplift.py` checks the
coverage over 100 seeds); a count that differs is a bug.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from benchmarks.load import run_locust
from benchmarks.load.service import RULES_DIR, journeyman
from benchmarks.traffic import CONVERSION_ODDS, Attribution
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc

pytestmark = pytest.mark.service

# As the locustfile reads them (importing it would let locust patch this process for gevent).
ATTRIBUTION = Attribution.from_rules(RULES_DIR / "retail.yaml")

SHOPPERS = 20
CUSTOMERS = 40  # per shopper
CUSTOMER_EVENTS = 30
RUN_ID = "report-check"
LONGEST_RUN_S = 100.0  # a bound for a slow machine; a quiet one takes about 30 s
STATS_FLUSH_S = 0.3  # the service writes its counts every 50 ms
# Enough customers held out that the check says something (the run holds out a few more).
MIN_CONTROL = 30


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    """The shoppers' run (their own tally of exposures and conversions), and the action report
    of the days their simulated year covers."""
    with journeyman(timers="0") as running:
        result = run_locust.measure(
            running.address, users=SHOPPERS, spawn_rate=SHOPPERS, duration_s=LONGEST_RUN_S,
            user_classes=["ShopperUser"], run_id=RUN_ID, reset_stats=False,
            customer_events=CUSTOMER_EVENTS, customers_per_user=CUSTOMERS,
        )  # fmt: skip
        time.sleep(STATS_FLUSH_S)
        since = datetime.now(UTC).date() - timedelta(days=399)  # the shoppers' year and more
        with grpc.insecure_channel(running.address) as channel:
            report = pb_grpc.JourneyServiceStub(channel).GetActionReport(
                pb.GetActionReportRequest(journey="retail", since=since.isoformat()), timeout=10
            )
    rows = {(row.action, row.goal): row for row in report.rows if not row.variant}
    arms = [row for row in report.rows if row.variant]  # an action's `variants`, each apart
    return {**result, "rows": rows, "arms": arms}


def _shoppers(run: dict[str, Any]) -> dict[str, Any]:
    shoppers: dict[str, Any] = run["journeys"]["shopper"]
    return shoppers


def test_every_shopper_made_its_customers_without_a_failed_call(run: dict[str, Any]) -> None:
    assert run["failures"] == 0, run["failure_messages"]
    assert run["user_errors"] == []
    assert _shoppers(run)["finished_users"] == SHOPPERS
    assert run["by_request"]["shopper: RecordResponse [µs]"]["requests"] > 0  # they click


def test_the_report_counts_the_customers_the_shoppers_were_exposed_in_each_group(
    run: dict[str, Any],
) -> None:
    exposures = _shoppers(run)["exposures"]
    assert ATTRIBUTION.holdout_actions <= set(exposures) <= set(CONVERSION_ODDS)
    for (action, _goal), row in run["rows"].items():
        counted = exposures.get(action, {"treated": 0, "control": 0})
        assert (row.treated_customers, row.control_customers) == (
            counted["treated"],
            counted["control"],
        ), action


def test_the_report_counts_the_orders_and_clicks_made_for_each_action_under_test(
    run: dict[str, Any],
) -> None:
    reached = _shoppers(run)["conversions"]
    for action in ATTRIBUTION.holdout_actions:
        for goal in CONVERSION_ODDS[action]:
            row = run["rows"][action, goal]
            made = reached.get(goal, {}).get(action, {"treated": 0, "control": 0})
            assert (row.treated_conversions, row.control_conversions) == (
                made["treated"],
                made["control"],
            ), (action, goal)


@pytest.mark.parametrize("action", sorted(ATTRIBUTION.holdout_actions))
def test_each_interval_contains_the_true_uplift(run: dict[str, Any], action: str) -> None:
    for goal, odds in CONVERSION_ODDS[action].items():
        row = run["rows"][action, goal]
        assert row.control_customers >= MIN_CONTROL, (action, goal)
        for kind in ("uplift_fixed", "uplift_sequential"):
            interval = getattr(row, kind)
            assert interval.low <= odds.uplift <= interval.high, (action, goal, kind, row)


def test_each_arm_of_an_experiment_contains_the_same_truth(run: dict[str, Any]) -> None:
    """The shoppers answer every variant of an action alike: each arm's uplift is the action's."""
    for (action, goal), row in run["rows"].items():
        arms = [arm for arm in run["arms"] if (arm.action, arm.goal) == (action, goal)]
        if not arms or action not in ATTRIBUTION.holdout_actions:
            continue
        assert sum(arm.treated_customers for arm in arms) == row.treated_customers
        for arm in arms:
            truth = CONVERSION_ODDS[action][goal].uplift
            for kind in ("uplift_fixed", "uplift_sequential"):
                interval = getattr(arm, kind)
                assert interval.low <= truth <= interval.high, (arm.variant, goal, kind, arm)
