"""Where a decision's CPU goes (issue 16): a decision in the service, whole and in its parts, and
a Redis round trip's client CPU, measured in one process on uvloop on the retail rules against a
redis-server of its own (`benchmarks.redis.ceiling.own_redis`, over its unix socket).

- **A round trip**: `benchmarks.redis.round_trip` (no client library, the service's Pipeliner,
  redis-py's pipeline and pool).
- **The whole**: the service's `Decider`, built as `server.runtime.app.create_server` builds it
  (a `Store.from_settings` under a key prefix of its own, `LiveRules(...).active`), no gRPC:
  `Decider.decide` awaited one event after the other, and `Decider.decide_batch` in calls of
  `batch` events. The shoppers of `benchmarks.load.drive.retail_requests`, every one of them
  decided first (`warm_up`), so that each event finds its customer in the store's state cache as
  a busy server finds its regulars. The requests are validated (`decide_input`) before each
  timed run: validation is one of the parts.
- **The parts**: the calls `server.decisions.round` makes for an event, each alone in a tight
  loop over events of the same shoppers on their cached states, with the arguments the round
  gives them (`Decided`): validation, the engine, the answer and its ring entry, the state's
  encoding, the timer and outbox write, the record (msgpack + zstd of the state and the ring), and
  one commit (`Store.commit_many` of one ToCommit: its record, the EVALSHA round trip, the state
  cache), which the report takes the record out of.

CPU of this process per event (`time.process_time`), the least of `repeats` timed runs after an
untimed one, the collector paused (`benchmarks.engine.timing.least_cpu_us`). Every key written is
under a prefix of this run's own, deleted at the end; the redis-server is stopped by its pid.

    python -m benchmarks.decision_parts [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import itertools
import math
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import redis as sync_redis

from benchmarks.calls import CallCounter, CallCounts
from benchmarks.engine.timing import least_cpu_us
from benchmarks.load.drive import retail_requests
from benchmarks.load.service import RULES_DIR
from benchmarks.redis import round_trip
from benchmarks.redis.ceiling import OwnRedis, own_redis
from benchmarks.report.run_figures import DecisionPartsUs, PartsFigures
from engine.codec import encode_state
from engine.decide import decide
from engine.decision import Decision
from engine.propensity import Propensities
from engine.state import CustomerState
from journeyman.v1 import journeyman_pb2 as pb
from server.core.config import Settings
from server.core.event_loop import run as run_on_loop
from server.decisions.active import ActiveRules, decode_or_new
from server.decisions.decider import Decider
from server.decisions.outbox import event_timer_write
from server.decisions.round import Outcome
from server.protocol.convert import DecideInput, decide_input, decision_to_pb
from server.protocol.dedupe import kept_decision
from server.rules.reload import LiveRules
from server.rules.rulesource import load_ruleset
from server.store.record import Ring, encode_record
from server.store.redis_store import CommitOutcome, Loaded, Store, TimerWrite, ToCommit, ToLoad

RUN_NAME: Final = "parts"
RETAIL = RULES_DIR / "retail.yaml"
DEADLINE_S = 1.0  # a Decide call's deadline, as a caller's gRPC deadline gives it
WARM_UP_EVENTS_PER_CUSTOMER = 20  # bounds the warm-up: by then every customer came by
# One call at a time, a caller's next event comes a network round trip after the last answer,
# so the decider serves it alone (after `server.core.coalescer.QUIET_S`); this pause does too.
LONE_CALL_GAP_S = 0.001


@dataclass(frozen=True)
class Plan:
    """The sizes of one run (`QUICK`: a check that it works, not figures to quote)."""

    customers: int = 300
    events: int = 2_000  # per timed run: of Decider.decide, and of each part
    batch: int = 200
    batches: int = 10  # DecideBatch calls per timed run
    round_trips: int = 3_000  # per timed run, per client
    repeats: int = 3
    measure_s: float = 25.0  # past this, each measurement left makes one timed run only
    counted_events: int = 200  # whose calls are counted (`calls_per_event`)
    seed: int = 0


QUICK = Plan(events=400, batches=3, round_trips=600, measure_s=6.0)


# --- the shoppers' events ------------------------------------------------------------------------


@dataclass(frozen=True)
class Events:
    """The retail shoppers' next Decide requests, every event id new, and what the servicer
    validates them with: the settings and the decider's clock."""

    requests: Iterator[pb.DecideRequest]
    settings: Settings
    clock_ms: Callable[[], int]

    def sent(self, count: int) -> list[pb.DecideRequest]:
        return list(itertools.islice(self.requests, count))

    def checked(self, requests: Sequence[pb.DecideRequest]) -> list[DecideInput]:
        """`requests` validated as the servicer validates them."""
        at_ms = self.clock_ms()
        return [decide_input(request, at_ms, self.settings) for request in requests]

    def validated(self, count: int) -> list[DecideInput]:
        return self.checked(self.sent(count))


def _stored(outcomes: Sequence[Outcome]) -> None:
    """Raise unless every event was decided and stored: a degraded or refused answer took
    another path than the one measured."""
    for outcome in outcomes:
        if not isinstance(outcome, pb.Decision) or outcome.degraded:
            raise RuntimeError(f"an event was not stored ({outcome!r}): the figures would not be")


# --- the whole -----------------------------------------------------------------------------------


async def warm_up(decider: Decider, events: Events, plan: Plan) -> None:
    """Decide events in DecideBatch calls until every customer has been decided once (at most
    WARM_UP_EVENTS_PER_CUSTOMER events each), so that each is in the store's state cache."""
    seen: set[str] = set()
    for _ in range(math.ceil(WARM_UP_EVENTS_PER_CUSTOMER * plan.customers / plan.batch)):
        inputs = events.validated(plan.batch)
        _stored(await decider.decide_batch(inputs, None))
        seen.update(request.event.customer_id for request in inputs)
        if len(seen) >= plan.customers:
            return


async def one_at_a_time_us(decider: Decider, events: Events, plan: Plan, until_s: float) -> float:
    """`Decider.decide`, each event awaited before the next is sent: CPU µs per event."""

    async def decide_each(inputs: list[DecideInput]) -> int:
        for request in inputs:
            _stored([await decider.decide(request, DEADLINE_S)])
        return len(inputs)

    return await least_cpu_us(
        decide_each, lambda: events.validated(plan.events), plan.repeats, until_s=until_s
    )


async def calls_per_event(decider: Decider, events: Events, count: int) -> CallCounts:
    """The Python and C calls of validation and `Decider.decide` per event (`benchmarks.calls`),
    one event at a time, each sent LONE_CALL_GAP_S after the last was answered, as a caller one
    call at a time sends it: counted, not timed."""
    counter = CallCounter()
    for request in events.sent(count):
        await asyncio.sleep(LONE_CALL_GAP_S)
        with counter:
            valid = decide_input(request, events.clock_ms(), events.settings)
            outcome = await decider.decide(valid, DEADLINE_S)
        _stored([outcome])
    return counter.per_event(count)


async def in_batches_us(decider: Decider, events: Events, plan: Plan, until_s: float) -> float:
    """`Decider.decide_batch` in calls of `plan.batch` events: CPU µs per event."""

    async def decide_batches(batches: list[list[DecideInput]]) -> int:
        for inputs in batches:
            _stored(await decider.decide_batch(inputs, None))
        return sum(map(len, batches))

    def batches() -> list[list[DecideInput]]:
        return [events.validated(plan.batch) for _ in range(plan.batches)]

    return await least_cpu_us(decide_batches, batches, plan.repeats, until_s=until_s)


# --- the parts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundArgs:
    """What `server.decisions.round` hands an event's calls besides the event itself."""

    active: ActiveRules
    store: Store
    propensities: Propensities | None


@dataclass(frozen=True)
class Decided:
    """One event taken through the calls of `server.decisions.round` one by one, untimed: the
    arguments each part is then timed with."""

    request: pb.DecideRequest
    input: DecideInput
    loaded: Loaded
    state: CustomerState  # as loaded
    decision: Decision
    after: CustomerState  # the engine's new state
    answer: pb.Decision
    kept: bytes  # the answer's ring entry
    encoded: bytes  # the new state, encoded
    timer: TimerWrite | None
    ring: Ring  # the loaded ring with this event's entry, as the commit writes it


def engine_part(
    at: RoundArgs, request: DecideInput, state: CustomerState
) -> tuple[Decision, CustomerState]:
    return decide(
        at.active.ruleset, state, request.event, request.timestamp_ms,
        top_k=request.top_k, explain=request.explain,
        dedupe_window=at.store.dedupe_window, propensities=at.propensities,
    )  # fmt: skip


def answer_part(
    at: RoundArgs, request: DecideInput, state: CustomerState, decision: Decision
) -> tuple[pb.Decision, bytes]:
    event = request.event
    answer = decision_to_pb(
        decision, at.active.tables, customer_id=event.customer_id, event_id=event.event_id,
        decided_at_ms=state.applied_at_ms(request.timestamp_ms), degraded=False,
    )  # fmt: skip
    return answer, kept_decision(request.fingerprint, answer)


def state_part(at: RoundArgs, after: CustomerState) -> bytes:
    return encode_state(at.active.ruleset, after)


def timer_part(at: RoundArgs, after: CustomerState, answer: pb.Decision) -> TimerWrite | None:
    return event_timer_write(at.store, at.active.ruleset, after, (answer,))


def _decided(
    at: RoundArgs, request: pb.DecideRequest, checked: DecideInput, one: Loaded
) -> Decided:
    state = decode_or_new(at.active.ruleset, one.state)
    decision, after = engine_part(at, checked, state)
    answer, kept = answer_part(at, checked, state, decision)
    ring = one.ring.then(
        [(checked.event.event_id, kept)], at.store.dedupe_window, at.store.decisions_kept
    )
    return Decided(request, checked, one, state, decision, after, answer, kept,
                   state_part(at, after), timer_part(at, after, answer), ring)  # fmt: skip


async def decided_events(at: RoundArgs, events: Events, count: int) -> list[Decided]:
    """The shoppers' next `count` events, each decided on its customer's cached state."""
    sent = events.sent(count)
    checked = events.checked(sent)
    wanted = [ToLoad(c.event.customer_id, c.anonymous, [c.event.event_id]) for c in checked]
    loaded = await at.store.load_many(wanted, from_cache=True)
    return [_decided(at, *one) for one in zip(sent, checked, loaded, strict=True)]


def _each(part: Callable[[Decided], object]) -> Callable[[list[Decided]], Awaitable[int]]:
    """A timed run of `part` on each event."""

    async def run(samples: list[Decided]) -> int:
        for one in samples:
            part(one)
        return len(samples)

    return run


def commits(at: RoundArgs) -> Callable[[list[Decided]], Awaitable[int]]:
    """A timed run of one commit per event (`Store.commit_many` of one ToCommit, as the round
    builds it), each at its customer's current version, so that every one is COMMITTED."""
    versions: dict[str, int] = {}

    async def run(samples: list[Decided]) -> int:
        for one in samples:
            customer, request = one.input.event.customer_id, one.input
            expected = versions.get(customer, one.loaded.version)
            (result,) = await at.store.commit_many([ToCommit(
                customer, request.anonymous, expected, one.encoded,
                [(request.event.event_id, one.kept)], (), one.timer, one.loaded.ring,
                (at.active.ruleset.version, one.after),
            )])  # fmt: skip
            if result.outcome is not CommitOutcome.COMMITTED:
                raise RuntimeError(f"a commit was refused ({result.outcome}): not the path timed")
            versions[customer] = result.version
        return len(samples)

    return run


async def parts_us(at: RoundArgs, events: Events, plan: Plan, until_s: float) -> DecisionPartsUs:
    """Each part alone, CPU µs per event, on `plan.events` events of the shoppers."""
    samples = await decided_events(at, events, plan.events)
    settings, clock_ms = events.settings, events.clock_ms

    async def timed(part: Callable[[Decided], object]) -> float:
        return await least_cpu_us(_each(part), lambda: samples, plan.repeats, until_s=until_s)

    return {
        "validation": await timed(lambda one: decide_input(one.request, clock_ms(), settings)),
        "engine": await timed(lambda one: engine_part(at, one.input, one.state)),
        "answer": await timed(lambda one: answer_part(at, one.input, one.state, one.decision)),
        "state": await timed(lambda one: state_part(at, one.after)),
        "timer": await timed(lambda one: timer_part(at, one.after, one.answer)),
        "record": await timed(lambda one: encode_record(one.encoded, one.ring)),
        "commit": await least_cpu_us(commits(at), lambda: samples, plan.repeats, until_s=until_s),
    }


# --- the run -------------------------------------------------------------------------------------


def decider_of(settings: Settings, url: str) -> tuple[Decider, Store, LiveRules]:
    """The Decider, its Store and its rules, as `server.runtime.app.create_server` builds them."""
    store = Store.from_settings(settings, url)
    live = LiveRules(load_ruleset([str(RETAIL)]), [str(RETAIL)])
    decider = Decider(
        live.active, store, conflict_retries=settings.conflict_retries,
        redis_timeout_s=settings.redis_timeout_ms / 1000,
    )  # fmt: skip
    return decider, store, live


async def _measure(
    server: OwnRedis, settings: Settings, plan: Plan, started_s: float
) -> PartsFigures:
    until_s = started_s + plan.measure_s
    trips = await round_trip.measure(
        server.socket, settings.key_prefix, plan.round_trips, plan.repeats, until_s
    )
    decider, store, live = decider_of(settings, server.urls["unix"])
    try:
        events = Events(retail_requests(plan.customers, plan.seed), settings, decider.now_ms)
        await warm_up(decider, events, plan)
        active = live.active()
        at = RoundArgs(active, store, decider.learned_rates.current(active.ruleset))
        return {
            "plan": {
                "customers": plan.customers,
                "events": plan.events,
                "batch": plan.batch,
                "batches": plan.batches,
                "round_trips": plan.round_trips,
                "repeats": plan.repeats,
                "counted_events": plan.counted_events,
            },
            "redis_version": server.version,
            "round_trip_us": trips,
            "decide_us": await one_at_a_time_us(decider, events, plan, until_s),
            "calls_per_event": await calls_per_event(decider, events, plan.counted_events),
            "decide_batch_us": await in_batches_us(decider, events, plan, until_s),
            "parts_us": await parts_us(at, events, plan, until_s),
            "seconds": round(time.perf_counter() - started_s, 1),
        }
    finally:
        await decider.drain()
        await store.close()


def delete_keys_under(url: str, prefix: str) -> None:
    """Every key under `prefix` deleted (this run's own: no other key is touched)."""
    with sync_redis.Redis.from_url(url) as client:
        for key in client.scan_iter(match=f"{prefix}*", count=1_000):
            client.delete(key)


def measure(quick: bool = False, plan: Plan | None = None) -> PartsFigures:
    """Every figure of the module docstring."""
    plan = plan or (QUICK if quick else Plan())
    started_s = time.perf_counter()
    settings = Settings(key_prefix=f"jmparts:{uuid.uuid4().hex}:")
    with own_redis() as server:
        try:
            return run_on_loop(_measure(server, settings, plan, started_s), "uvloop")
        finally:
            delete_keys_under(server.urls["unix"], settings.key_prefix)


# --- the command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.report.parts import decision_parts
    from benchmarks.report.section_cli import section_main

    return section_main(
        argv, prog="python -m benchmarks.decision_parts", doc=__doc__, run=RUN_NAME,
        measure=lambda quick: measure(quick=quick), section=decision_parts,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
