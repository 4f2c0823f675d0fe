"""While the event loop's thread is saturated, concurrent calls wait a few milliseconds to be
decided together; a wait that gathers too few is given up for a while. Against a real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

import server.decisions.decider
from journeyman.v1 import journeyman_pb2 as pb
from server.core.config import Settings
from server.decisions.active import ActiveRules
from server.decisions.decider import LINGER_PAYS_AT, LINGER_TURNS, Decider
from server.protocol.convert import DecideInput, decide_input
from server.rules.rulesource import load_ruleset
from server.store.redis_store import Store
from tests.rulesets import RULES_DIR

pytestmark = pytest.mark.service


def _rounds() -> float:
    return REGISTRY.get_sample_value("journeyman_round_events_count") or 0.0


def _inputs(name: str, count: int) -> list[DecideInput]:
    now_ms = int(time.time() * 1000)
    return [
        decide_input(
            pb.DecideRequest(
                event=pb.Event(
                    event_id=f"{name}-{i}", customer_id=f"{name}{i}", type="view_product"
                )
            ),
            now_ms,
            Settings(),
        )
        for i in range(count)
    ]


async def _one_a_turn(decider: Decider, inputs: list[DecideInput]) -> float:
    """Each call sent a turn of the event loop after the last, as gRPC hands them over; how many
    rounds decided them."""
    before = _rounds()
    calls = []
    for request in inputs:
        calls.append(asyncio.ensure_future(decider.decide(request, 5.0)))
        await asyncio.sleep(0)
    answers = await asyncio.gather(*calls)
    assert all(not answer.degraded for answer in answers)
    return _rounds() - before


async def test_saturated_calls_wait_to_be_decided_together_until_too_few_come(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.decisions.decider, "LINGER_PAUSE_S", 60.0)  # a slow machine too
    active = ActiveRules.of(load_ruleset([str(RULES_DIR / "retail.yaml")]))
    decider = Decider(
        lambda: active, store, conflict_retries=2, redis_timeout_s=0.25,
        company=lambda: True, saturated=lambda: True,
    )  # fmt: skip
    try:
        calls = 3 * LINGER_TURNS
        assert await _one_a_turn(decider, _inputs("many", calls)) == 1
        # A wait that gathered fewer than LINGER_PAYS_AT: the next batches take the turns.
        assert await _one_a_turn(decider, _inputs("few", LINGER_PAYS_AT - 1)) == 1
        assert await _one_a_turn(decider, _inputs("after", calls)) >= 2
    finally:
        await decider.drain()


async def test_unsaturated_calls_a_turn_apart_take_several_batches(store: Store) -> None:
    active = ActiveRules.of(load_ruleset([str(RULES_DIR / "retail.yaml")]))
    decider = Decider(
        lambda: active, store, conflict_retries=2, redis_timeout_s=0.25,
        company=lambda: True, saturated=lambda: False,
    )  # fmt: skip
    try:
        assert await _one_a_turn(decider, _inputs("calm", 3 * LINGER_TURNS)) >= 2
    finally:
        await decider.drain()
