"""The zen-engine peer comparison compares like with like: on the same events, the retail journey
written as a zen-engine graph and `decide()` agree on every stage, every set of eligible actions
and every offer. Behaviour only; nothing is timed."""

from __future__ import annotations

import pytest
import zen

from benchmarks.engine.peer_zen import compare, retail_workload
from benchmarks.engine.workload import Workload
from benchmarks.engine.zen.expressions import Scope, expression, text
from benchmarks.engine.zen.harness import ZenJourney
from benchmarks.engine.zen.jdm import RETAIL_GRAPH, graph_text, retail_graph
from benchmarks.traffic import TimedEvent
from engine.event import Event, PropertyValue
from engine.rules.model import Condition, Journey

MINUTE_MS = 60_000
DAY_MS = 86_400_000
START_MS = 1_767_225_600_000

# One shopper's whole journey: (time since the previous step, event type, channel, properties).
# It passes through every retail transition, offers every action, and runs into a cooldown
# (a second payment error within 30 minutes), a cap (loyalty_invite, twice in 90 days), a late
# event (its time before the previous one's) and 61 quiet days.
_STORY: list[tuple[int, str, str, dict[str, PropertyValue]]] = [
    (0, "page_view", "web", {"load_ms": 4_200.0}),
    (MINUTE_MS, "product_view", "web", {"category": "shoes"}),
    (MINUTE_MS, "product_view", "web", {"category": "shoes"}),
    (MINUTE_MS, "product_view", "web", {"category": "bags"}),
    (MINUTE_MS, "add_to_cart", "web", {"category": "bags", "quantity": 1.0}),
    (MINUTE_MS, "checkout_started", "web", {}),
    (MINUTE_MS, "payment_error", "web", {}),
    (MINUTE_MS // 2, "payment_error", "web", {}),
    (MINUTE_MS, "rage_click", "web", {}),
    (MINUTE_MS, "support_contact", "call_center", {}),
    (-5 * MINUTE_MS, "page_view", "web", {"load_ms": "slow"}),
    (MINUTE_MS, "purchase", "web", {"amount": 150.0, "category": "bags"}),
    (2 * DAY_MS, "delivery_confirmed", "email", {}),
    (3 * DAY_MS, "purchase", "app", {"amount": 80.25}),
    (60 * MINUTE_MS, "delivery_confirmed", "email", {}),
    (DAY_MS, "page_view", "web", {"load_ms": 900.0}),
    (DAY_MS, "page_view", "web", {"load_ms": 900.0}),
    (DAY_MS, "review_written", "web", {}),
    (DAY_MS, "review_written", "web", {}),
    (61 * DAY_MS, "page_view", "web", {"load_ms": 1_200.0}),
    (DAY_MS, "email_open", "email", {}),
    (DAY_MS, "purchase", "web", {"amount": 40.0}),
    (8 * DAY_MS, "delivery_confirmed", "email", {}),
]

# A shopper who buys without comparing first (awareness → purchase by `first_order`).
_QUICK_PURCHASE: list[tuple[int, str, str, dict[str, PropertyValue]]] = [
    (0, "product_view", "app", {"category": "toys"}),
    (MINUTE_MS, "purchase", "app", {"amount": 19.99}),
]

_SHOPPERS: dict[str, dict[str, PropertyValue]] = {
    "story-ana": {"tier": "gold", "email_opt_in": True},
    "story-ben": {"tier": "basic", "email_opt_in": True, "has_ordered": True},
    "story-cleo": {"tier": "platinum", "email_opt_in": False},
    "story-dan": {"tier": "silver", "email_opt_in": True, "age": 40.0},
    "story-eve": {"email_opt_in": True},
    "story-fay": {"tier": "gold", "email_opt_in": True, "region": "eu"},
    "story-gus": {"tier": "basic"},
}


def _stories() -> list[TimedEvent]:
    events = []
    for number, customer in enumerate(_SHOPPERS):
        now_ms = START_MS + number * 7 * MINUTE_MS
        story = _QUICK_PURCHASE if customer == "story-gus" else _STORY
        for index, (after_ms, event_type, channel, properties) in enumerate(story):
            now_ms += after_ms
            event = Event(f"{customer}-{index}", customer, event_type, channel, "", properties)
            events.append(TimedEvent(event, now_ms))
    return events


@pytest.fixture(scope="module")
def workload_and_twin() -> tuple[Workload, ZenJourney]:
    workload = retail_workload(400)
    (journey,) = workload.loaded
    return workload, ZenJourney(journey.model, workload.ruleset.top_k)


def test_zen_and_decide_agree_on_every_event_of_the_simulated_shoppers(
    workload_and_twin: tuple[Workload, ZenJourney],
) -> None:
    workload, twin = workload_and_twin
    agreement = compare(workload.ruleset, twin, workload.events, workload.traits)

    assert agreement.events >= 300
    assert agreement.complete, "\n".join(agreement.disagreements)
    assert agreement.transitions, "the shoppers should move between stages"


def test_zen_and_decide_agree_through_every_transition_and_action(
    workload_and_twin: tuple[Workload, ZenJourney],
) -> None:
    workload, twin = workload_and_twin
    journey: Journey = twin.journey

    agreement = compare(workload.ruleset, twin, _stories(), _SHOPPERS)

    assert agreement.complete, "\n".join(agreement.disagreements)
    # zen decides events only: what only a timed transition leads to is not compared.
    stages = _reached_by_events(journey)
    assert agreement.transitions == {
        t.id for t in journey.transitions if not t.is_timed and _sources(t.from_, journey) & stages
    }
    offered = {a.id for a in journey.actions if _sources(a.stages, journey) & stages}
    assert agreement.offered == offered
    blocked = {a for c in agreement.contexts for a, held_back in c["blocked"].items() if held_back}
    assert blocked == {a.id for a in journey.actions if (a.cooldown or a.cap) and a.id in offered}


def _sources(stages: str | list[str], journey: Journey) -> set[str]:
    if stages == "*":
        return {s.id for s in journey.stages}
    return {stages} if isinstance(stages, str) else set(stages)


def _reached_by_events(journey: Journey) -> set[str]:
    """The stages customers reach from the first by event transitions alone."""
    reached = {journey.stages[0].id}
    while True:
        more = {
            t.to for t in journey.transitions
            if not t.is_timed and _sources(t.from_, journey) & reached
        } - reached  # fmt: skip
        if not more:
            return reached
        reached |= more


def test_the_checked_in_graph_is_the_one_the_retail_rules_give() -> None:
    assert RETAIL_GRAPH.read_text() == graph_text(retail_graph()), (
        "benchmarks/engine/zen/retail.json is stale: run `python -m benchmarks.engine.zen.jdm`"
    )


def _journey() -> Journey:
    return Journey.model_validate(
        {
            "journey": "probe",
            "version": 1,
            "stages": [{"id": "only"}],
            "segments": {"vip": {"when": {"trait": "tier", "in": ["gold", "platinum"]}}},
        }
    )


@pytest.mark.parametrize(
    ("condition", "facts", "holds"),
    [
        ({"property": "load_ms", "gt": 3000}, {"load_ms": 3200}, True),
        ({"property": "load_ms", "gt": 3000}, {}, False),  # ZEN raises on null > 3000
        ({"property": "load_ms", "gt": 3000}, {"load_ms": "4000"}, False),  # text is no number
        ({"property": "coupon", "ne": "x"}, {}, True),
        ({"property": "coupon", "not_in": ["x", "y"]}, {}, True),
        ({"property": "coupon", "exists": True}, {}, False),
        ({"property": "flag", "eq": True}, {"flag": 1}, False),
        ({"property": "it's", "eq": "a 'quoted' word"}, {"it's": "a 'quoted' word"}, True),
        ({"not": {"any": [{"event": "a"}, {"segment": "vip"}]}}, {}, False),
        ({"all": [{"event": ["b", "a"]}, {"trait": "age", "lte": 40}]}, {}, True),
    ],
)
def test_conditions_keep_their_meaning_in_zen_expressions(
    condition: dict[str, object], facts: dict[str, PropertyValue], holds: bool
) -> None:
    context = {
        "event": {"type": "a", "channel": "web", "touchpoint": "", "properties": facts},
        "traits": {"tier": "gold", "age": 40},
    }
    source = expression(Condition.model_validate(condition), Scope(_journey()))

    assert zen.evaluate_expression(source, context) is holds


def test_text_that_no_zen_literal_can_hold_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="both kinds of quote"):
        text("""it's "both" """)
