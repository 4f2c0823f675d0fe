"""Redis itself, for the commands the service sends per event: its ceiling for Decide.

Per event the service sends (`server/store/redis_store.py`) a load, `HMGET state blob version`
(none when the customer's state is in the server's state cache), and a commit, `EVALSHA` of
`server/store/lua/commit.lua` (compare the version, write the new record and version, refresh the
TTL, delete the decisions hash older versions wrote). The record, the state hash's `blob`, is the
engine state and the decisions kept for the customer's last 16 events, compressed together by the
server (`server/store/record.py`): Redis moves it as opaque bytes. This runs those commands
against a redis-server of our own (the Debian binary, configured like the embedded one: AOF,
fsync every second), over a unix socket as the embedded Redis is reached, and over TCP:

  (a) redis-benchmark, one command at a time (it cannot carry a version from a load to a
      commit), 64 connections, without and with pipelining; the commit's rate alone is the
      ceiling of events whose state the server has cached;
  (b) redis-py asyncio through the service's own `Store.load` and `Store.commit`, 64 events at
      once: exactly what the service sends on a state-cache miss (a load every event), the
      record decoded and encoded by the Store, with whatever batching the Store itself does;
  (c) redis-py asyncio with N concurrent events sharing a pipeline (one pipeline of N loads, then
      one of N commits of a ready-made record), 64 events in flight in all, for N in 1, 16, 64.

    python -m benchmarks.redis.ceiling [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis as sync_redis

from benchmarks.ports import free_port
from benchmarks.report.run_figures import RedisBenchmarkCommand, RedisCeilingFigures, RedisPyRun
from server.core.config import Settings
from server.store.connection import connect
from server.store.keys import STATE_BLOB_FIELD, STATE_VERSION_FIELD, Keyspace
from server.store.record import EMPTY_RING, EVENT_KEY_BYTES, FINGERPRINT_BYTES, encode_record
from server.store.redis_store import (
    COMMIT_SCRIPT,
    Store,
    commit_script_args,
    new_version,
)

CONCURRENCY = 64
COMMANDS_PER_EVENT = 2  # HMGET + EVALSHA
BATCH_SIZES = (1, 16, 64)
SERVICE = Settings()  # the service's defaults: key prefix, state TTL, decisions kept
STATE_TTL_S = SERVICE.state_ttl_s
FRESH_KEY_TTL_S = 5  # redis-benchmark's commits write new keys; let them go soon
START_TIMEOUT_S = 10.0
WARMUP_S = 0.5
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PREFIX = SERVICE.key_prefix


@dataclass(frozen=True)
class Plan:
    """Sizes and lengths of one run."""

    customers: int = 4096  # each with a full ring already, as after a while in service
    # The record of a year-old retail customer (`benchmarks.redis.memory`: 1.1 KB mean, 1.5 KB
    # at most), compressed from its engine state, 16 event ids and the last 8 decisions;
    # uncompressed sizes:
    blob_bytes: int = 1130
    state_bytes: int = 1170
    decision_bytes: int = 110  # fingerprint + protobuf decision
    seconds: float = 4.0  # per redis-py measurement
    benchmark_requests: int = 100_000  # per redis-benchmark read measurement
    benchmark_commits: int = 30_000  # per redis-benchmark commit measurement
    benchmark_pipelines: tuple[int, ...] = (1, 16)


QUICK = Plan(customers=1024, seconds=1.5, benchmark_requests=20_000, benchmark_commits=5_000)


# --- a redis-server of our own -------------------------------------------------------------------


@dataclass(frozen=True)
class OwnRedis:
    """A redis-server this benchmark started: its pid and both ways to reach it."""

    pid: int
    port: int
    socket: Path
    version: str

    @property
    def urls(self) -> dict[str, str]:
        return {"unix": f"unix://{self.socket}", "tcp": f"redis://127.0.0.1:{self.port}"}


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError(
            "no redis-server on PATH; install it (apt-get install redis-server)"
        )
    return binary


@contextmanager
def own_redis() -> Iterator[OwnRedis]:
    """redis-server on a free loopback port and a unix socket in a temporary folder, configured
    as the embedded one (`server/runtime/embedded_redis.py`: AOF, fsync every second, no RDB),
    stopped by its pid on the way out."""
    with tempfile.TemporaryDirectory(prefix="jm-redis-ceiling-") as tmp:
        folder, port = Path(tmp), free_port()
        socket_path = folder / "redis.sock"
        command = [
            redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
            "--unixsocket", str(socket_path), "--unixsocketperm", "700", "--dir", str(folder),
            "--daemonize", "no", "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--logfile", str(folder / "redis.log"),
        ]  # fmt: skip
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            version = _wait_for_ping(socket_path, process, folder / "redis.log")
            yield OwnRedis(process.pid, port, socket_path, version)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_ping(socket_path: Path, process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited {process.returncode}:\n{log.read_text()}")
        try:
            with sync_redis.Redis(unix_socket_path=str(socket_path)) as client:
                return str(client.info("server")["redis_version"])
        except (sync_redis.ConnectionError, OSError):
            time.sleep(0.05)
    raise RuntimeError(
        f"redis-server did not answer within {START_TIMEOUT_S:g} s:\n{log.read_text()}"
    )


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid`, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


# --- the customers and their commands ------------------------------------------------------------


def customer_id(number: int) -> str:
    """Twelve digits: the spelling of redis-benchmark's `__rand_int__`, so its commands hit
    the customers written here."""
    return f"{number:012d}"


def event_id(number: int) -> str:
    """Event `number` as an id as long as the UUIDs apps send (36 characters)."""
    return f"{number:036d}"


def commit_args(
    version: int, blob: bytes | str, ttl_s: int = STATE_TTL_S, new: int | None = None
) -> list[Any]:
    """commit.lua's ARGV for one event, exactly as the Store builds them (the new version a
    fresh token as the Store draws it, unless `new` gives it)."""
    return commit_script_args(version, new_version() if new is None else new, blob, ttl_s=ttl_s)


@dataclass(frozen=True)
class Payload:
    """What a customer's commits write: a state and a kept decision, and the record of that
    state with a full ring of such decisions."""

    state: bytes
    decision: bytes
    record: bytes


def payload(plan: Plan) -> Payload:
    """A state and a kept decision of the plan's sizes whose record compresses to about
    `plan.blob_bytes`: random bytes for what does not compress in a real record, zeros for what
    does, so that zstd gets as many bytes as in the service, and Redis stores as many."""
    decision = os.urandom(FINGERPRINT_BYTES) + bytes(plan.decision_bytes - FINGERPRINT_BYTES)
    events = [(os.urandom(EVENT_KEY_BYTES).hex(), decision) for _ in range(SERVICE.dedupe_window)]
    ring = EMPTY_RING.then(events, SERVICE.dedupe_window, SERVICE.decisions_kept)
    guess = plan.blob_bytes - len(encode_record(b"", ring))
    state = _state(plan.state_bytes, guess)
    # The guess leaves out what zstd adds to the random bytes' own length: take it off once.
    state = _state(plan.state_bytes, guess - len(encode_record(state, ring)) + plan.blob_bytes)
    return Payload(state, decision, encode_record(state, ring))


def _state(size: int, random_bytes: int) -> bytes:
    random_bytes = min(size, max(0, random_bytes))
    return os.urandom(random_bytes) + bytes(size - random_bytes)


def populate(url: str, plan: Plan, record: bytes) -> list[str]:
    """Write every customer's record through commit.lua, as a first commit does; the
    customers."""
    keyspace = Keyspace(PREFIX)
    customers = []
    with sync_redis.Redis.from_url(url) as client:
        sha = client.script_load(COMMIT_SCRIPT)
        for first in range(0, plan.customers, 256):
            pipe = client.pipeline(transaction=False)
            chosen = [customer_id(n) for n in range(first, min(first + 256, plan.customers))]
            for customer in chosen:
                keys = keyspace.customer(customer)
                pipe.evalsha(sha, len(keys.all()), *keys.all(), *commit_args(0, record))
            _check_committed(pipe.execute(raise_on_error=False))
            customers += chosen
    return customers


def _check_committed(replies: list[Any]) -> None:
    refused = [r for r in replies if isinstance(r, Exception) or r[0] != b"COMMITTED"]
    if refused:
        raise RuntimeError(
            f"commit.lua did not commit ({refused[0]!r}): compare its header with"
            " server/store.commit_script_args"
        )


# --- (a) redis-benchmark -------------------------------------------------------------------------


def benchmark_commands(sha: str, record_bytes: int) -> dict[str, list[str]]:
    """The service's per-event commands as redis-benchmark arguments (`__rand_int__` picks a
    customer), the commit's blob `record_bytes` long. Commits go to new keys (a random customer
    among 10^9, version 0): redis-benchmark cannot carry each customer's version from one call
    to the next, and a stale version would only measure the cheap CONFLICT path."""
    customer = Keyspace(PREFIX).customer("__rand_int__")
    fresh = Keyspace("jmnew:").customer("__rand_int__")
    # Text of the record's length: a command-line argument cannot hold its NUL bytes, and
    # Redis copies a blob without looking inside.
    commit = commit_args(0, "b" * record_bytes, FRESH_KEY_TTL_S)
    return {
        "HMGET state": ["HMGET", customer.state, STATE_BLOB_FIELD, STATE_VERSION_FIELD],
        "EVALSHA commit": ["EVALSHA", sha, str(len(fresh.all())), *fresh.all(), *map(str, commit)],
    }


def redis_benchmark(
    server: OwnRedis, kind: str, command: Sequence[str], requests: int, pipeline: int, keys: int
) -> RedisBenchmarkCommand:
    """One redis-benchmark run: requests/s, p50 and p99 latency (ms), its own and Redis's CPU."""
    where = (
        ["-s", str(server.socket)]
        if kind == "unix"
        else ["-h", "127.0.0.1", "-p", str(server.port)]
    )
    binary = shutil.which("redis-benchmark")
    if binary is None:
        raise FileNotFoundError(
            "no redis-benchmark on PATH; it comes with redis-server (redis-tools)"
        )
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before_redis = process_cpu_s(server.pid)
    output = subprocess.run(
        [binary, *where, "-c", str(CONCURRENCY), "-n", str(requests), "-P", str(pipeline),
         "-r", str(keys), "--csv", *command],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    redis_cpu_s = process_cpu_s(server.pid) - before_redis
    client_cpu_s = (after_children.ru_utime + after_children.ru_stime) - (
        before_children.ru_utime + before_children.ru_stime
    )
    row = parse_benchmark_csv(output)
    return {
        "ops_per_s": row["rps"],
        "p50_ms": row["p50_latency_ms"],
        "p99_ms": row["p99_latency_ms"],
        "client_cpu_us_per_op": round(client_cpu_s / requests * 1e6, 2),
        "redis_cpu_us_per_op": round(redis_cpu_s / requests * 1e6, 2),
    }


def parse_benchmark_csv(output: str) -> dict[str, float]:
    """The figures of the last test in redis-benchmark's `--csv` output."""
    rows = list(csv.reader(line for line in output.splitlines() if line.startswith('"')))
    if len(rows) < 2:
        raise ValueError(f"redis-benchmark printed no CSV result:\n{output}")
    header, last = rows[0], rows[-1]
    return {name: float(value) for name, value in zip(header[1:], last[1:], strict=True)}


def events_per_s_from_commands(ops_per_s: dict[str, float]) -> float:
    """Events/s if Redis ran one of each command per event back to back: 1 / Σ (1 / rate)."""
    return 1.0 / sum(1.0 / rate for rate in ops_per_s.values()) if ops_per_s else 0.0


def run_redis_benchmark(
    server: OwnRedis, plan: Plan, sha: str, record_bytes: int
) -> dict[str, RedisBenchmarkCommand | float]:
    figures: dict[str, RedisBenchmarkCommand | float] = {}
    for kind in server.urls:
        for pipeline in plan.benchmark_pipelines:
            rates = {}
            for name, command in benchmark_commands(sha, record_bytes).items():
                requests = (
                    plan.benchmark_commits
                    if name.startswith("EVALSHA")
                    else plan.benchmark_requests
                )
                keys = 10**9 if name.startswith("EVALSHA") else plan.customers
                measured = redis_benchmark(server, kind, command, requests, pipeline, keys)
                figures[f"{kind} P{pipeline} {name}"] = measured
                rates[name] = measured["ops_per_s"]
            figures[f"{kind} P{pipeline} events_per_s"] = round(events_per_s_from_commands(rates))
    return figures


# --- (b) and (c) redis-py asyncio ----------------------------------------------------------------


@dataclass
class Tally:
    """Events done, and commits refused (must stay 0: customers are not shared between
    workers)."""

    events: int = 0
    conflicts: int = 0

    def count(self, outcomes: Sequence[bytes | str]) -> None:
        self.events += len(outcomes)
        self.conflicts += sum(_text(o) == "CONFLICT" for o in outcomes)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def shares(customers: Sequence[str], parts: int) -> list[list[str]]:
    """Customers dealt out to `parts` workers, no customer in two: no event of this benchmark
    waits for or conflicts with another of the same customer."""
    return [list(customers[part::parts]) for part in range(parts)]


@dataclass(frozen=True)
class Work:
    """What every worker of one run shares: what commits write, new event ids, when to stop."""

    payload: Payload
    ids: Iterator[int]  # shared by every run against one Redis, so no event id comes twice
    stop: float  # perf_counter seconds
    tally: Tally


async def _store_worker(store: Store, mine: list[str], work: Work) -> None:
    """(b): one event at a time, each `Store.load` then `Store.commit`, as the service does:
    the Store decodes the record it loads and encodes the one it commits."""
    for customer in itertools.cycle(mine):
        if time.perf_counter() >= work.stop:
            return
        event = event_id(next(work.ids))
        loaded = await store.load(customer_id=customer, event_ids=[event])
        result = await store.commit(
            customer_id=customer,
            expected_version=loaded.version,
            state=work.payload.state,
            events=[(event, work.payload.decision)],
            ring=loaded.ring,
        )
        work.tally.count([result.outcome.value])


async def _pipelined_worker(client: Any, sha: str, mine: list[str], batch: int, work: Work) -> None:
    """(c): `batch` events of different customers at a time, one pipeline of their loads and
    one of their commits, each writing the ready-made record (Redis's work, not the Store's)."""
    keyspace = Keyspace(PREFIX)
    customers = itertools.cycle(mine)
    while time.perf_counter() < work.stop:
        chosen = [keyspace.customer(next(customers)) for _ in range(batch)]
        loads = client.pipeline(transaction=False)
        for keys in chosen:
            loads.hmget(keys.state, [STATE_BLOB_FIELD, STATE_VERSION_FIELD])
        replies = await loads.execute()
        commits = client.pipeline(transaction=False)
        for keys, (_, version) in zip(chosen, replies, strict=True):
            args = commit_args(int(version or 0), work.payload.record)
            commits.evalsha(sha, len(keys.all()), *keys.all(), *args)
        work.tally.count([reply[0] for reply in await commits.execute()])


async def _timed_run(redis_pid: int, workers: Sequence[Any], tally: Tally) -> RedisPyRun:
    begin_wall, begin_cpu = time.perf_counter(), time.process_time()
    begin_redis = process_cpu_s(redis_pid)
    await asyncio.gather(*workers)
    wall = time.perf_counter() - begin_wall
    client_cpu = time.process_time() - begin_cpu
    redis_cpu = process_cpu_s(redis_pid) - begin_redis
    events = max(1, tally.events)
    return {
        "events_per_s": round(tally.events / wall),
        "ops_per_s": round(COMMANDS_PER_EVENT * tally.events / wall),
        "client_cpu_us_per_event": round(client_cpu / events * 1e6, 1),
        "redis_cpu_us_per_event": round(redis_cpu / events * 1e6, 1),
        "conflicts": tally.conflicts,
    }


def _work(written: Payload, ids: Iterator[int], seconds: float) -> Work:
    return Work(written, ids, time.perf_counter() + seconds, Tally())


async def _through_store(
    server: OwnRedis, store: Store, customers: list[str], plan: Plan, written: Payload,
    ids: Iterator[int],
) -> RedisPyRun:  # fmt: skip
    """(b): 64 events in flight, each `Store.load` then `Store.commit`."""

    async def timed(seconds: float) -> RedisPyRun:
        work = _work(written, ids, seconds)
        workers = [_store_worker(store, mine, work) for mine in shares(customers, CONCURRENCY)]
        return await _timed_run(server.pid, workers, work.tally)

    # The warm-up opens the pool's connections: redis-py spends ~10 ms on each (it reads its
    # own package metadata), a cost the service pays once, not per event.
    await timed(WARMUP_S)
    return await timed(plan.seconds)


async def _pipelined(
    server: OwnRedis, client: Any, sha: str, customers: list[str], batch: int, plan: Plan,
    written: Payload, ids: Iterator[int],
) -> RedisPyRun:  # fmt: skip
    """(c): 64 events in flight, `batch` of them sharing each load and each commit pipeline."""
    work = _work(written, ids, plan.seconds)
    workers = [
        _pipelined_worker(client, sha, mine, batch, work)
        for mine in shares(customers, max(1, CONCURRENCY // batch))
    ]
    return await _timed_run(server.pid, workers, work.tally)


async def run_redis_py(
    server: OwnRedis, plan: Plan, customers: list[str], written: Payload, ids: Iterator[int]
) -> dict[str, RedisPyRun]:
    """(b) and (c) over each connection kind."""
    figures: dict[str, RedisPyRun] = {}
    for kind, url in server.urls.items():
        store = Store.from_settings(SERVICE, url)  # the service's store, client and pool
        try:
            figures[f"{kind} Store x{CONCURRENCY}"] = await _through_store(
                server, store, customers, plan, written, ids
            )
        finally:
            await store.close()
        client = connect(url, max_connections=256)
        try:
            for batch in BATCH_SIZES:
                name = f"{kind} pipelined N={batch} x{max(1, CONCURRENCY // batch)}"
                figures[name] = await _pipelined(
                    server, client, store.commit_script_sha, customers, batch, plan, written, ids
                )
        finally:
            await client.aclose()
    return figures


# --- the benchmark -------------------------------------------------------------------------------


def measure(quick: bool = False, plan: Plan | None = None) -> RedisCeilingFigures:
    """(a), (b) and (c) over a unix socket and over TCP against one fresh redis-server."""
    plan = plan or (QUICK if quick else Plan())
    written = payload(plan)
    with own_redis() as server:
        customers = populate(server.urls["unix"], plan, written.record)
        with sync_redis.Redis.from_url(server.urls["unix"]) as client:
            sha = str(client.script_load(COMMIT_SCRIPT))
        py = asyncio.run(run_redis_py(server, plan, customers, written, itertools.count()))
        # Last: its commits add keys (short-lived ones) that the redis-py runs need not see.
        bench = run_redis_benchmark(server, plan, sha, len(written.record))
        return {
            "redis_version": server.version,
            "customers": plan.customers,
            "blob_bytes": len(written.record),
            "concurrency": CONCURRENCY,
            "redis_benchmark": bench,
            "redis_py": py,
        }


def format_table(figures: RedisCeilingFigures) -> str:
    """Two small tables: redis-benchmark per command, redis-py per event."""
    lines = [
        f"Redis {figures['redis_version']}, {figures['customers']} customers, record"
        f" {figures['blob_bytes']} B, {figures['concurrency']} connections/events in flight",
        "",
        f"{'redis-benchmark':<36} {'ops/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'redis µs/op':>12}",
    ]
    for name, value in figures["redis_benchmark"].items():
        if isinstance(value, dict):
            lines.append(
                f"{name:<36} {value['ops_per_s']:>10,.0f} {value['p50_ms']:>7.3f}"
                f" {value['p99_ms']:>7.3f} {value['redis_cpu_us_per_op']:>12.1f}"
            )
        else:
            lines.append(f"{name:<36} {value:>10,.0f}  (events/s: one of each, back to back)")
    lines += [
        "",
        f"{'redis-py asyncio':<36} {'events/s':>10} {'ops/s':>10} {'client µs/ev':>13}"
        f" {'redis µs/ev':>12} {'conflicts':>12}",
    ]
    for name, run in figures["redis_py"].items():
        lines.append(
            f"{name:<36} {run['events_per_s']:>10,} {run['ops_per_s']:>10,}"
            f" {run['client_cpu_us_per_event']:>13.1f} {run['redis_cpu_us_per_event']:>12.1f}"
            f" {run['conflicts']:>12,}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks.redis.ceiling`: one run, printed as tables or JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis.ceiling", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer customers, shorter runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    figures = measure(quick=args.quick)
    print(json.dumps(figures) if args.json else format_table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
