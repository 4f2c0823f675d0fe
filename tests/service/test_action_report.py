"""The action report over a real port and a real Redis: customers exposed to an action, those
held out of it and their conversions, counted by the service, equal what the simulation that
sent the events knows; the uplift interval contains the simulated truth."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter

import grpc
import pytest

from journeyman.v1 import journeyman_pb2 as pb
from server.tools.cli import main
from tests.conftest import Service

pytestmark = pytest.mark.service

CUSTOMERS = 3_000
BUY_TREATED, BUY_CONTROL = 0.30, 0.20  # the simulation's truth: order probability per group
AMOUNT = 40.0
HOUR_MS = 3_600_000


def _event(customer: str, event_id: str, type_: str, at_ms: int, **numbers: float) -> pb.Event:
    properties = {name: pb.Value(number_value=value) for name, value in numbers.items()}
    return pb.Event(
        event_id=event_id, customer_id=customer, type=type_, channel="web",
        timestamp_ms=at_ms, properties=properties,
    )  # fmt: skip


async def _batch(service: Service, events: list[pb.Event]) -> list[pb.Decision]:
    request = pb.DecideBatchRequest(requests=[pb.DecideRequest(event=e) for e in events])
    response = await service.stub.DecideBatch(request, timeout=60)
    assert not response.not_stored
    return [result.decision for result in response.results]


async def _simulate(service: Service, prefix: str) -> Counter[str]:
    """Every customer views a page (welcome_discount offered or held out), then orders with the
    group's probability an hour later. Returns what the simulation knows, by group."""
    rng = random.Random(7)
    start_ms = int(time.time() * 1000) - 2 * HOUR_MS
    customers = [f"{prefix}{n}" for n in range(CUSTOMERS)]
    truth: Counter[str] = Counter()
    orders = []
    for first in range(0, CUSTOMERS, 500):
        views = [_event(c, f"{c}-view", "page_view", start_ms) for c in customers[first:][:500]]
        for view, decision in zip(views, await _batch(service, views), strict=True):
            offered = "welcome_discount" in [a.action for a in decision.actions]
            held_out = "welcome_discount" in decision.held_out_actions
            assert offered != held_out, decision
            group = "treated" if offered else "control"
            truth[group] += 1
            if rng.random() < (BUY_TREATED if offered else BUY_CONTROL):
                truth[f"{group} orders"] += 1
                order_at = start_ms + HOUR_MS
                orders.append(_event(view.customer_id, f"{view.customer_id}-order", "purchase",
                                     order_at, amount=AMOUNT))  # fmt: skip
    for first in range(0, len(orders), 500):
        for decision in await _batch(service, orders[first : first + 500]):
            (conversion,) = [c for c in decision.conversions if c.action == "welcome_discount"]
            assert (conversion.goal, conversion.value) == ("order", AMOUNT)
    return truth


def _counts(row: pb.ActionGoalReport) -> tuple[int, int, int, int]:
    return (
        row.treated_customers, row.control_customers, row.treated_conversions,
        row.control_conversions,
    )  # fmt: skip


async def _report(service: Service, truth: Counter[str]) -> pb.ActionGoalReport:
    """The welcome_discount row once the statistics flushed (every 50 ms, off the hot path)
    reach the simulation's counts, or after 5 s."""
    wanted = (truth["treated"], truth["control"], truth["treated orders"], truth["control orders"])
    for _ in range(100):
        response = await service.stub.GetActionReport(pb.GetActionReportRequest(journey="retail"))
        (row,) = [r for r in response.rows if (r.action, r.goal) == ("welcome_discount", "order")]
        if _counts(row) == wanted:
            break
        await asyncio.sleep(0.05)
    return row


async def test_the_report_counts_what_the_simulation_knows(service: Service) -> None:
    truth = await _simulate(service, "report-")
    row = await _report(service, truth)
    assert _counts(row) == (
        truth["treated"], truth["control"], truth["treated orders"], truth["control orders"],
    )  # fmt: skip
    assert row.treated_value == pytest.approx(truth["treated orders"] * AMOUNT)
    assert row.holdout_percent == 10
    # 10 % of 3,000 customers held out, as configured: no sample-ratio alarm.
    assert not row.sample_ratio_mismatch, row.sample_ratio_message
    true_uplift = BUY_TREATED - BUY_CONTROL
    assert row.uplift_sequential.low <= true_uplift <= row.uplift_sequential.high
    assert row.uplift_fixed.low <= true_uplift <= row.uplift_fixed.high
    assert row.verdict_interval == "sequential" and row.verdict


async def test_journeyman_report_prints_the_table_and_the_json(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = await _simulate(service, "cli-")
    await _report(service, truth)
    command = ["report", "--address", service.address, "--journey", "retail"]
    assert await asyncio.to_thread(main, command) == 0
    table = capsys.readouterr().out
    (line,) = [
        line for line in table.splitlines() if line.split()[:2] == ["welcome_discount", "order"]
    ]
    treated = f"{truth['treated orders']}/{truth['treated']}"
    control = f"{truth['control orders']}/{truth['control']}"
    assert treated in line and control in line and "order" in line
    assert "interval: 95 % sequential" in table
    assert await asyncio.to_thread(main, [*command, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    (row,) = [r for r in rows if (r["action"], r["goal"]) == ("welcome_discount", "order")]
    assert int(row["treated_customers"]) == truth["treated"]


async def test_the_report_names_a_bad_day_or_journey(service: Service) -> None:
    bad = [
        (pb.GetActionReportRequest(since="last week"), "since"),
        (pb.GetActionReportRequest(since="2026-12-05", until="2026-12-01"), "since"),
        (pb.GetActionReportRequest(journey="nope"), "journey"),
        (pb.GetActionReportRequest(since="2020-01-01", until="2026-12-01"), "since"),
    ]
    for request, field in bad:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await service.stub.GetActionReport(request)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in raised.value.details()
