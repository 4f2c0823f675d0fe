"""The benchmarks' inputs: the generated journey is valid rules of the documented shape, and it and
the simulated shopper traffic are the same for the same seed. Behaviour only; nothing is timed."""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks.engine.generated_rules import RulesShape, generate_journey
from benchmarks.traffic import EVENT_TYPES, TimedEvent, shopper_stream
from engine.event import Event
from engine.rules.load import LoadedJourney, parse_journeys

START_MS = 1_767_225_600_000


def _load(text: str) -> LoadedJourney:
    (journey,) = parse_journeys([("generated.yaml", text)])
    return journey


def _shape_of(journey: LoadedJourney) -> dict[str, int]:
    model = journey.model
    assert model.friction is not None
    return {
        "stages": len(model.stages),
        "transitions": len(model.transitions),
        "actions": len(model.actions),
        "counters": len(model.counters),
        "signals": len(model.friction.signals),
        "segments": len(model.segments),
    }


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_default_journey_loads_with_200_rules_of_the_documented_shape(seed: int) -> None:
    journey = _load(generate_journey(RulesShape(), seed=seed))
    shape = _shape_of(journey)
    assert shape == {
        "stages": 10,
        "transitions": 60,
        "actions": 80,
        "counters": 20,
        "signals": 20,
        "segments": 20,
    }
    assert sum(shape.values()) - shape["stages"] == RulesShape().n_rules == 200
    assert journey.model.version == f"bench.{seed}"


def test_a_smaller_shape_loads_with_exactly_that_many_rules() -> None:
    wanted = RulesShape(stages=2, transitions=3, actions=4, counters=1, signals=2, segments=1)
    shape = _shape_of(_load(generate_journey(wanted, seed=5)))
    assert shape == {
        "stages": 2,
        "transitions": 3,
        "actions": 4,
        "counters": 1,
        "signals": 2,
        "segments": 1,
    }


def test_the_same_seed_writes_the_same_text_and_another_seed_other_text() -> None:
    assert generate_journey(seed=7) == generate_journey(seed=7)
    assert generate_journey(seed=7) != generate_journey(seed=8)
    assert generate_journey() == generate_journey(RulesShape(), seed=0)


def test_the_same_seed_gives_the_same_shoppers_and_another_seed_others() -> None:
    first = shopper_stream(30, 10, seed=4)
    assert first == shopper_stream(30, 10, seed=4)
    assert first != shopper_stream(30, 10, seed=5)


def test_the_stream_is_in_time_order_and_each_shopper_in_their_own_order() -> None:
    events, _ = shopper_stream(50, 15, seed=0, start_ms=START_MS)
    times = [timed.now_ms for timed in events]
    assert times == sorted(times)
    assert times[0] >= START_MS
    last_index: dict[str, int] = {}
    for timed in events:
        customer, index = timed.event.event_id.rsplit("-", 1)
        assert customer == timed.event.customer_id
        assert int(index) == last_index.get(customer, -1) + 1
        last_index[customer] = int(index)


def test_every_shopper_has_traits_and_events_of_known_types() -> None:
    events, traits = shopper_stream(40, 20, seed=1)
    assert all(isinstance(timed, TimedEvent) for timed in events)
    assert all(isinstance(timed.event, Event) for timed in events)
    per_shopper = Counter(timed.event.customer_id for timed in events)
    assert set(per_shopper) == set(traits) and len(traits) == 40
    assert {timed.event.type for timed in events} <= set(EVENT_TYPES)
    assert len({timed.event.event_id for timed in events}) == len(events)
