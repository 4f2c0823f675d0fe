"""Locust load for JourneyService: simulated shoppers, and real customers replayed from CDNOW.

    locust -f benchmarks/load/locustfile.py --headless --host 127.0.0.1:50051 -u 20 -r 10 -t 30s \\
        [--think-ms 5000] [--run-id ID] [--journey-summary FILE] [--customer-events N] \\
        [--customers-per-user K] [ShopperUser] [CdnowReplayUser]

(`python -m benchmarks.load.run_locust` runs it for you, against its own server if you name none.)

**ShopperUser** walks the journeys of `rules/retail.yaml`: lands on the home page (some pages load
slowly: `load_ms` over 3 s is the `slow_page` friction signal), views products, adds them to the
cart, starts checkout, hits payment errors (friction, live chat), rage-clicks, calls support,
buys, gets the delivery e-mail, writes reviews, comes back a day later, or goes quiet for two to
four months (`went_quiet` → churn risk) and comes back after that. Each simulated user is one
customer at a time: it identifies them with traits first (tier, e-mail opt-in), and moves to a new
customer when their simulated clock reaches the present (or after `--customer-events` events).

Shoppers **convert** with known odds (`CONVERSION_ODDS` in `benchmarks/traffic.py`): after each
first exposure to an action (offered it, or held out of it, as the engine counts exposures), the
shopper clicks it (RecordResponse `click`) and places an order (a `purchase` with an `amount`)
with the odds of the action and of its group; while an action with a holdout is under test (its
goal window open), no other purchase happens, so `journeyman report` can be checked against the
true uplift (`tests/service/test_locust_report.py` does). `--customers-per-user K` makes a run of
a known size: each shopper stops after K customers, the run when every shopper has.

**CdnowReplayUser** replays the real CDNOW purchase log (`cdnow/CDNOW_master.txt` in the shared
data folder, `$JOURNEYMAN_EVENT_DATA_DIR` overrides it): one user takes the next CDNOW customer and
sends their purchases in order, then the next customer. Mapping of a row to a retail event: type
`purchase`, channel `web`, touchpoint `checkout`, properties `amount` = `dollar_value` (USD),
`quantity` = `number_of_cds`, `category` = `music`; time = the purchase date at 12:00 UTC plus
one minute per earlier purchase of that customer on that day. Real purchase timing drives the
stages: first order → purchase, a repeat within a year → retention (`came_back`), 60 days quiet
→ churn risk. When the log is missing the class is left out of the run and the run says why.

Every customer and event id carries the run id (by default the run's start time), so a run never
meets an earlier run's customers or is answered from the service's duplicate cache. Event times
are simulated (shoppers) or real (CDNOW), always in the past.

Time between one user's calls: `--think-ms` (or `LOCUST_THINK_MS`), ±50 %. The default, 5 s, is a
shopper reading a page; 0 sends back to back, to push load. Request names end in `[µs]`: see
`benchmarks/load/grpc_user.py`.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# `locust -f benchmarks/load/locustfile.py` puts benchmarks/load/ on sys.path, not the repository
# root that `benchmarks` is imported from.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gevent  # type: ignore[import-untyped]  # noqa: E402  (locust's own; no type stubs)
from locust import events, task  # noqa: E402
from locust.env import Environment  # noqa: E402

from benchmarks.load.grpc_user import GrpcUser  # noqa: E402
from benchmarks.traffic import (  # noqa: E402
    CATEGORIES,
    CLICK,
    Attribution,
    CustomerOutcomes,
    Exposed,
    Reaction,
    shopper_traits,
)
from journeyman.v1 import journeyman_pb2 as pb  # noqa: E402
from server.tools.event_logs import DATA_DIR_VARIABLE, data_dir  # noqa: E402

# locust's event hooks are untyped: their decorators below carry a `type: ignore`.

DEFAULT_THINK_MS = 5000.0
DAY_MS = 86_400_000
CDNOW_LOG = data_dir() / "cdnow" / "CDNOW_master.txt"
RULES = ROOT / "rules" / "retail.yaml"
ATTRIBUTION = Attribution.from_rules(RULES)  # the goal windows and holdouts shoppers act on
FINISHED_WAIT_S = 1.0  # a shopper done with its customers idles until the run stops

# What a shopper does next, given what they did last: (step, weight). `leave` ends the visit (they
# come back about a day later); `go_quiet` ends it for two to four months.
NEXT_STEP: dict[str, tuple[tuple[str, int], ...]] = {
    "arrive": (("page_view", 8), ("product_view", 2)),
    "page_view": (("product_view", 6), ("page_view", 2), ("rage_click", 1), ("leave", 1)),
    "product_view": (("product_view", 5), ("add_to_cart", 3), ("page_view", 1), ("leave", 1)),
    "add_to_cart": (("checkout_started", 5), ("product_view", 3), ("leave", 1)),
    "checkout_started": (("purchase", 5), ("payment_error", 3)),
    "payment_error": (("purchase", 4), ("payment_error", 1), ("support_contact", 2), ("leave", 1)),
    "rage_click": (("page_view", 2), ("support_contact", 1)),
    "support_contact": (("checkout_started", 2), ("leave", 1)),
    "purchase": (("delivery_confirmed", 5), ("leave", 1), ("go_quiet", 1)),
    "delivery_confirmed": (("review_written", 3), ("leave", 3), ("go_quiet", 1)),
    "review_written": (("leave", 2), ("go_quiet", 1)),
}
TOUCHPOINT = {
    "page_view": "home", "product_view": "product_page", "rage_click": "product_page",
    "add_to_cart": "cart", "checkout_started": "checkout", "payment_error": "checkout",
    "purchase": "checkout", "support_contact": "help_center", "delivery_confirmed": "email",
    "review_written": "product_page",
}  # fmt: skip


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _add_options(parser: Any) -> None:
    parser.add_argument(
        "--think-ms", type=float, env_var="LOCUST_THINK_MS", default=DEFAULT_THINK_MS,
        help="mean time between one simulated user's calls, in ms (±50 %%); 0 sends back to back",
    )  # fmt: skip
    parser.add_argument(
        "--run-id", type=str, env_var="LOCUST_RUN_ID", default="",
        help="stamped into every customer and event id; default: the run's start time",
    )  # fmt: skip
    parser.add_argument(
        "--journey-summary", type=str, default="",
        help="write the stages and transitions the customers reached to this JSON file",
    )  # fmt: skip
    parser.add_argument(
        "--customer-events", type=int, env_var="LOCUST_CUSTOMER_EVENTS", default=0,
        help="a shopper moves to its next customer after this many events (0: when the "
        "customer's simulated year reaches the present)",
    )  # fmt: skip
    parser.add_argument(
        "--customers-per-user", type=int, env_var="LOCUST_CUSTOMERS_PER_USER", default=0,
        help="each shopper stops after this many customers, and the run when all have "
        "(0: no limit)",
    )  # fmt: skip


# --- what the users saw: the journey summary -----------------------------------------------------


@dataclass
class JourneyTally:
    """The stages and transitions one user class's customers reached, from the decisions."""

    decisions: int = 0
    degraded: int = 0  # answered from the rules alone: not the stored stage, so not tallied
    last_stage: dict[str, dict[str, str]] = field(
        default_factory=dict
    )  # journey → customer → stage
    transitions: dict[str, Counter[str]] = field(
        default_factory=dict
    )  # journey → transition → fired
    exposed: Counter[tuple[str, bool]] = field(default_factory=Counter)  # (action, treated)
    # (goal, action, treated): orders placed and clicks made for an exposure to the action
    reached: Counter[tuple[str, str, bool]] = field(default_factory=Counter)
    purchases_held_back: int = 0  # the walk's purchases skipped inside a tested action's window
    orders_held_back: int = 0  # orders drawn for other actions, skipped there too
    finished_users: int = 0
    # Customers whose last call got no answer: still in flight when locust stopped the run, or
    # failed after the server may have stored it. Their stored stage may be one event past the
    # last answer, so they are no example of a stage the answers reported.
    unanswered: set[str] = field(default_factory=set)

    def sending(self, customer_id: str) -> None:
        self.unanswered.add(customer_id)

    def answered(self, customer_id: str) -> None:
        self.unanswered.discard(customer_id)

    def record(self, decision: pb.Decision) -> None:
        self.decisions += 1
        if decision.degraded:
            self.degraded += 1
            return
        for journey in decision.journeys:
            self.last_stage.setdefault(journey.journey, {})[decision.customer_id] = journey.stage
            if journey.changed:
                self.transitions.setdefault(journey.journey, Counter())[journey.transition] += 1

    def summary(self) -> dict[str, Any]:
        journeys: dict[str, Any] = {}
        for journey, stages in self.last_stage.items():
            example: dict[str, str] = {}
            for customer, stage in stages.items():
                if customer not in self.unanswered:
                    example.setdefault(stage, customer)
            journeys[journey] = {
                "customers": len(stages),
                "customers_by_last_stage": dict(Counter(stages.values())),
                "transitions": dict(self.transitions.get(journey, {})),
                "example_customer_by_stage": example,
            }
        return {
            "decisions": self.decisions,
            "degraded": self.degraded,
            "journeys": journeys,
            **self._outcomes(),
        }

    def _outcomes(self) -> dict[str, Any]:
        """Exposures and conversions by action and group, as the action report counts them."""
        groups = {True: "treated", False: "control"}
        exposures: dict[str, dict[str, int]] = {}
        for (action, treated), count in sorted(self.exposed.items()):
            exposures.setdefault(action, {"treated": 0, "control": 0})[groups[treated]] = count
        reached: dict[str, dict[str, dict[str, int]]] = {}
        for (goal, action, treated), count in sorted(self.reached.items()):
            by_action = reached.setdefault(goal, {})
            by_action.setdefault(action, {"treated": 0, "control": 0})[groups[treated]] = count
        return {
            "exposures": exposures,
            "conversions": reached,
            "purchases_held_back": self.purchases_held_back,
            "orders_held_back": self.orders_held_back,
            "finished_users": self.finished_users,
        }


TALLIES: dict[str, JourneyTally] = {}
SKIPPED: dict[str, str] = {}


@events.test_stop.add_listener  # type: ignore[untyped-decorator]
def _write_summary(environment: Environment, **_kwargs: Any) -> None:
    path = environment.parsed_options.journey_summary if environment.parsed_options else ""
    if path:
        report = {
            "run_id": run_id(environment),
            "by_user_class": {label: tally.summary() for label, tally in TALLIES.items()},
            "skipped": SKIPPED,
        }
        Path(path).write_text(json.dumps(report, indent=2, sort_keys=True))


# --- shared by both user classes -----------------------------------------------------------------

_RUN_IDS: dict[int, str] = {}


def run_id(environment: Environment) -> str:
    """`--run-id`, or this process's start time in hex ms (one id for the whole run)."""
    key = id(environment)
    if key not in _RUN_IDS:
        given = environment.parsed_options.run_id if environment.parsed_options else ""
        _RUN_IDS[key] = given or f"{int(time.time() * 1000):x}"
        worker = getattr(environment.runner, "worker_index", None)
        if worker is not None:  # several locust processes: keep their customers apart
            _RUN_IDS[key] += f"w{worker}"
    return _RUN_IDS[key]


def values(mapping: dict[str, str | float | bool]) -> dict[str, pb.Value]:
    """Plain properties or traits as protobuf `Value`s."""
    converted = {}
    for name, value in mapping.items():
        if isinstance(value, bool):
            converted[name] = pb.Value(bool_value=value)
        elif isinstance(value, str):
            converted[name] = pb.Value(string_value=value)
        else:
            converted[name] = pb.Value(number_value=float(value))
    return converted


class JourneyUser(GrpcUser):
    """A user that sends events and tallies the stages the answers put its customers in."""

    abstract = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        options = environment.parsed_options
        self.think_s = (options.think_ms if options else DEFAULT_THINK_MS) / 1000.0
        self.run_id = run_id(environment)
        self.tally = TALLIES.setdefault(self.label, JourneyTally())

    def wait_time(self) -> float:
        return random.uniform(0.5, 1.5) * self.think_s if self.think_s > 0 else 0.0

    def decide(self, event: pb.Event) -> pb.Decision | None:
        """Decide one event; its decision, None when the call failed (locust counted it)."""
        self.tally.sending(event.customer_id)
        reply = self.call(self.stub.Decide, pb.DecideRequest(event=event))
        if reply is None:
            return None
        self.tally.answered(event.customer_id)
        self.tally.record(reply.decision)
        return reply.decision  # type: ignore[no-any-return]


# --- simulated shoppers --------------------------------------------------------------------------

_SHOPPER_NUMBERS = itertools.count()


_FINISHED_SHOPPERS = itertools.count(1)


class ShopperUser(JourneyUser):
    """A shopper of the retail journey: one event per task, walking `NEXT_STEP`, answering the
    actions it is exposed to with the odds of `benchmarks.traffic.CONVERSION_ODDS`."""

    label = "shopper"
    weight = 3

    def on_start(self) -> None:
        self.number = next(_SHOPPER_NUMBERS)
        self.rng = random.Random(self.number)  # the same walks in every run
        self.odds_rng = random.Random(-1 - self.number)  # the same answers to the same offers
        self.identities = itertools.count()
        options = self.environment.parsed_options
        self.events_per_customer = options.customer_events if options else 0
        self.customers_left = (options.customers_per_user if options else 0) or -1
        self.finished = False
        self.reactions: deque[tuple[Reaction, str]] = deque()  # and the event answered
        self._new_customer()

    def wait_time(self) -> float:
        return FINISHED_WAIT_S if self.finished else super().wait_time()

    def _new_customer(self) -> bool:
        """Start the next customer, identified with traits, their clock about a year in the past
        (365 to 395 days: within the 400 days the statistics keep); False when this shopper has
        made all its customers."""
        if self.customers_left == 0:
            self._finish()
            return False
        self.customers_left -= 1
        self.customer_id = f"shopper-{self.run_id}-{self.number}-{next(self.identities)}"
        self.events_sent = 0
        self.clock_ms = int(time.time() * 1000) - 395 * DAY_MS + self.rng.randrange(30 * DAY_MS)
        self.last_step = "arrive"
        self.channel = self.rng.choice(("web", "web", "app"))
        self.cart_amounts: list[float] = []
        self.outcomes = CustomerOutcomes(ATTRIBUTION, self.odds_rng)
        traits = values(shopper_traits(self.rng))
        self.call(
            self.stub.Identify, pb.IdentifyRequest(customer_id=self.customer_id, traits=traits)
        )
        return True

    def _finish(self) -> None:
        """This shopper is done; the last one to finish stops the run."""
        self.finished = True
        self.tally.finished_users += 1
        runner = self.environment.runner
        shoppers = runner.target_user_classes_count.get(type(self).__name__, 0) if runner else 0
        if next(_FINISHED_SHOPPERS) >= shoppers > 0 and runner is not None:
            # As locust's own --run-time does: quit from a greenlet of its own, not this user's.
            gevent.spawn(runner.quit)

    @task
    def next_event(self) -> None:
        if self.reactions:
            self._react(*self.reactions.popleft())
            return
        if self.finished:
            return
        step = self._next_step()
        # Checked after the clock moved: a step may jump months ahead, and the service refuses
        # events from the future.
        if self.clock_ms > time.time() * 1000 - DAY_MS or (
            0 < self.events_per_customer <= self.events_sent
        ):
            # Their simulated year has caught up with the present (or they made their events):
            # the next shopper steps in.
            if not self._new_customer():
                return
            step = self._next_step()
        if step == "purchase" and not self.outcomes.may_order(self.clock_ms):
            # An action is under test: only its own drawn order may reach the goal.
            self.tally.purchases_held_back += 1
            step = self._end_visit(self.rng.uniform(0.3, 3))
        self._answered(self.decide(self._event(step)))
        self.last_step = step

    def _answered(self, decision: pb.Decision | None) -> None:
        """Count the exposures a stored decision made and queue the shopper's answers to them."""
        if decision is None or decision.degraded or decision.duplicate:
            return  # nothing stored, or stored before: no new exposure
        offered = [action.action for action in decision.actions]
        exposed: list[Exposed] = self.outcomes.expose(
            offered, list(decision.held_out_actions), decision.decided_at_ms
        )
        self.tally.exposed.update((e.action, e.treated) for e in exposed)
        self.reactions.extend((r, decision.event_id) for r in self.outcomes.react(exposed))

    def _react(self, reaction: Reaction, event_id: str) -> None:
        """Click the action (RecordResponse) or place the order it drew, seconds later."""
        if reaction.goal == CLICK:
            self.clock_ms += int(self.rng.uniform(2_000, 10_000))
            request = pb.RecordResponseRequest(
                customer_id=self.customer_id, event_id=event_id, action=reaction.action,
                response="click", timestamp_ms=self.clock_ms, channel=self.channel,
                touchpoint="home",
            )  # fmt: skip
            self.tally.sending(self.customer_id)
            reply = self.call(self.stub.RecordResponse, request)
            decision = reply.decision if reply is not None else None
            if decision is not None:
                self.tally.answered(self.customer_id)
                self.tally.record(decision)
        else:
            self.clock_ms += int(self.rng.expovariate(1 / 25_000))
            if not self.outcomes.may_order(self.clock_ms, reaction):
                self.tally.orders_held_back += 1
                return
            decision = self.decide(self._event("purchase"))
            self.last_step = "purchase"
        if decision is not None and not decision.degraded:  # stored: it reached the goal
            self.tally.reached[reaction.goal, reaction.action, reaction.treated] += 1
            self._answered(decision)

    def _next_step(self) -> str:
        """The next event type, moving the clock: seconds within a visit, days between visits."""
        choices = NEXT_STEP[self.last_step]
        step = self.rng.choices([s for s, _ in choices], [w for _, w in choices])[0]
        if step in ("leave", "go_quiet"):
            days = self.rng.uniform(61, 120) if step == "go_quiet" else self.rng.uniform(0.3, 3)
            return self._end_visit(days)
        if step == "delivery_confirmed":
            self.clock_ms += int(self.rng.uniform(2, 5) * DAY_MS)
        else:
            self.clock_ms += int(self.rng.expovariate(1 / 25_000))  # about 25 s per click
        return step

    def _end_visit(self, days: float) -> str:
        """Leave, come back `days` later (on web or in the app): the first step of that visit."""
        self.clock_ms += int(days * DAY_MS)
        self.channel = self.rng.choice(("web", "web", "app"))
        self.last_step = "arrive"
        return self._next_step()

    def _event(self, step: str) -> pb.Event:
        channel = self.channel
        if step == "delivery_confirmed":
            channel = "email"
        elif step == "support_contact" and self.rng.random() < 0.5:
            channel = "call_center"
        self.events_sent += 1
        return pb.Event(
            event_id=f"{self.customer_id}-e{self.events_sent}", customer_id=self.customer_id,
            type=step, channel=channel, touchpoint=TOUCHPOINT[step], timestamp_ms=self.clock_ms,
            properties=values(self._properties(step)),
        )  # fmt: skip

    def _properties(self, step: str) -> dict[str, str | float | bool]:
        rng = self.rng
        if step == "page_view":
            return {"load_ms": round(rng.lognormvariate(7.0, 0.6))}  # median 1.1 s, 5 % over 3 s
        if step in ("product_view", "add_to_cart"):
            price = round(rng.lognormvariate(3.5, 0.8), 2)  # median about 33
            if step == "add_to_cart":
                self.cart_amounts.append(price)
            return {"category": rng.choice(CATEGORIES), "amount": price}
        if step in ("checkout_started", "payment_error"):
            properties: dict[str, str | float | bool] = {"amount": self._cart_total()}
            if step == "payment_error":
                properties["code"] = rng.choice(("card_declined", "3ds_failed", "timeout"))
            return properties
        if step == "purchase":
            amount, self.cart_amounts = self._cart_total(), []
            return {"amount": amount, "category": rng.choice(CATEGORIES)}
        return {}

    def _cart_total(self) -> float:
        # A shopper sent straight to checkout from a support call still has something to pay.
        return round(sum(self.cart_amounts) or self.rng.lognormvariate(3.5, 0.8), 2)


# --- real customers: the CDNOW purchase log ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Purchase:
    """One row of the CDNOW log."""

    customer: str  # 5-digit CDNOW customer id
    day: str  # YYYYMMDD
    cds: int
    dollars: float


def read_cdnow(path: Path) -> Iterator[list[Purchase]]:
    """Each CDNOW customer's purchases, in date order (the file is sorted by customer)."""
    with path.open(encoding="ascii") as lines:
        next(lines)  # the header
        rows = (line.split() for line in lines if line.strip())
        purchases = (Purchase(c, day, int(cds), float(usd)) for c, day, cds, usd in rows)
        for _, group in itertools.groupby(purchases, key=lambda p: p.customer):
            yield sorted(group, key=lambda p: p.day)


def _replayed_customers(path: Path) -> Iterator[tuple[int, list[Purchase]]]:
    """(pass, purchases) for every customer, from the start again when the log runs out."""
    for replay_pass in itertools.count():
        for purchases in read_cdnow(path):
            yield replay_pass, purchases


_CDNOW_QUEUE: Iterator[tuple[int, list[Purchase]]] | None = None


def next_cdnow_customer() -> tuple[int, list[Purchase]]:
    """The next customer no user of this process has replayed yet (users share one reader)."""
    global _CDNOW_QUEUE
    if _CDNOW_QUEUE is None:
        _CDNOW_QUEUE = _replayed_customers(CDNOW_LOG)
    return next(_CDNOW_QUEUE)


def purchase_event(customer_id: str, purchases: list[Purchase], index: int) -> pb.Event:
    """The `index`-th purchase of a CDNOW customer as a retail event (mapping: module docstring)."""
    purchase = purchases[index]
    same_day_before = sum(1 for p in purchases[:index] if p.day == purchase.day)
    noon = datetime.strptime(purchase.day, "%Y%m%d").replace(hour=12, tzinfo=UTC)
    timestamp_ms = int(noon.timestamp()) * 1000 + same_day_before * 60_000
    properties: dict[str, str | float | bool] = {
        "amount": purchase.dollars, "quantity": float(purchase.cds), "category": "music",
    }  # fmt: skip
    return pb.Event(
        event_id=f"{customer_id}-p{index}", customer_id=customer_id, type="purchase",
        channel="web", touchpoint="checkout", timestamp_ms=timestamp_ms,
        properties=values(properties),
    )  # fmt: skip


class CdnowReplayUser(JourneyUser):
    """Replays real CDNOW customers: one purchase per task, one customer after another."""

    label = "cdnow replay"
    weight = 1

    def on_start(self) -> None:
        self.purchases: list[Purchase] = []
        self.index = 0
        self.customer_id = ""

    @task
    def next_purchase(self) -> None:
        if self.index >= len(self.purchases):
            replay_pass, self.purchases = next_cdnow_customer()
            self.index = 0
            customer = self.purchases[0].customer
            self.customer_id = f"cdnow-{self.run_id}-{replay_pass}-{customer}"
        self.decide(purchase_event(self.customer_id, self.purchases, self.index))
        self.index += 1


if not CDNOW_LOG.is_file():
    # Left out of the run rather than failing it: the shoppers need no data. Said on stderr at
    # once, since locust refuses a class named on its command line before any event fires.
    CdnowReplayUser.abstract = True
    SKIPPED["CdnowReplayUser"] = (
        f"the CDNOW purchase log is not at {CDNOW_LOG}: put the shared data there, or set "
        f"{DATA_DIR_VARIABLE} to the folder holding cdnow/CDNOW_master.txt"
    )
    print(f"locustfile: CdnowReplayUser is skipped: {SKIPPED['CdnowReplayUser']}", file=sys.stderr)
