"""The locust load (`benchmarks/load/run_locust.py`) against a real `journeyman serve`.

A functional check of the benchmark, not a timing: every call succeeds, times come back in µs
(not locust's whole milliseconds), and the simulated customers really moved through the retail
journey, as the server's own customer view confirms. The CDNOW replay runs too when the shared
data is there; otherwise the run says it skipped it.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from benchmarks.load import run_locust
from benchmarks.load.service import journeyman
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.tools.event_logs import data_dir

pytestmark = pytest.mark.service

CDNOW_LOG = data_dir() / "cdnow" / "CDNOW_master.txt"
# A loopback gRPC call through Python and Redis takes hundreds of µs; a figure under this is a
# millisecond count, not µs.
FASTEST_PLAUSIBLE_US = 100.0
SLOWEST_PLAUSIBLE_US = 5_000_000.0  # the locust client's call deadline


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    """Locust for 5 s, 20 users, against a server of our own; the result and the server's
    view of an example customer per stage reached. The server runs no timer loop: a timer
    (retail's abandoned cart) would move customers after their last answer, and the check below
    compares the stored stage with that answer."""
    with journeyman(timers="0") as running:
        result = run_locust.measure(
            running.address, users=20, spawn_rate=20, duration_s=5, think_ms=20
        )
        with grpc.insecure_channel(running.address) as channel:
            stub = pb_grpc.JourneyServiceStub(channel)
            result["server_view"] = {
                customer: _retail_stage(stub, customer)
                for tally in result["journeys"].values()
                for customer in tally["journeys"]["retail"]["example_customer_by_stage"].values()
            }
    return result


def _retail_stage(stub: pb_grpc.JourneyServiceStub, customer_id: str) -> str:
    view = stub.GetCustomer(pb.GetCustomerRequest(customer_id=customer_id), timeout=5).customer
    return str(next(j.stage for j in view.journeys if j.journey == "retail"))


def test_every_call_succeeds(run: dict[str, Any]) -> None:
    assert run["requests"] > 0
    assert run["failures"] == 0, run["failure_messages"]
    assert run["user_errors"] == []


def test_times_are_reported_in_microseconds(run: dict[str, Any]) -> None:
    assert run["time_unit"] == "µs"
    for name, figures in run["by_request"].items():
        assert name.endswith("[µs]")
        assert figures["requests"] > 0
        for key in ("min_us", "p50_us", "p99_us"):
            assert FASTEST_PLAUSIBLE_US < figures[key] < SLOWEST_PLAUSIBLE_US, (name, key, figures)
        assert figures["p50_us"] <= figures["p99_us"]  # (locust rounds them; max it does not)


def test_both_user_classes_run_or_the_replay_says_why_not(run: dict[str, Any]) -> None:
    assert "shopper: Decide [µs]" in run["by_request"]
    assert "shopper: Identify [µs]" in run["by_request"]
    if CDNOW_LOG.is_file():
        assert "cdnow replay: Decide [µs]" in run["by_request"]
        assert run["skipped"] == {}
    else:
        assert str(CDNOW_LOG) in run["skipped"]["CdnowReplayUser"]


def test_shoppers_move_through_the_journey(run: dict[str, Any]) -> None:
    retail = run["journeys"]["shopper"]["journeys"]["retail"]
    assert {"started_comparing", "checkout_started"} <= set(retail["transitions"])
    assert set(retail["customers_by_last_stage"]) - {"awareness"}, retail


def test_the_server_holds_the_stages_the_answers_reported(run: dict[str, Any]) -> None:
    for tally in run["journeys"].values():
        for stage, customer in tally["journeys"]["retail"]["example_customer_by_stage"].items():
            assert run["server_view"][customer] == stage, customer


@pytest.mark.skipif(not CDNOW_LOG.is_file(), reason=f"no CDNOW purchase log at {CDNOW_LOG}")
def test_replayed_cdnow_customers_come_back_to_retention(run: dict[str, Any]) -> None:
    retail = run["journeys"]["cdnow replay"]["journeys"]["retail"]
    assert {"first_order", "came_back"} <= set(retail["transitions"])
