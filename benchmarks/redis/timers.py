"""What a pending timer costs in Redis, and how fast the timer loop fires with a million pending.

The customers are shoppers of `rules/retail.yaml` who put something in their cart: its
`abandoned_cart` transition (`after: 30m`) falls due half an hour later. Their states are real:
`decide()` over a short session (two product views, then the cart), timed so that the timer
falls due when wanted, stored with `engine.codec.encode_state`. A few thousand such states are
made, each for its own due time; customers share them (each customer has its own keys, so its
own copy in Redis). Customer ids are UUIDs, as apps send them.

(a) **Memory.** A redis-server of our own (`benchmarks.redis.ceiling.own_redis`: configured as
    the embedded one, AOF fsynced every second; its automatic AOF rewrite turned off, so that
    no fork lands in a measurement). First the due-time index alone: one member per customer,
    `c:<id>` scored at its due time, in the service's shards (`server.store.keys`), by ZADD,
    pipelined; Redis's used memory (less the client and AOF buffers) before and after, per
    member, with MEMORY USAGE of every shard beside it. Then each customer's state hash, blob
    and version with the state's TTL as `commit.lua` writes them (HSET and EXPIRE, pipelined):
    what the state adds per customer (not the decisions hash: `benchmarks.redis.memory` has a
    customer's whole cost).
(b) **Rate.** On that Redis, `customers` pending, the first `due` of them due (in the last ten
    minutes; the others from an hour to 30 days ahead): the service's own `TimerLoop` with the
    service's settings (batch, shards, lease), in this process on uvloop, `turn()` after
    `turn()` (claim, load, decide, commit, settle) until every due timer is fired. Fired per
    second, CPU per timer of this process and of redis-server, and what must hold after: each
    due timer fired once, the others still pending, one outbox entry each. The same due timers
    with nothing else pending (the same Redis, a database of their own) give the rate's
    ceiling; decide() alone on them, in-process, the engine's share.

    python -m benchmarks.redis.timers [--quick]       (prints the figures as JSON)

`benchmarks.timers_cost` adds what the loop costs the Decide hot path and writes RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis
from prometheus_client import REGISTRY

from benchmarks.load.service import RULES_DIR
from benchmarks.redis.ceiling import own_redis
from benchmarks.report.run_figures import TimerMemoryFigures, TimerRateFigures, TimerRedisFigures
from engine.codec import decode_state, encode_state
from engine.compile import Ruleset
from engine.decide import decide
from engine.event import Event
from engine.state import CustomerState, new_state
from engine.timers import next_due_ms, timer_event
from engine.view import customer_view
from server.core.config import Settings
from server.core.event_loop import run as run_on_loop
from server.decisions.active import ActiveRules
from server.decisions.journey_stats import JourneyStats
from server.decisions.learned_rates import LearnedRates
from server.decisions.timers import TimerLoop
from server.rules.rulesource import load_ruleset
from server.store.keys import (
    STATE_BLOB_FIELD,
    STATE_VERSION_FIELD,
    Keyspace,
    due_shard,
    timer_member,
)
from server.store.redis_store import Store, ToLoad

RETAIL = RULES_DIR / "retail.yaml"
SERVICE = Settings()  # the service's defaults: key prefix, shards, batch, lease, state TTL
ALONE_DB = 1  # (b)'s ceiling: the same due timers, nothing else pending
MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
ZADD_MEMBERS = 2_000  # members per ZADD
STATE_CHUNK = 10_000  # customers per pipeline of HSET + EXPIRE
MEMORY_SAMPLE = 1_000  # state hashes whose MEMORY USAGE is read
CHECK_SAMPLE = 200  # fired customers whose stored stage is read back
# A session: (event type, touchpoint, ms before the cart). The cart starts the 30 minutes.
SESSION = (
    ("product_view", "product_page", 240_000),
    ("product_view", "product_page", 120_000),
    ("add_to_cart", "cart", 0),
)
FIRED_STAGE = "cart_abandoned"


@dataclass(frozen=True)
class Plan:
    """Sizes of (a) and (b), and their time bounds (`QUICK`: a check that it works)."""

    customers: int = 1_000_000
    due: int = 20_000
    templates: int = 2_048  # distinct states (and due times) among the customers not due
    due_templates: int = 64  # among the due
    fill_s: float = 120.0  # past this the fill stops, with an error
    loop_s: float = 60.0  # past this a loop run stops, the timers left unfired
    seed: int = 0


# 6,000 over 16 shards: some 375 members each, past the 128 a listpack holds (a skiplist, as
# at a million).
QUICK = Plan(customers=6_000, due=300, templates=64, due_templates=8, fill_s=30.0, loop_s=30.0)


def retail_rules() -> Ruleset:
    return load_ruleset([str(RETAIL)])


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- shoppers with a pending timer ---------------------------------------------------------------


def _session_state(ruleset: Ruleset, cart_ms: int, number: int) -> CustomerState:
    state = new_state(ruleset)
    for step, (kind, touchpoint, before_ms) in enumerate(SESSION):
        event = Event(
            f"timer-bench-{number}-{step}", f"timer-bench-{number}", kind, "web", touchpoint,
            {"category": "shoes", "amount": 40.0},
        )  # fmt: skip
        _, state = decide(ruleset, state, event, cart_ms - before_ms)
    return state


def cart_states(ruleset: Ruleset, due_times: Sequence[int]) -> list[CustomerState]:
    """A state per due time: a shopper whose abandoned cart falls due at exactly that time."""
    if not due_times:
        return []
    probe = next_due_ms(ruleset, _session_state(ruleset, due_times[0], -1))
    if probe is None:
        raise RuntimeError(f"{RETAIL}: a cart left alone sets no timer; this benchmark needs one")
    delay_ms = probe - due_times[0]
    states = []
    for number, due in enumerate(due_times):
        state = _session_state(ruleset, due - delay_ms, number)
        if next_due_ms(ruleset, state) != due:
            raise RuntimeError(f"a session whose cart was at {due - delay_ms} is not due at {due}")
        states.append(state)
    return states


@dataclass(frozen=True)
class Shoppers:
    """Customers with a pending timer, the due ones first: id, due time, stored state."""

    ids: list[str]
    due_ms: list[int]
    blobs: list[bytes]  # shared: one per distinct due time
    due: int


def shoppers(
    ruleset: Ruleset, count: int, due: int, at_ms: int, templates: int, due_templates: int,
    seed: int = 0,
) -> Shoppers:  # fmt: skip
    """`count` shoppers of whom the first `due` are due at `at_ms` (their timers fell due over
    the ten minutes before), the others due from an hour to 30 days after it."""
    past = [at_ms - MINUTE_MS - k * 10 * MINUTE_MS // due_templates for k in range(due_templates)]
    span_ms = 30 * DAY_MS - HOUR_MS
    ahead = [at_ms + HOUR_MS + k * span_ms // templates for k in range(templates)]
    past_blobs = [encode_state(ruleset, s) for s in cart_states(ruleset, past)]
    ahead_blobs = [encode_state(ruleset, s) for s in cart_states(ruleset, ahead)]
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]
    due_ms = [past[i % due_templates] if i < due else ahead[i % templates] for i in range(count)]
    blobs = [past_blobs[i % due_templates] if i < due else ahead_blobs[i % templates]
             for i in range(count)]  # fmt: skip
    return Shoppers(ids, due_ms, blobs, due)


# --- writing them --------------------------------------------------------------------------------


def write_index(
    client: redis.Redis, keys: Keyspace, shards: int, ids: Sequence[str], due_ms: Sequence[int]
) -> None:
    """Each customer's member in its due-time shard, at its due time (ZADD, pipelined)."""
    by_shard: defaultdict[int, dict[str, int]] = defaultdict(dict)
    for customer, due in zip(ids, due_ms, strict=True):
        member = timer_member(customer)
        by_shard[due_shard(member, shards)][member] = due
    for shard, members in by_shard.items():
        pipe = client.pipeline(transaction=False)
        scored = list(members.items())
        for start in range(0, len(scored), ZADD_MEMBERS):
            pipe.zadd(keys.due(shard), dict(scored[start : start + ZADD_MEMBERS]))
        pipe.execute()


def write_states(
    client: redis.Redis, keys: Keyspace, ids: Sequence[str], blobs: Sequence[bytes],
    deadline: float,
) -> None:  # fmt: skip
    """Each customer's state hash as `commit.lua` writes it (blob, version 1, the state TTL),
    HSET and EXPIRE pipelined; TimeoutError past `deadline` (time.monotonic)."""
    for start in range(0, len(ids), STATE_CHUNK):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the fill overran its time: {start:,} of {len(ids):,} states")
        pipe = client.pipeline(transaction=False)
        for customer, blob in zip(ids[start : start + STATE_CHUNK],
                                  blobs[start : start + STATE_CHUNK], strict=True):  # fmt: skip
            state_key = keys.customer(customer).state
            pipe.hset(state_key, mapping={STATE_BLOB_FIELD: blob, STATE_VERSION_FIELD: 1})
            pipe.expire(state_key, SERVICE.state_ttl_s)
        pipe.execute()


def used_memory(client: redis.Redis) -> int:
    """Redis's used memory less the client and AOF buffers: what the data holds (bytes)."""
    info = client.info("memory")
    buffers = int(info.get("mem_clients_normal", 0)) + int(info.get("mem_aof_buffer", 0))
    return int(info["used_memory"]) - buffers


# --- (a) memory ----------------------------------------------------------------------------------


def measure_memory(
    client: redis.Redis, found: Shoppers, deadline: float, seed: int = 0
) -> TimerMemoryFigures:
    """(a): the index, then the states, written into `client`'s empty Redis, and their bytes."""
    keys, shards, count = Keyspace(SERVICE.key_prefix), SERVICE.timer_shards, len(found.ids)
    before = used_memory(client)
    started = time.perf_counter()
    write_index(client, keys, shards, found.ids, found.due_ms)
    index_s = time.perf_counter() - started
    with_index = used_memory(client)
    pipe = client.pipeline(transaction=False)
    for shard in range(shards):
        pipe.memory_usage(keys.due(shard), samples=0)
        pipe.object("encoding", keys.due(shard))
    replies = pipe.execute()
    started = time.perf_counter()
    write_states(client, keys, found.ids, found.blobs, deadline)
    states_s = time.perf_counter() - started
    with_states = used_memory(client)
    sample = random.Random(seed).sample(found.ids, min(MEMORY_SAMPLE, count))
    pipe = client.pipeline(transaction=False)
    for customer in sample:
        pipe.memory_usage(keys.customer(customer).state, samples=0)
        pipe.hstrlen(keys.customer(customer).state, STATE_BLOB_FIELD)
    sizes = pipe.execute()
    return {
        "redis_version": str(client.info("server")["redis_version"]),
        "customers": count,
        "shards": shards,
        "member_chars": round(statistics.fmean(len(timer_member(c)) for c in found.ids), 1),
        "index_bytes_per_timer": round((with_index - before) / count, 1),
        "index_memory_usage_per_timer": round(sum(int(r or 0) for r in replies[0::2]) / count, 1),
        "index_encodings": dict(Counter(_text(e) for e in replies[1::2])),
        "state_bytes_per_customer": round((with_states - with_index) / count, 1),
        "state_memory_usage_mean": round(statistics.fmean(int(s or 0) for s in sizes[0::2]), 1),
        "state_blob_bytes_mean": round(statistics.fmean(int(s) for s in sizes[1::2]), 1),
        "fill_index_s": round(index_s, 2),
        "fill_states_s": round(states_s, 2),
    }


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- (b) rate ------------------------------------------------------------------------------------


def decide_us_per_timer(ruleset: Ruleset, found: Shoppers, repeats: int = 3) -> float:
    """decide() alone on the due customers' timers, in-process: µs per timer, median of runs.
    Each customer's state decoded from its blob, as the loop has it."""
    work = [
        (decode_state(found.blobs[i], ruleset), found.ids[i], found.due_ms[i])
        for i in range(found.due)
    ]
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for state, customer, due_ms in work:
            event = timer_event(ruleset, state, customer, due_ms)
            decide(ruleset, state, event, due_ms, dedupe_window=SERVICE.dedupe_window)
        samples.append((time.perf_counter() - started) * 1e6 / max(1, found.due))
    return round(statistics.median(samples), 2)


def _conflicts() -> float:
    return REGISTRY.get_sample_value("journeyman_timer_conflicts_total") or 0.0


@dataclass(frozen=True)
class LoopRun:
    """Where (b) runs the loop, and for how long at most."""

    url: str
    seconds: float


async def redis_cpu_s(client: Any) -> float:
    """The CPU seconds Redis has used (`INFO cpu`: getrusage, every thread, to the µs; /proc's
    clock ticks are too coarse for a small run)."""
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def fire_due(ruleset: Ruleset, found: Shoppers, where: LoopRun) -> TimerRateFigures:
    """(b): `TimerLoop.turn()` until every due timer of `found` (stored at `where.url`) is
    fired or `where.seconds` pass; then what must hold."""
    settings = replace(SERVICE, redis_url=where.url)
    store = Store.from_settings(settings)
    active = ActiveRules.of(ruleset)
    stats = JourneyStats(store, now_ms)
    loop = TimerLoop(lambda: active, store, stats, LearnedRates(store, now_ms), settings)
    try:
        pending, conflicts = await loop.index.pending(), _conflicts()
        redis_cpu = await redis_cpu_s(store.redis)
        cpu, started = time.process_time(), time.perf_counter()
        turns, idle_turns = 0, 0
        # Bounded by count and time: a turn fires at most batch × shards timers.
        most_turns = found.due // settings.timer_batch + 100
        while loop.fired < found.due and turns < most_turns and idle_turns < 2:
            turns += 1
            idle_turns = idle_turns + 1 if await loop.turn() == 0 else 0
            if time.perf_counter() - started > where.seconds:
                break
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        redis_cpu = await redis_cpu_s(store.redis) - redis_cpu
        await stats.drain()
        pending_after = await loop.index.pending()
        checks = await _checks(store, ruleset, found, loop.fired, pending, pending_after)
    finally:
        await store.close()
    fired = max(1, loop.fired)
    return {
        "pending": pending,
        "due": found.due,
        "fired": loop.fired,
        "turns": turns,
        "seconds": round(elapsed, 3),
        "fired_per_s": round(loop.fired / elapsed, 1) if elapsed > 0 else 0.0,
        "loop_cpu_us_per_timer": round(cpu * 1e6 / fired, 1),
        "redis_cpu_us_per_timer": round(redis_cpu * 1e6 / fired, 1),
        "pending_after": pending_after,
        "conflicts": round(_conflicts() - conflicts),
        "checks": checks,
    }


async def _checks(
    store: Store, ruleset: Ruleset, found: Shoppers, fired: int, pending: int, pending_after: int
) -> dict[str, bool]:
    """What must hold once the loop has fired the due timers."""
    keys = store.keys
    client = store.redis
    outbox = int(await client.xlen(keys.outbox()))
    sample = found.ids[: min(CHECK_SAMPLE, found.due)]
    loaded = await store.load_many([ToLoad(customer, False, ()) for customer in sample])
    at = now_ms()
    stages = Counter(
        customer_view(ruleset, decode_state(one.state, ruleset), at).journeys[0].stage
        for one in loaded
        if one.state is not None
    )
    due_left = 0
    for shard in range(store.timer_shards):
        due_left += int(await client.zcount(keys.due(shard), "-inf", at))
    return {
        "every due timer fired once": fired == found.due,
        "the others still pending": pending_after == pending - found.due,
        "nothing left due": due_left == 0,
        "one outbox entry per timer fired": outbox == fired,
        f"sampled fired customers in {FIRED_STAGE}": stages == Counter({FIRED_STAGE: len(sample)}),
    }


# --- the benchmark -------------------------------------------------------------------------------


def measure(quick: bool = False, plan: Plan | None = None) -> TimerRedisFigures:
    """(a) then (b), on one redis-server of our own, stopped on the way out."""
    plan = plan or (QUICK if quick else Plan())
    ruleset = retail_rules()
    found = shoppers(
        ruleset, plan.customers, plan.due, now_ms(), plan.templates, plan.due_templates, plan.seed
    )
    due = slice(0, plan.due)
    alone = Shoppers(found.ids[due], found.due_ms[due], found.blobs[due], plan.due)
    with own_redis() as server:
        client = redis.Redis(unix_socket_path=str(server.socket))
        # The ceiling's timers in a database of their own: the same Redis, an empty keyspace
        # (in the first one, its keys and decisions would grow the keyspace past 2^20 keys
        # during a run, and Redis's rehashing of it would weigh on that run alone).
        alone_db = redis.Redis(unix_socket_path=str(server.socket), db=ALONE_DB)
        try:
            client.config_set("auto-aof-rewrite-percentage", 0)
            deadline = time.monotonic() + plan.fill_s
            memory = measure_memory(client, found, deadline, plan.seed)
            keys = Keyspace(SERVICE.key_prefix)
            write_states(alone_db, keys, alone.ids, alone.blobs, deadline)
            write_index(alone_db, keys, SERVICE.timer_shards, alone.ids, alone.due_ms)
        finally:
            client.close()
            alone_db.close()
        decide_us = decide_us_per_timer(ruleset, found)  # warms the kernels up too
        where = LoopRun(f"{server.urls['unix']}?db={ALONE_DB}", plan.loop_s)
        rate_alone = run_on_loop(fire_due(ruleset, alone, where))
        rate = run_on_loop(fire_due(ruleset, found, replace(where, url=server.urls["unix"])))
    return {
        "memory": memory,
        "rate": rate,
        "rate_alone": rate_alone,
        "decide_us_per_timer": decide_us,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks.redis.timers`: (a) and (b), printed as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.redis.timers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="6,000 customers, 300 due")
    args = parser.parse_args(argv)
    print(json.dumps(measure(quick=args.quick), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
