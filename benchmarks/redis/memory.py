"""What a customer costs in Redis after a year, and what the server process holds under load.

(a) A few hundred simulated shoppers, each `Identify`-ed with traits and then visiting on days
spread over the last 365 days (short sessions: browse, cart, buy, payment trouble, review), go
through a running service over DecideStream with each event's own timestamp (the service refuses
only timestamps in the future). Then `MEMORY USAGE ... SAMPLES 0` of every key of every customer
(`server/store/keys.py`): the state hash, whose `blob` is the customer's record (the engine state
and the last 16 decisions, compressed together: `server/store/record.py`), and the decisions hash
older versions wrote, which a commit now deletes (so 0 here). The record is read back and
decoded, to say what its compressed bytes hold.

(b) The RSS of the journeyman process and of its embedded Redis, read from /proc every 100 ms
while `benchmarks.load.drive` runs a closed loop of Decide calls.

    python -m benchmarks.redis.memory [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
import redis.asyncio as redis

from benchmarks.load.drive import Plan as LoadPlan
from benchmarks.load.drive import percentile
from benchmarks.load.drive import run as drive
from benchmarks.load.replay import stream_cases
from benchmarks.load.service import RULES_DIR, Running, journeyman
from benchmarks.report.run_figures import (
    CustomerBytesFigures,
    MemoryFigures,
    RssFigures,
    YearFigures,
)
from benchmarks.traffic import CATEGORIES, shopper_traits
from engine.event import PropertyValue
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.protocol.convert import value_to_pb
from server.store.keys import STATE_BLOB_FIELD, Keyspace
from server.store.record import FINGERPRINT_BYTES, decode_record

DAY_MS = 86_400_000
YEAR_DAYS = 365
SESSION_ROOM_MS = 3_600_000
TARGET_BYTES_PER_CUSTOMER = 2048
TARGET_RSS_MIB = 300
RSS_SAMPLE_INTERVAL_S = 0.1
MIB = 1024 * 1024

# One visit: what a shopper does in a session, and how often that kind of visit happens.
VISITS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (5, ("page_view", "product_view", "product_view")),
    (3, ("app_open", "search", "product_view", "add_to_cart")),
    (2, ("page_view", "product_view", "add_to_cart", "checkout_started", "purchase")),
    (1, ("checkout_started", "payment_error", "payment_error", "support_contact")),
    (1, ("email_open", "page_view", "rage_click")),
    (1, ("delivery_confirmed", "review_written")),
)
_TOUCHPOINT = {
    "add_to_cart": "cart", "checkout_started": "checkout", "payment_error": "checkout",
    "purchase": "checkout", "support_contact": "help_center", "product_view": "product_page",
}  # fmt: skip
_CHANNEL_OF = {"support_contact": "call_center", "email_open": "email"}  # else the shopper's own


@dataclass(frozen=True)
class Plan:
    """How many shoppers, visiting on how many days of the year, and how long to load (b)."""

    customers: int = 300
    visits_per_year: int = 40  # days with a visit, spread over the 365
    streams: int = 16
    window: int = 4
    load_s: float = 10.0
    seed: int = 0


QUICK = Plan(customers=40, load_s=3.0)


# --- a year of shoppers --------------------------------------------------------------------------


def _properties(kind: str, rng: random.Random) -> dict[str, PropertyValue]:
    if kind == "page_view":
        return {"load_ms": float(round(rng.lognormvariate(7.0, 0.7)))}
    if kind in ("product_view", "add_to_cart"):
        return {"category": rng.choice(CATEGORIES), "quantity": float(rng.randint(1, 3))}
    if kind == "purchase":
        return {
            "amount": round(rng.lognormvariate(4.0, 0.8), 2),
            "category": rng.choice(CATEGORIES),
        }
    return {}


def _visit(
    rng: random.Random, customer: str, start_ms: int, channel: str
) -> list[pb.DecideRequest]:
    kinds = rng.choices([k for _, k in VISITS], [w for w, _ in VISITS])[0]
    requests, now_ms = [], start_ms
    for kind in kinds:
        now_ms += int(rng.expovariate(1 / 20_000))  # about 20 s between clicks
        via = _CHANNEL_OF.get(kind, channel)
        event = pb.Event(
            event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),  # ids as apps send
            customer_id=customer, type=kind, channel=via,
            touchpoint=_TOUCHPOINT.get(kind, "home"), timestamp_ms=now_ms,
            properties={k: value_to_pb(v) for k, v in _properties(kind, rng).items()},
        )  # fmt: skip
        requests.append(pb.DecideRequest(event=event))
    return requests


def year_of_shoppers(
    customers: int, visits_per_year: int, end_ms: int, seed: int = 0
) -> tuple[list[list[pb.DecideRequest]], dict[str, dict[str, PropertyValue]]]:
    """Each shopper's events in time order, on `visits_per_year` distinct days of the 365 before
    `end_ms` (every event at or before it), and each shopper's traits."""
    rng = random.Random(seed)
    start_ms = end_ms - YEAR_DAYS * DAY_MS
    visits = min(visits_per_year, YEAR_DAYS)
    journeys, traits = [], {}
    for number in range(customers):
        customer = f"cust-{number:06d}"
        traits[customer] = shopper_traits(rng)
        channel = rng.choice(("web", "web", "app"))
        events: list[pb.DecideRequest] = []
        for day in sorted(rng.sample(range(YEAR_DAYS), visits)):
            # Sessions start an hour before midnight at the latest, so their clicks (a few
            # minutes) stay within the day and the last day's within the year.
            session_ms = start_ms + day * DAY_MS + rng.randrange(DAY_MS - SESSION_ROOM_MS)
            events += _visit(rng, customer, session_ms, channel)
        journeys.append(events)
    return journeys, traits


# --- (a) bytes per customer ----------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerBytes:
    """What one customer's keys hold, by `MEMORY USAGE` (bytes, Redis's own overhead included;
    0 for a key the customer does not have), and what its record holds."""

    state_key: int
    decisions_key: int  # the decisions hash of older versions: deleted by the first commit
    record: int  # the state hash's blob: the state and the decision ring, compressed
    state: int  # the engine's msgpack state in the record, uncompressed
    decisions: list[int]  # each decision kept whole: fingerprint + protobuf, uncompressed
    remembered: int  # event ids in the ring (the older ones with their fingerprint alone)
    encodings: tuple[str, str]  # the state key's and the decisions key's ("absent": none)

    @property
    def total(self) -> int:
        return self.state_key + self.decisions_key


async def customer_bytes(client: redis.Redis, customers: Sequence[str]) -> list[CustomerBytes]:
    """`MEMORY USAGE key SAMPLES 0` (exact, every field counted) of each customer's keys, and
    the sizes inside its record."""
    keyspace = Keyspace()  # the service runs with the default key prefix
    measured = []
    for customer in customers:
        keys = keyspace.customer(customer)
        pipe = client.pipeline(transaction=False)
        for key in (keys.state, keys.decisions):
            pipe.memory_usage(key, samples=0)
            pipe.object("encoding", key)
        pipe.hget(keys.state, STATE_BLOB_FIELD)
        state_key, state_encoding, decisions_key, decisions_encoding, blob = await pipe.execute()
        state, ring = decode_record(blob)
        measured.append(
            CustomerBytes(
                int(state_key or 0),
                int(decisions_key or 0),
                len(blob or b""),
                len(state or b""),
                [len(kept) for _, kept in ring.entries if len(kept) > FINGERPRINT_BYTES],
                len(ring.entries),
                (_encoding(state_encoding), _encoding(decisions_encoding)),
            )  # fmt: skip
        )
    return measured


def _encoding(value: bytes | str | None) -> str:
    """OBJECT ENCODING's reply as text; None (no such key) as "absent"."""
    if value is None:
        return "absent"
    return value.decode() if isinstance(value, bytes) else value


def distribution(values: Sequence[float]) -> dict[str, float]:
    """Mean, p50, p99 (nearest rank) and max of `values`."""
    ordered = sorted(values)
    if not ordered:
        return {"mean": float("nan"), "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "mean": round(statistics.fmean(ordered), 1),
        "p50": percentile(ordered, 50.0),
        "p99": percentile(ordered, 99.0),
        "max": ordered[-1],
    }


def bytes_summary(measured: Sequence[CustomerBytes]) -> CustomerBytesFigures:
    """The per-customer figures of (a)."""
    total = distribution([m.total for m in measured])
    record = distribution([m.record for m in measured])
    decisions = [size for m in measured for size in m.decisions]
    return {
        "bytes_per_customer_mean": total["mean"],
        "bytes_per_customer_p50": total["p50"],
        "bytes_per_customer_p99": total["p99"],
        "bytes_per_customer_max": total["max"],
        "state_key_bytes_mean": distribution([m.state_key for m in measured])["mean"],
        "decisions_key_bytes_mean": distribution([m.decisions_key for m in measured])["mean"],
        "record_bytes_mean": record["mean"],
        "record_bytes_max": record["max"],
        "engine_state_bytes_mean": distribution([m.state for m in measured])["mean"],
        "decision_bytes_mean": distribution(decisions)["mean"],
        "decisions_kept_mean": distribution([len(m.decisions) for m in measured])["mean"],
        "decisions_kept_max": max((len(m.decisions) for m in measured), default=0),
        "events_remembered_max": max((m.remembered for m in measured), default=0),
        "key_encodings": dict(Counter(f"{s}/{d}" for s, d in (m.encodings for m in measured))),
        "target_bytes_per_customer": TARGET_BYTES_PER_CUSTOMER,
        "within_target": total["p99"] <= TARGET_BYTES_PER_CUSTOMER,
    }


async def _identify(address: str, traits: dict[str, dict[str, PropertyValue]]) -> None:
    """Set every shopper's traits first, as a login would (they are part of the state)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.JourneyServiceStub(channel)
        slots = asyncio.Semaphore(32)

        async def one(customer: str, values: dict[str, PropertyValue]) -> None:
            request = pb.IdentifyRequest(
                customer_id=customer, traits={k: value_to_pb(v) for k, v in values.items()}
            )
            async with slots:
                await stub.Identify(request)

        await asyncio.gather(*(one(c, v) for c, v in traits.items()))


async def year_in_redis(running: Running, plan: Plan) -> YearFigures:
    """(a): a year of shoppers through the service, then their keys' memory."""
    end_ms = time.time_ns() // 1_000_000 - 60_000
    journeys, traits = year_of_shoppers(plan.customers, plan.visits_per_year, end_ms, plan.seed)
    await _identify(running.address, traits)
    replayed = await stream_cases(
        running.address, journeys, lambda request: request,
        streams=plan.streams, window=plan.window,
    )  # fmt: skip
    client = redis.Redis.from_url(running.embedded_redis_url())
    try:
        measured = await customer_bytes(client, list(traits))
    finally:
        await client.aclose()
    return {
        "customers": plan.customers,
        "events": replayed.answered,
        "events_per_customer_mean": round(replayed.answered / max(1, plan.customers), 1),
        "visit_days_per_customer": min(plan.visits_per_year, YEAR_DAYS),
        "errors": dict(replayed.errors),
        "degraded": replayed.degraded,
        **bytes_summary(measured),
    }


# --- (b) RSS under load --------------------------------------------------------------------------


def rss_bytes(pid: int) -> int | None:
    """Resident set size of `pid` (VmRSS in /proc/<pid>/status), None once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


@dataclass
class RssTrace:
    """RSS samples of one process, in bytes."""

    samples: list[int]

    def before_peak_end_mib(self) -> tuple[float, float, float] | None:
        if not self.samples:
            return None
        before, peak, end = self.samples[0], max(self.samples), self.samples[-1]
        return round(before / MIB, 1), round(peak / MIB, 1), round(end / MIB, 1)


async def _sample(pids: dict[str, int], traces: dict[str, RssTrace], stop: asyncio.Event) -> None:
    while True:
        for name, pid in pids.items():
            if (rss := rss_bytes(pid)) is not None:
                traces[name].samples.append(rss)
        try:
            await asyncio.wait_for(stop.wait(), RSS_SAMPLE_INTERVAL_S)
            return
        except TimeoutError:
            continue


async def rss_under_load(running: Running, load_s: float) -> RssFigures:
    """(b): the server's and its Redis's RSS while a closed loop of Decide runs `load_s`."""
    pids = {"server": running.pid}
    if (redis_pid := running.redis_pid()) is not None:
        pids["redis"] = redis_pid
    traces = {name: RssTrace([]) for name in pids}
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample(pids, traces, stop))
    await asyncio.sleep(RSS_SAMPLE_INTERVAL_S)  # a "before" sample
    result = await drive(running.address, LoadPlan("unary", 64, None, 1, 1.0, load_s))
    stop.set()
    await sampler
    figures: RssFigures = {
        "load_calls_per_s": round(result["rate"], 1),
        "load_errors": result["errors"],
        "target_rss_mib": TARGET_RSS_MIB,
        "server_within_target": True,  # below, once the peak is known
    }
    if server := traces["server"].before_peak_end_mib():
        before, peak, end = server
        figures["server_rss_mib_before"], figures["server_rss_mib_peak"] = before, peak
        figures["server_rss_mib_end"] = end
        figures["server_within_target"] = peak <= TARGET_RSS_MIB
    if "redis" in traces and (embedded := traces["redis"].before_peak_end_mib()):
        before, peak, end = embedded
        figures["redis_rss_mib_before"], figures["redis_rss_mib_peak"] = before, peak
        figures["redis_rss_mib_end"] = end
    return figures


# --- the benchmark -------------------------------------------------------------------------------


def measure(quick: bool = False, plan: Plan | None = None) -> MemoryFigures:
    """(a) then (b) on one fresh service running the retail journey."""
    plan = plan or (QUICK if quick else Plan())

    async def both(running: Running) -> MemoryFigures:
        at_start = round((rss_bytes(running.pid) or 0) / MIB, 1)
        year = await year_in_redis(running, plan)
        rss = await rss_under_load(running, plan.load_s)
        return {"server_rss_mib_at_start": at_start, **year, **rss}

    with journeyman(rules=RULES_DIR / "retail.yaml") as running:
        return asyncio.run(both(running))


def format_table(figures: MemoryFigures) -> str:
    """The figures as a small table."""
    kib = 1024
    rows = [
        ("customers", f"{figures['customers']} × {figures['visit_days_per_customer']} visit days"
                      f" ({figures['events_per_customer_mean']:g} events each), errors"
                      f" {figures['errors'] or 0}, degraded {figures['degraded']}"),
        ("per customer", f"mean {figures['bytes_per_customer_mean'] / kib:.2f} KiB, p99"
                         f" {figures['bytes_per_customer_p99'] / kib:.2f} KiB, max"
                         f" {figures['bytes_per_customer_max'] / kib:.2f} KiB (target"
                         f" {TARGET_BYTES_PER_CUSTOMER / kib:g} KiB)"),
        ("  state key", f"{figures['state_key_bytes_mean']:,.0f} B (record"
                        f" {figures['record_bytes_mean']:,.0f} B, max"
                        f" {figures['record_bytes_max']:,.0f} B)"),
        ("  record", f"state {figures['engine_state_bytes_mean']:,.0f} B,"
                     f" {figures['events_remembered_max']} event ids, the last"
                     f" {figures['decisions_kept_max']} with their decisions of"
                     f" {figures['decision_bytes_mean']:,.0f} B, before zstd"),
        ("  decisions key", f"{figures['decisions_key_bytes_mean']:,.0f} B (older versions'"
                            " layout: the first commit deletes it)"),
        ("  encodings", ", ".join(f"{k}: {v}" for k, v in figures["key_encodings"].items())),
        ("load", f"{figures['load_calls_per_s']:,.0f} calls/s, errors {figures['load_errors']}"),
    ]  # fmt: skip
    rss = cast(Mapping[str, float], figures)  # the `<process>_rss_mib_*` figures, by name
    for name in ("server", "redis"):
        if f"{name}_rss_mib_peak" in rss:
            rows.append((f"{name} RSS", f"before {rss[f'{name}_rss_mib_before']} MiB, peak"
                                        f" {rss[f'{name}_rss_mib_peak']} MiB, end"
                                        f" {rss[f'{name}_rss_mib_end']} MiB"))  # fmt: skip
    return "\n".join(f"{name:<16} {value}" for name, value in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks.redis.memory`: one run, printed as a table or JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis.memory", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer shoppers, a shorter load")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    figures = measure(quick=args.quick)
    print(json.dumps(figures) if args.json else format_table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
