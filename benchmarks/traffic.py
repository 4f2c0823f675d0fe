"""Simulated shopper traffic: events of shoppers browsing, carting, failing to pay and buying.

`shopper_stream()` interleaves every shopper's events in time order, as a service sees them. It
uses a seeded `random.Random`: the same arguments give the same events and traits on every machine.
The vocabulary below is also what the generated rules (`benchmarks.engine.generated_rules`) are
written in.

`CONVERSION_ODDS` is how the locust shoppers (`benchmarks/load/locustfile.py`) answer the actions
they are offered or held out of, and `CustomerOutcomes` keeps one customer's exposures as the
engine does: together, the known truth the action report (`journeyman report`) is checked against.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.event import Event
from engine.rules.load import parse_journeys
from engine.rules.model import duration_ms

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


# --- conversions: what shoppers do after an offer, and after being held out of one ---------------


@dataclass(frozen=True, slots=True)
class Odds:
    """The chance that a shopper reaches a goal after a first exposure to an action: offered it
    (`treated`) or held out of it (`control`). Their difference is the true uplift."""

    treated: float
    control: float

    @property
    def uplift(self) -> float:
        return self.treated - self.control


# The simulated truth, per action of rules/retail.yaml and goal: "order" is a purchase (with an
# `amount`) soon after the exposure, "click" a click on the offer (RecordResponse). A shopper held
# out of an action saw nothing to click: its control click odds are 0. Only actions with a holdout
# (welcome_discount, win_back) have a control group, so only theirs can be checked; the others'
# treated odds still shape the traffic.
CONVERSION_ODDS: dict[str, dict[str, Odds]] = {
    "welcome_discount": {"order": Odds(0.35, 0.20), "click": Odds(0.30, 0.0)},
    "free_shipping": {"order": Odds(0.25, 0.25), "click": Odds(0.15, 0.0)},
    "live_chat": {"order": Odds(0.10, 0.10), "click": Odds(0.40, 0.0)},
    "review_request": {"order": Odds(0.0, 0.0), "click": Odds(0.20, 0.0)},
    "loyalty_invite": {"order": Odds(0.10, 0.10), "click": Odds(0.25, 0.0)},
    "win_back": {"order": Odds(0.30, 0.10), "click": Odds(0.20, 0.0)},
    # Offered by a timer (an abandoned cart), never while the shoppers send events.
    "cart_reminder": {"order": Odds(0.0, 0.0), "click": Odds(0.0, 0.0)},
}
ORDER, CLICK = "order", "click"  # the goals of rules/retail.yaml the odds are for


@dataclass(frozen=True, slots=True)
class Attribution:
    """What a shopper needs of the rules to act as the engine attributes: how long an exposure
    counts (the longest goal window) and which actions hold customers out."""

    exposure_window_ms: int
    holdout_actions: frozenset[str]

    @classmethod
    def from_rules(cls, path: Path) -> Attribution:
        (journey,) = parse_journeys([(str(path), path.read_text(encoding="utf-8"))])
        windows = [duration_ms(goal.window) for goal in journey.model.goals.values()]
        held = frozenset(a.id for a in journey.model.actions if a.holdout)
        return cls(max(windows, default=0), held)


@dataclass(frozen=True, slots=True)
class Exposed:
    """A first exposure of a customer to an action (a new one for the action report)."""

    action: str
    treated: bool


@dataclass(frozen=True, slots=True)
class Reaction:
    """What a shopper does about an exposure: `goal` ("order" or "click") for `action`."""

    goal: str
    action: str
    treated: bool


@dataclass
class CustomerOutcomes:
    """One customer's exposures as the engine records them, and the shopper's answers to them.

    An exposure counts when the action was not exposed within the exposure window before (as
    `engine.kernels.goals.record_exposure` decides); each counted exposure draws an order and a
    click from `CONVERSION_ODDS`. Inside the window of an action with a holdout, the customer
    orders only if that action's draw says so (`may_order`): no other order reaches the goal
    for it, so each of its exposed customers orders with exactly the odds of its group. That
    holds while no two such windows overlap, as in rules/retail.yaml (welcome_discount's stages
    and win_back's are at least 60 days apart).
    """

    attribution: Attribution
    rng: random.Random
    exposed_ms: dict[str, int] = field(default_factory=dict)
    tested_action: str = ""  # the action with a holdout whose window is open
    tested_until_ms: int = -1

    def expose(self, offered: Sequence[str], held_out: Sequence[str], at_ms: int) -> list[Exposed]:
        """The exposures a stored decision at `at_ms` counts, offered ones first."""
        counted = []
        chosen = [(a, True) for a in offered] + [(a, False) for a in held_out]
        for action, treated in chosen:
            last_ms = self.exposed_ms.get(action)
            if last_ms is not None and at_ms - last_ms <= self.attribution.exposure_window_ms:
                continue
            self.exposed_ms[action] = at_ms
            counted.append(Exposed(action, treated))
            if action in self.attribution.holdout_actions:
                self.tested_action = action
                self.tested_until_ms = at_ms + self.attribution.exposure_window_ms
        return counted

    def react(self, exposed: Sequence[Exposed]) -> list[Reaction]:
        """The clicks these exposures draw, then at most one order (one purchase converts every
        exposed action): an action with a holdout's own before any other's."""
        clicks: list[Reaction] = []
        orders: list[Reaction] = []
        for exposure in exposed:
            odds = CONVERSION_ODDS.get(exposure.action, {})
            for goal, into in ((CLICK, clicks), (ORDER, orders)):
                if goal not in odds:
                    continue
                chance = odds[goal].treated if exposure.treated else odds[goal].control
                if self.rng.random() < chance:
                    into.append(Reaction(goal, exposure.action, exposure.treated))
        orders.sort(key=lambda r: r.action not in self.attribution.holdout_actions)
        return clicks + orders[:1]

    def may_order(self, at_ms: int, reaction: Reaction | None = None) -> bool:
        """Whether an order at `at_ms` keeps every tested action's odds true: outside the open
        window, or the drawn order of the very action under test."""
        if at_ms > self.tested_until_ms:
            return True
        return reaction is not None and reaction.action == self.tested_action
