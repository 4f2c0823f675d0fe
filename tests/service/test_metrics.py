"""The counters and histograms an SRE watches move with the calls."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from journeyman.v1 import journeyman_pb2 as pb
from tests.conftest import Service

pytestmark = pytest.mark.service


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_decisions_calls_redis_and_kernel_time_are_counted(service: Service) -> None:
    stored = {"journey": "retail", "stage": "consideration", "outcome": "stored"}
    duplicate = {**stored, "outcome": "duplicate"}
    before = {
        "stored": _sample("journeyman_decisions_total", **stored),
        "duplicate": _sample("journeyman_decisions_total", **duplicate),
        "calls": _sample("journeyman_call_seconds_count", method="Decide", code="OK"),
        "loads": _sample("journeyman_redis_seconds_count", operation="load"),
        "kernel": _sample("journeyman_decide_seconds_count"),
    }
    for event_id in ("m-1", "m-2", "m-2"):
        event = pb.Event(event_id=event_id, customer_id="mia", type="add_to_cart")
        await service.stub.Decide(pb.DecideRequest(event=event))
    assert _sample("journeyman_decisions_total", **stored) - before["stored"] == 2
    assert _sample("journeyman_decisions_total", **duplicate) - before["duplicate"] == 1
    assert (
        _sample("journeyman_call_seconds_count", method="Decide", code="OK") - before["calls"] == 3
    )
    # Redis loads: m-1's; m-2 comes from the state cache, and so does the repeat of m-2, found
    # in the cached decision ring and answered from it without deciding again.
    assert _sample("journeyman_redis_seconds_count", operation="load") - before["loads"] == 1
    assert _sample("journeyman_decide_seconds_count") - before["kernel"] == 2


async def test_the_ruleset_in_force_is_a_labelled_gauge(service: Service) -> None:
    version = (await service.stub.GetRuleset(pb.GetRulesetRequest())).version
    assert _sample("journeyman_ruleset_info", version=version) == 1


async def test_each_decision_round_is_counted_with_the_events_it_decided(service: Service) -> None:
    count, total = "journeyman_round_events_count", "journeyman_round_events_sum"
    before = (_sample(count), _sample(total))
    alone = pb.Event(event_id="r-1", customer_id="rita", type="add_to_cart")
    await service.stub.Decide(pb.DecideRequest(event=alone))
    assert (_sample(count) - before[0], _sample(total) - before[1]) == (1, 1)
    requests = [
        pb.DecideRequest(event=pb.Event(event_id=f"r-b{n}", customer_id=f"rob-{n}", type="view"))
        for n in range(5)
    ]
    response = await service.stub.DecideBatch(pb.DecideBatchRequest(requests=requests))
    assert response.not_stored == 0
    # One round for the five customers: one load and one commit round trip between them.
    assert (_sample(count) - before[0], _sample(total) - before[1]) == (2, 6)
