"""Adaptive arbitration learns from the outcome counts in Redis: the tables `decide` samples
from hold each action's treated exposures and conversions of the adaptive goal, per stage."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from engine.decide import decide
from engine.event import Event
from engine.state import new_state
from server.decisions.learned_rates import LearnedRates, learned
from server.store.keys import conversion_field, exposure_field, utc_day
from server.store.redis_store import Store
from tests.rulesets import from_text

pytestmark = pytest.mark.service

JOURNEY = """
journey: shop
version: 1
top_k: 1
arbitration: adaptive
adaptive_goal: click
stages:
  - id: browsing
goals:
  order:
    when: {event: purchase}
    window: 7d
  click:
    when: {response: click}
    window: 1d
actions:
  - id: banner_a
    priority: 10
  - id: banner_b
    priority: 10
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _counts() -> Counter[tuple[str, str]]:
    """Banner a: 200 treated exposures, 150 clicks; banner b: 200 and 10; control and the order
    goal must not count."""
    fields = {
        exposure_field("banner_a", "browsing", treated=True): 200,
        conversion_field("banner_a", "click", "browsing", treated=True): 150,
        exposure_field("banner_b", "browsing", treated=True): 200,
        conversion_field("banner_b", "click", "browsing", treated=True): 10,
        exposure_field("banner_b", "browsing", treated=False): 50,
        conversion_field("banner_b", "click", "browsing", treated=False): 50,
        conversion_field("banner_b", "order", "browsing", treated=True): 190,
    }
    return Counter(fields)


def test_only_the_treated_and_the_adaptive_goal_are_learned() -> None:
    journey = from_text(JOURNEY).journeys[0]
    assert learned(journey, Counter({f: n for f, n in _counts().items()})) == {
        ("banner_a", "browsing"): (200, 150),
        ("banner_b", "browsing"): (200, 10),
    }


async def test_decisions_follow_what_redis_counted(store: Store) -> None:
    ruleset = from_text(JOURNEY)
    key = store.keys.outcomes("shop", utc_day(_now_ms()))
    await store.add_to_stats(Counter({(key, f): n for f, n in _counts().items()}))
    rates = LearnedRates(store, _now_ms)
    assert rates.current(ruleset) is None  # nothing learned yet: the refresh starts now
    for _ in range(100):
        await asyncio.sleep(0.02)
        if (tables := rates.current(ruleset)) is not None:
            break
    assert tables is not None
    state = new_state(ruleset)
    firsts = Counter(
        decide(ruleset, state, Event(f"e{i}", f"c{i}", "page_view"), _now_ms(),
               propensities=tables)[0].action_ids[0]
        for i in range(400)
    )  # fmt: skip
    # Beta(151, 51) against Beta(11, 191): banner a wins every draw.
    assert firsts == {"banner_a": 400}
    await rates.drain()
