"""Races and retries against two real `journeyman serve --workers 2` replicas sharing one Redis,
then a Redis Cluster.

Races: many clients over several connections, spread over the replicas, send interleaved events
of a few customers, and retry each one with the same event id (over any connection, so on either
replica) until it is acknowledged (answered, not degraded): after ABORTED, RESOURCE_EXHAUSTED, a
degraded answer, or a deadline of a few milliseconds that ends DEADLINE_EXCEEDED while the event
may or may not have been stored. Some acknowledged events are sent once more and must come back
`duplicate`, with the original decision. Afterwards every
counter read through GetCustomer equals a single-threaded replay of the acknowledged events
through the engine, and the number of distinct acknowledged events of its kind: no event lost,
none counted twice.

The promise holds within the decisions kept (README, Guarantees): a retry gets its original
decision back while its event id is among the customer's last DECISIONS_KEPT stored (and is
recognised within the last 16). The clients here keep to it as a real client must, by a sliding
window per customer (IN_FLIGHT_PER_CUSTOMER, see there).
Attempts of one event are sent one after another, never two at once (hedged).

Retries: the same event id with a different event is refused ALREADY_EXISTS, naming the id, and
changes nothing.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import grpc
import pytest

from engine.decide import decide
from engine.event import Event
from engine.state import new_state
from engine.view import customer_view
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from tests.conftest import REDIS_KINDS, delete_keys_under, new_key_prefix, redis_timeout_ms
from tests.rulesets import retail
from tests.service.test_process import Served, _free_port, _start, _wait_until_serving

pytestmark = pytest.mark.service

CUSTOMERS = 4
REPLICAS = 2
EVENTS_PER_CUSTOMER = 300
CONNECTIONS = 8
CLIENT_TASKS = 64
DECISIONS_KEPT = 8  # decisions kept whole per customer (JOURNEYMAN_DECISIONS_KEPT's default)
# Events of one customer handed out but not yet finished, at most. While event n is unfinished,
# only events n - IN_FLIGHT + 1 ... n + IN_FLIGHT - 1 can be stored besides it: 2 * (4 - 1) = 6
# others, so its decision is still among the last 8 kept when its retries and its resend come,
# with room for a commit still on its way from an attempt its client gave up on.
IN_FLIGHT_PER_CUSTOMER = 4
assert 2 * (IN_FLIGHT_PER_CUSTOMER - 1) + 1 < DECISIONS_KEPT
DEADLINE_S = 5.0
# Some end DEADLINE_EXCEEDED before the event is stored, some after, some are answered in time.
SHORT_DEADLINES_S = (0.001, 0.003, 0.005, 0.01, 0.02, 0.05)
SHORT_DEADLINE_SHARE = 0.08  # of first attempts and retries
RESEND_SHARE = 0.25  # of acknowledged events, sent once more
MAX_ATTEMPTS = 200  # a bound, so that a bug cannot spin forever
BACKOFF_S = 0.002  # doubled per attempt of one event, up to BACKOFF_MAX_S, with jitter
BACKOFF_MAX_S = 0.05
LOAD_TIMEOUT_S = 120.0  # far beyond a normal run (seconds); a hang fails with a reason
RETRYABLE = (grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED)
# Event types that feed counters of rules/retail.yaml, and one that feeds none.
KINDS = ("product_view", "add_to_cart", "purchase", "review_written", "page_view")
COUNTED_BY = {
    "product_views_7d": "product_view",
    "cart_adds_7d": "add_to_cart",
    "purchases_365d": "purchase",
    "reviews_365d": "review_written",
}
SPEND = ("spend_90d", "purchase", "amount")  # a sum: the amounts of the purchases
RECENT_MS = 10 * 60 * 1000  # event timestamps: within the last ten minutes, inside every window


@pytest.fixture(scope="module", params=REDIS_KINDS)
def replicas(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Served]]:
    """REPLICAS `journeyman serve --workers 2` processes sharing one Redis, then a Redis Cluster,
    under a key prefix of their own (its keys deleted at the end)."""
    url = request.getfixturevalue("cluster_url" if request.param == "cluster" else "redis_url")
    prefix = new_key_prefix()
    settings = {
        "redis_url": url, "key_prefix": prefix, "workers": "2", "grace_period_s": "1",
        "redis_timeout_ms": str(redis_timeout_ms(url)),
    }  # fmt: skip
    folders = [tmp_path_factory.mktemp(f"races-{i}") for i in range(REPLICAS)]
    served = [_start(folder, _free_port(), **settings) for folder in folders]
    try:
        for each in served:
            _wait_until_serving(each)
        yield served
    finally:
        for each in served:
            each.kill()
        asyncio.run(delete_keys_under(url, prefix))


def _channel(address: str) -> grpc.aio.Channel:
    # A subchannel pool of its own: each channel is its own TCP connection, as separate
    # clients would have (by default, channels to one address share one).
    return grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


# --- the events -------------------------------------------------------------------------------


def planned_events(customer: str, rng: random.Random, now_ms: int) -> list[pb.Event]:
    """One customer's events, in the order the customer made them."""
    events = []
    for number in range(EVENTS_PER_CUSTOMER):
        kind = rng.choice(KINDS)
        properties = {}
        if kind == "purchase":
            properties["amount"] = pb.Value(number_value=rng.randint(1, 300))
        elif kind == "page_view":
            properties["load_ms"] = pb.Value(number_value=rng.choice([200, 4000]))
        events.append(
            pb.Event(
                event_id=f"{customer}-{number}", customer_id=customer, type=kind,
                channel=rng.choice(["web", "app"]), touchpoint="races",
                timestamp_ms=now_ms - rng.randint(0, RECENT_MS), properties=properties,
            )
        )  # fmt: skip
    return events


class Window:
    """Hands out one customer's events in order, at most IN_FLIGHT_PER_CUSTOMER unfinished."""

    def __init__(self, events: list[pb.Event]) -> None:
        self.events = events
        self.next = 0
        self.unfinished: set[int] = set()

    def take(self) -> tuple[int, pb.Event] | None:
        lowest = min(self.unfinished, default=self.next)
        if self.next == len(self.events) or self.next >= lowest + IN_FLIGHT_PER_CUSTOMER:
            return None
        number, self.next = self.next, self.next + 1
        self.unfinished.add(number)
        return number, self.events[number]

    def finish(self, number: int) -> None:
        self.unfinished.remove(number)

    @property
    def all_handed_out(self) -> bool:
        return self.next == len(self.events)


# --- the clients --------------------------------------------------------------------------------


@dataclass
class Tally:
    """Per customer, what the clients saw."""

    sent: Counter[str] = field(default_factory=Counter)  # distinct events
    # Every call, retries and resends included, by (customer, outcome of the call).
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    acknowledged: Counter[str] = field(default_factory=Counter)  # distinct events, not degraded
    # Acknowledged as a duplicate: an attempt the client gave up on had been stored.
    stored_before: Counter[str] = field(default_factory=Counter)
    resent: Counter[str] = field(default_factory=Counter)
    decisions: dict[str, pb.Decision] = field(default_factory=dict)  # by event id, acknowledged
    resend_mismatches: list[str] = field(default_factory=list)  # must stay empty


@dataclass
class Clients:
    stubs: Sequence[pb_grpc.JourneyServiceStub]
    windows: dict[str, Window]
    changed: asyncio.Condition  # a window moved on
    tally: Tally


async def attempt(
    stub: pb_grpc.JourneyServiceStub, event: pb.Event, deadline_s: float
) -> tuple[str, pb.Decision | None]:
    """One call: its outcome (acknowledged, degraded, deadline, refused) and, when answered,
    the decision."""
    try:
        reply = await stub.Decide(pb.DecideRequest(event=event), timeout=deadline_s)
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
            return "deadline", None
        if error.code() in RETRYABLE:
            return "refused", None
        raise AssertionError(f"{event.event_id}: {error.code().name}: {error.details()}") from error
    return ("degraded" if reply.decision.degraded else "acknowledged"), reply.decision


async def until_acknowledged(
    clients: Clients, event: pb.Event, rng: random.Random, *, impatient: bool = True
) -> pb.Decision:
    """Send `event` (same id, same payload) until it is answered not degraded, each attempt
    over any of the connections. An `impatient` client gives some attempts a deadline too short
    to be answered in: they end DEADLINE_EXCEEDED, the event stored or not."""
    customer, calls = event.customer_id, clients.tally.calls
    for number in range(MAX_ATTEMPTS):
        short = impatient and rng.random() < SHORT_DEADLINE_SHARE
        deadline_s = rng.choice(SHORT_DEADLINES_S) if short else DEADLINE_S
        outcome, decision = await attempt(rng.choice(clients.stubs), event, deadline_s)
        calls[customer, outcome] += 1
        if decision is not None and not decision.degraded:
            return decision
        await asyncio.sleep(rng.uniform(0, min(BACKOFF_MAX_S, BACKOFF_S * 2**number)))
    raise AssertionError(f"{event.event_id}: not acknowledged after {MAX_ATTEMPTS} attempts")


def _without_duplicate_flag(decision: pb.Decision) -> pb.Decision:
    copy = pb.Decision()
    copy.CopyFrom(decision)
    copy.duplicate = False
    return copy


async def send_one(clients: Clients, event: pb.Event, rng: random.Random) -> None:
    """One event until acknowledged; then, sometimes, once more, as a client that missed the
    answer would: that must be the original decision, flagged `duplicate`."""
    customer, tally = event.customer_id, clients.tally
    tally.sent[customer] += 1
    decision = await until_acknowledged(clients, event, rng)
    tally.acknowledged[customer] += 1
    tally.stored_before[customer] += decision.duplicate  # an attempt it gave up on was stored
    tally.decisions[event.event_id] = decision
    if rng.random() < RESEND_SHARE:
        tally.resent[customer] += 1
        again = await until_acknowledged(clients, event, rng, impatient=False)
        original = _without_duplicate_flag(again) == _without_duplicate_flag(decision)
        if not (again.duplicate and original):
            tally.resend_mismatches.append(event.event_id)


def _take_next(windows: dict[str, Window], rng: random.Random) -> tuple[str, int, pb.Event] | None:
    """The next event of a customer, picked at random, with room in its window."""
    for customer in rng.sample(list(windows), len(windows)):
        if (taken := windows[customer].take()) is not None:
            return customer, *taken
    return None


async def client_task(clients: Clients, seed: int) -> None:
    """Takes the next event of any customer with room in its window, until none is left."""
    rng = random.Random(seed)
    while True:
        async with clients.changed:
            while (taken := _take_next(clients.windows, rng)) is None:
                if all(window.all_handed_out for window in clients.windows.values()):
                    return
                await clients.changed.wait()
        customer, number, event = taken
        try:
            await send_one(clients, event, rng)
        finally:
            async with clients.changed:
                clients.windows[customer].finish(number)
                clients.changed.notify_all()


async def race(
    replicas: Sequence[Served], plans: dict[str, list[pb.Event]]
) -> tuple[Tally, dict[str, dict[str, float]]]:
    """Every planned event sent by CLIENT_TASKS clients over CONNECTIONS connections, spread over
    the replicas, until acknowledged; then each customer's counters, read through GetCustomer."""
    channels = [_channel(replicas[i % len(replicas)].address) for i in range(CONNECTIONS)]
    clients = Clients(
        [pb_grpc.JourneyServiceStub(channel) for channel in channels],
        {customer: Window(events) for customer, events in plans.items()},
        asyncio.Condition(),
        Tally(),
    )
    try:
        async with asyncio.timeout(LOAD_TIMEOUT_S), asyncio.TaskGroup() as group:
            for task in range(CLIENT_TASKS):
                group.create_task(client_task(clients, seed=task))
        counters = {c: await served_counters(clients.stubs[0], c) for c in plans}
    except TimeoutError:
        done = sum(clients.tally.acknowledged.values())
        raise AssertionError(f"only {done} events acknowledged in {LOAD_TIMEOUT_S:g} s") from None
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))
    return clients.tally, counters


# --- the check ----------------------------------------------------------------------------------


def replayed_counters(events: Sequence[pb.Event], now_ms: int) -> dict[str, float]:
    """The counters of a customer whose `events` are decided one after another by the engine,
    with no server, no Redis and no concurrency; read at `now_ms`."""
    ruleset = retail()
    state = new_state(ruleset)
    for sent in events:
        properties = {name: value.number_value for name, value in sent.properties.items()}
        event = Event(
            sent.event_id, sent.customer_id, sent.type, sent.channel, sent.touchpoint, properties
        )
        _, state = decide(ruleset, state, event, sent.timestamp_ms)
    (journey,) = customer_view(ruleset, state, now_ms).journeys
    return dict(journey.counters)


def distinct_counts(events: Sequence[pb.Event]) -> dict[str, float]:
    """The counters as plain arithmetic over the distinct acknowledged events."""
    by_id = {event.event_id: event for event in events}
    counts = {
        name: float(sum(e.type == kind for e in by_id.values()))
        for name, kind in COUNTED_BY.items()
    }
    name, kind, amount = SPEND
    counts[name] = sum(e.properties[amount].number_value for e in by_id.values() if e.type == kind)
    return counts


async def served_counters(stub: pb_grpc.JourneyServiceStub, customer: str) -> dict[str, float]:
    reply = await stub.GetCustomer(pb.GetCustomerRequest(customer_id=customer), timeout=10)
    (journey,) = reply.customer.journeys
    return dict(journey.counters)


def counter_mismatches(
    plans: dict[str, list[pb.Event]], tally: Tally, served: dict[str, dict[str, float]]
) -> tuple[int, list[str]]:
    """How many counters were compared, and those where what the server counted is not the
    replay of the acknowledged events or not their plain count."""
    read_at_ms = time.time_ns() // 1_000_000
    checked, mismatches = 0, []
    for customer, events in plans.items():
        acknowledged = [e for e in events if e.event_id in tally.decisions]
        replayed = replayed_counters(acknowledged, read_at_ms)
        counted = distinct_counts(acknowledged)
        for name, value in served[customer].items():
            checked += 1
            if not value == replayed[name] == counted[name]:
                mismatches.append(f"{customer} {name}: served {value}, replay {replayed[name]}, "
                                  f"distinct acknowledged {counted[name]}")  # fmt: skip
    return checked, mismatches


OUTCOMES = ("degraded", "deadline", "refused")  # the calls not acknowledged


def print_race_table(customers: Sequence[str], tally: Tally, checked: int) -> None:
    columns = ("customer", "sent", "calls", "acked", "acked dup", *OUTCOMES, "resent")
    print("\n" + " ".join(f"{c:>9}" for c in columns))
    for c in customers:
        calls = sum(n for (customer, _), n in tally.calls.items() if customer == c)
        row = (c, tally.sent[c], calls, tally.acknowledged[c], tally.stored_before[c],
               *(tally.calls[c, outcome] for outcome in OUTCOMES), tally.resent[c])  # fmt: skip
        print(" ".join(f"{value:>9}" for value in row))
    resent = sum(tally.resent.values())
    print(
        f"invariant: each of {checked} counters read through GetCustomer == a single-threaded "
        f"replay of the acknowledged events == distinct acknowledged events of its kind; "
        f"resends answered duplicate with the original decision: "
        f"{resent - len(tally.resend_mismatches)}/{resent} (acked dup: acknowledged as a "
        f"duplicate, an attempt given up on had been stored)"
    )


# --- the tests ----------------------------------------------------------------------------------


async def test_racing_retrying_clients_count_every_acknowledged_event_exactly_once(
    replicas: list[Served],
) -> None:
    rng = random.Random(20260105)
    now_ms = time.time_ns() // 1_000_000
    customers = [f"race-{i}" for i in range(CUSTOMERS)]
    plans = {c: planned_events(c, rng, now_ms) for c in customers}
    tally, counters = await race(replicas, plans)
    checked, mismatches = counter_mismatches(plans, tally, counters)
    print_race_table(customers, tally, checked)
    assert sum(tally.acknowledged.values()) == CUSTOMERS * EVENTS_PER_CUSTOMER
    assert set(counters[customers[0]]) == {*COUNTED_BY, SPEND[0]}, "counters not all checked"
    assert mismatches == [], "a counter is not the replay of the acknowledged events"
    assert tally.resend_mismatches == [], "a resend did not get the original decision back"
    # The race and the retries really happened (else the run proved little):
    assert sum(n for (_, outcome), n in tally.calls.items() if outcome == "deadline") > 0
    assert sum(tally.resent.values()) > 0


async def test_an_event_id_reused_for_another_event_is_refused_and_changes_nothing(
    replicas: list[Served],
) -> None:
    customer = "retry-reused"
    original = pb.Event(event_id="reused-1", customer_id=customer, type="add_to_cart",
                        channel="web")  # fmt: skip
    other = pb.Event(event_id="reused-1", customer_id=customer, type="purchase", channel="web",
                     properties={"amount": pb.Value(number_value=120)})  # fmt: skip
    tally = Tally()
    async with _channel(replicas[0].address) as channel:
        clients = Clients([pb_grpc.JourneyServiceStub(channel)], {}, asyncio.Condition(), tally)
        rng = random.Random(7)
        first = await until_acknowledged(clients, original, rng, impatient=False)
        tally.acknowledged[customer] += 1
        before = await clients.stubs[0].GetCustomer(pb.GetCustomerRequest(customer_id=customer))
        refused = await until_refused(clients, other)
        after = await clients.stubs[0].GetCustomer(pb.GetCustomerRequest(customer_id=customer))
        again = await until_acknowledged(clients, original, rng, impatient=False)
        tally.acknowledged[customer] += 1
    tally.sent[customer] = 3
    print_retry_table(customer, tally)
    assert refused.code() is grpc.StatusCode.ALREADY_EXISTS, refused
    assert "'reused-1'" in (refused.details() or ""), refused.details()
    assert after.customer.journeys == before.customer.journeys  # the reuse changed nothing
    assert after.customer.last_event_ms == before.customer.last_event_ms
    assert after.customer.journeys[0].counters["purchases_365d"] == 0
    assert after.customer.journeys[0].counters["cart_adds_7d"] == 1
    assert again.duplicate
    assert _without_duplicate_flag(again) == _without_duplicate_flag(first)


async def until_refused(clients: Clients, event: pb.Event) -> grpc.aio.AioRpcError:
    """The error `event` is refused with. A degraded answer did not look at the store (a busy
    machine may miss the Redis timeout now and then), so the event is sent again."""
    customer, calls = event.customer_id, clients.tally.calls
    for _ in range(MAX_ATTEMPTS):
        try:
            reply = await clients.stubs[0].Decide(pb.DecideRequest(event=event), timeout=DEADLINE_S)
        except grpc.aio.AioRpcError as error:
            calls[customer, "refused"] += 1
            return error
        assert reply.decision.degraded, f"{event.event_id} accepted again: {reply.decision}"
        calls[customer, "degraded"] += 1
        await asyncio.sleep(BACKOFF_MAX_S)
    raise AssertionError(f"{event.event_id}: still degraded after {MAX_ATTEMPTS} attempts")


def print_retry_table(customer: str, tally: Tally) -> None:
    columns = ("customer", "sent", "acked", "degraded", "refused")
    print("\n" + " ".join(f"{c:>12}" for c in columns))
    row = (customer, tally.sent[customer], tally.acknowledged[customer],
           tally.calls[customer, "degraded"], tally.calls[customer, "refused"])  # fmt: skip
    print(" ".join(f"{value:>12}" for value in row))
    print("invariant: the reused id is refused ALREADY_EXISTS naming it; the customer is "
          "unchanged; the original event still gets its original decision")  # fmt: skip
