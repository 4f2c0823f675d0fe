"""Whose fault is an unstored event: a caller whose deadline passes while the server's own
queue held its event is refused as busy (RESOURCE_EXHAUSTED with a retry hint), never answered
as degraded; degraded stays the answer for Redis trouble. Against a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from journeyman.v1 import journeyman_pb2 as pb
from server.core.config import Settings
from server.decisions.active import ActiveRules
from server.decisions.breaker import CircuitBreaker
from server.decisions.decider import MIN_RETRY_AFTER_S, Decider
from server.protocol.convert import DecideInput, decide_input
from server.protocol.errors import Busy
from server.rules.rulesource import load_ruleset
from server.store.redis_store import Store
from tests.rulesets import RULES_DIR

pytestmark = pytest.mark.service


def _sample(name: str, reason: str) -> float:
    return REGISTRY.get_sample_value(name, {"reason": reason}) or 0.0


@pytest.fixture
async def decider(store: Store) -> AsyncIterator[Decider]:
    active = ActiveRules.of(load_ruleset([str(RULES_DIR / "retail.yaml")]))
    decider = Decider(lambda: active, store, conflict_retries=2, redis_timeout_s=0.25)
    yield decider
    await decider.drain()  # the journey statistics it counted are written before Redis closes


def _inputs(count: int) -> list[DecideInput]:
    now_ms = int(time.time() * 1000)
    return [
        decide_input(
            pb.DecideRequest(
                event=pb.Event(event_id=f"bp-{i}", customer_id=f"bp{i}", type="add_to_cart")
            ),
            now_ms,
            Settings(),
        )
        for i in range(count)
    ]


async def test_a_deadline_gone_with_redis_healthy_is_busy_and_stores_nothing(
    decider: Decider, store: Store
) -> None:
    busy_before = _sample("journeyman_not_stored_answers_total", "busy")
    degraded_before = _sample("journeyman_degraded_answers_total", "redis_unavailable")
    outcomes = await decider.decide_many(_inputs(3), deadline_s=0.0)
    assert all(isinstance(o, Busy) and o.retry_after_s >= MIN_RETRY_AFTER_S for o in outcomes)
    assert _sample("journeyman_not_stored_answers_total", "busy") - busy_before == 3
    assert _sample("journeyman_degraded_answers_total", "redis_unavailable") == degraded_before
    for i in range(3):
        assert (await store.load(customer_id=f"bp{i}", event_ids=[f"bp-{i}"])).state is None


async def test_the_same_deadline_with_the_breaker_open_is_degraded(store: Store) -> None:
    active = ActiveRules.of(load_ruleset([str(RULES_DIR / "retail.yaml")]))
    breaker = CircuitBreaker(threshold=1, open_s=60)
    breaker.failed()
    decider = Decider(
        lambda: active, store, conflict_retries=2, redis_timeout_s=0.25, breaker=breaker
    )
    outcomes = await decider.decide_many(_inputs(2), deadline_s=0.0)
    assert all(isinstance(o, pb.Decision) and o.degraded for o in outcomes)


async def test_with_time_to_spare_every_event_is_stored(decider: Decider, store: Store) -> None:
    outcomes = await decider.decide_batch(_inputs(3), deadline_s=5.0)
    assert all(isinstance(o, pb.Decision) and not o.degraded for o in outcomes)
    for i in range(3):
        assert (await store.load(customer_id=f"bp{i}", event_ids=[f"bp-{i}"])).decisions != [None]


async def test_a_probe_of_redis_cancelled_with_its_caller_lets_the_next_call_probe(
    store: Store,
) -> None:
    # The breaker is open and its wait is over: the next call is the one probe of Redis. Its
    # caller leaves (cancelled) while the probe is out; the breaker must not wait for it forever.
    active = ActiveRules.of(load_ruleset([str(RULES_DIR / "retail.yaml")]))
    breaker = CircuitBreaker(threshold=1, open_s=0.0)
    breaker.failed()
    decider = Decider(
        lambda: active, store, conflict_retries=2, redis_timeout_s=0.25, breaker=breaker
    )
    probe, after = _inputs(2)
    leaving = asyncio.ensure_future(decider.decide(probe, 5.0))
    await asyncio.sleep(0)  # the probe is out, waiting for Redis
    assert breaker.is_open and not breaker.allow()  # it is the one probe
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving

    answer = await decider.decide(after, 5.0)

    assert not answer.degraded  # probed Redis, which answered: stored
    assert not breaker.is_open
    await decider.drain()
