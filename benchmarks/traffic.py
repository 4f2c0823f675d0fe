"""Simulated shopper traffic: events of shoppers browsing, carting, failing to pay and buying.

`shopper_stream()` interleaves every shopper's events in time order, as a service sees them. It
uses a seeded `random.Random`: the same arguments give the same events and traits on every machine.
The vocabulary below is also what the generated rules (`benchmarks.engine.generated_rules`) are
written in.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.event import Event

if TYPE_CHECKING:
    from engine.event import PropertyValue

EVENT_TYPES = (
    "page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "checkout_started",
    "payment_error", "purchase", "rage_click", "support_contact", "review_written",
    "delivery_confirmed", "email_open", "app_open",
)  # fmt: skip
CHANNELS = ("web", "app", "email", "call_center", "store")
TOUCHPOINTS = ("home", "product_page", "cart", "checkout", "help_center")
CATEGORIES = ("shoes", "shirts", "bags", "watches", "toys")
TIERS = ("basic", "silver", "gold", "platinum")
REGIONS = ("eu", "us", "apac")

# What a shopper does next, given what they just did: (next event, weight).
_NEXT: dict[str, tuple[tuple[str, int], ...]] = {
    "start": (("page_view", 6), ("app_open", 2), ("email_open", 1), ("search", 1)),
    "page_view": (("product_view", 6), ("page_view", 2), ("search", 2), ("rage_click", 1)),
    "app_open": (("product_view", 5), ("search", 3), ("page_view", 2)),
    "email_open": (("page_view", 5), ("product_view", 3)),
    "search": (("product_view", 6), ("search", 2), ("page_view", 1)),
    "product_view": (("product_view", 5), ("add_to_cart", 3), ("page_view", 2), ("search", 1)),
    "add_to_cart": (("checkout_started", 4), ("product_view", 3), ("remove_from_cart", 1)),
    "remove_from_cart": (("product_view", 3), ("page_view", 2)),
    "checkout_started": (("purchase", 6), ("payment_error", 3), ("rage_click", 1)),
    "payment_error": (("purchase", 4), ("payment_error", 2), ("support_contact", 2)),
    "rage_click": (("page_view", 2), ("support_contact", 1)),
    "support_contact": (("checkout_started", 2), ("page_view", 1)),
    "purchase": (("delivery_confirmed", 3), ("page_view", 2)),
    "delivery_confirmed": (("review_written", 2), ("page_view", 3)),
    "review_written": (("page_view", 1),),
}
_END_OF_SESSION = 0.12
_TOUCHPOINT_OF = {
    "add_to_cart": "cart", "remove_from_cart": "cart", "checkout_started": "checkout",
    "payment_error": "checkout", "purchase": "checkout", "support_contact": "help_center",
    "product_view": "product_page", "search": "home",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class TimedEvent:
    """One event of the stream and when it happened (ms since the epoch)."""

    event: Event
    now_ms: int


def shopper_traits(rng: random.Random) -> dict[str, PropertyValue]:
    """Traits an `Identify` call would have set for a simulated shopper."""
    traits: dict[str, PropertyValue] = {
        "tier": rng.choice(TIERS),
        "email_opt_in": rng.random() < 0.6,
        "age": float(rng.randint(18, 80)),
        "region": rng.choice(REGIONS),
        "ltv": round(rng.expovariate(1 / 400), 2),
    }
    if rng.random() < 0.4:
        traits["has_ordered"] = True
    return traits


def _properties(rng: random.Random, event_type: str) -> dict[str, PropertyValue]:
    if event_type == "page_view":
        return {"load_ms": round(rng.lognormvariate(7.0, 0.7))}  # median ~1.1 s, a long tail
    if event_type == "purchase":
        return {
            "amount": round(rng.lognormvariate(4.0, 0.8), 2),
            "category": rng.choice(CATEGORIES),
        }
    if event_type in ("product_view", "add_to_cart"):
        return {"category": rng.choice(CATEGORIES), "quantity": float(rng.randint(1, 3))}
    return {}


def _next_type(rng: random.Random, previous: str) -> str:
    choices = _NEXT[previous]
    return rng.choices([c for c, _ in choices], [w for _, w in choices])[0]


def _shopper_events(
    rng: random.Random, customer: str, n_events: int, start_ms: int
) -> Iterator[TimedEvent]:
    now_ms, previous = start_ms, "start"
    channel = rng.choice(("web", "web", "app"))
    for index in range(n_events):
        if previous != "start" and rng.random() < _END_OF_SESSION:
            now_ms += int(rng.expovariate(1 / 86_400_000))  # next visit: about a day later
            previous, channel = "start", rng.choice(("web", "web", "app"))
        event_type = _next_type(rng, previous)
        now_ms += int(rng.expovariate(1 / 20_000))  # about 20 s between clicks
        via = "call_center" if event_type == "support_contact" and rng.random() < 0.5 else channel
        touchpoint = _TOUCHPOINT_OF.get(event_type, "home")
        event = Event(f"{customer}-{index}", customer, event_type, via, touchpoint,
                      _properties(rng, event_type))  # fmt: skip
        yield TimedEvent(event, now_ms)
        previous = event_type


def shopper_stream(
    n_shoppers: int, events_per_shopper: int, seed: int = 0, start_ms: int = 1_767_225_600_000
) -> tuple[list[TimedEvent], dict[str, dict[str, PropertyValue]]]:
    """Events of `n_shoppers` shoppers, merged in time order, and each shopper's traits.

    Shoppers arrive over one day; each makes about `events_per_shopper` events in sessions of
    clicks some seconds apart, sessions about a day apart.
    """
    rng = random.Random(seed)
    events: list[TimedEvent] = []
    traits: dict[str, dict[str, PropertyValue]] = {}
    for number in range(n_shoppers):
        customer = f"shopper-{number:05d}"
        traits[customer] = shopper_traits(rng)
        arrival_ms = start_ms + rng.randrange(86_400_000)
        count = max(1, round(rng.gauss(events_per_shopper, events_per_shopper / 4)))
        events.extend(_shopper_events(rng, customer, count, arrival_ms))
    events.sort(key=lambda timed: timed.now_ms)
    return events, traits
