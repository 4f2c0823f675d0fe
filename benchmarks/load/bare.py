"""A bare Decide: a stored decision with nothing around it, the floor of one call at a time.

It serves `journeyman.v1.JourneyService/Decide` on the retail rules with an embedded Redis of its
own (the service's, `server.runtime.embedded_redis`), and does for each call only what the
service's decision round does for a lone event whose customer is in its state cache: validate
(`decide_input`), decide (`engine.decide.decide`), build the answer and its ring entry, encode the
state and the record, and send the commit as the store builds it (commit.lua's keys and
arguments) as one EVALSHA on a connection it keeps. No batching, coalescing, timeouts, retries,
circuit breaker, admission, metrics or statistics: what the service spends beyond this, one call
at a time, is the machinery around the parts, and what this spends beyond the echo
(`benchmarks.load.echo`) is the parts themselves, run in a server.

A customer's first event loads their state (one round trip more); a commit refused (another
writer: none here) ends the call ABORTED. Calls take turns on the one connection, so this
measures one call at a time, nothing concurrent. It times each part on its thread (`PartCpu`),
so that the parts as a server runs them, one call at a time, can be read beside the same parts
timed alone in a loop (`benchmarks.decision_parts`).

    python -m benchmarks.load.bare --port 50163 --data-dir /tmp/bare
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from engine.codec import encode_state
from engine.decide import decide
from engine.state import CustomerState
from journeyman.v1 import journeyman_pb2 as pb
from server.core import event_loop
from server.core.config import Settings
from server.decisions.active import ActiveRules, decode_or_new
from server.decisions.outbox import event_timer_write
from server.protocol.convert import decide_input, decision_to_pb
from server.protocol.dedupe import kept_decision
from server.rules.reload import LiveRules
from server.rules.rulesource import load_ruleset
from server.runtime.embedded_redis import EmbeddedRedis, start_embedded_redis
from server.store.record import Ring
from server.store.redis_store import (
    COMMIT_SCRIPT,
    CommitOutcome,
    Store,
    ToCommit,
    ToLoad,
    commit_result,
)

ROOT = Path(__file__).resolve().parents[2]
RETAIL = ROOT / "rules" / "retail.yaml"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["JourneyService"].full_name
Context = grpc.aio.ServicerContext[Any, Any]


# The parts whose CPU the bare Decide measures, as `benchmarks.decision_parts` names them where it
# times them alone (`commit_args`: the timer write, the record and commit.lua's arguments;
# `round_trip`: the EVALSHA sent and its reply read; `load`: a customer's first event only).
PARTS = ("validation", "load", "engine", "answer", "state", "commit_args", "round_trip")
PARTS_FILE = "parts_cpu.json"
WRITE_EVERY_S = 0.5


class PartCpu:
    """The CPU each part took on the serving thread (`time.thread_time_ns` between them: the
    calls interleave only at the round trip, one call at a time), summed over the calls served,
    written to `path` as µs per call at most every WRITE_EVERY_S while calls come (reading the
    clock costs about 1 µs a part)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._ns = dict.fromkeys(PARTS, 0)
        self._calls = 0
        self._since = 0
        self._written_at = time.monotonic()

    def start(self) -> None:
        """Count from now (what ran before is no part's)."""
        self._since = time.thread_time_ns()

    def took(self, part: str) -> None:
        """`part` took the CPU since `start` or the last `took`."""
        now = time.thread_time_ns()
        self._ns[part] += now - self._since
        self._since = now

    def call_ended(self) -> None:
        self._calls += 1
        if time.monotonic() - self._written_at >= WRITE_EVERY_S:
            self._written_at = time.monotonic()
            per_call = {part: ns / 1000 / self._calls for part, ns in self._ns.items()}
            self._path.write_text(json.dumps({"calls": self._calls, "us_per_call": per_call}))


def read_part_cpu(data_dir: Path) -> dict[str, float] | None:
    """The µs per call of each part a bare Decide serving on `data_dir` wrote last (None: none
    yet)."""
    path = data_dir / PARTS_FILE
    if not path.exists():
        return None
    written: dict[str, float] = json.loads(path.read_text())["us_per_call"]
    return written


class BareDecide:
    """Decide with nothing but the parts and one commit (see the module)."""

    def __init__(
        self, store: Store, active: ActiveRules, settings: Settings, sha: str, cpu: PartCpu
    ) -> None:
        self.cpu = cpu
        self._store = store
        self._active = active
        self._settings = settings
        self._sha = sha
        self._connection: Connection | None = None
        self._turn = asyncio.Lock()  # one round trip at a time on the one connection
        # customer id -> (state, version, ring), as the service's state cache keeps them
        self._cache: dict[str, tuple[CustomerState, int, Ring]] = {}

    async def decide(self, request: pb.DecideRequest, context: Context) -> pb.DecideResponse:
        took = self.cpu.took
        self.cpu.start()
        checked = decide_input(request, time.time_ns() // 1_000_000, self._settings)
        took("validation")
        event, ruleset = checked.event, self._active.ruleset
        cached = self._cache.get(event.customer_id)
        if cached is None:
            wanted = ToLoad(event.customer_id, checked.anonymous, [event.event_id])
            loaded = (await self._store.load_many([wanted]))[0]
            cached = (decode_or_new(ruleset, loaded.state), loaded.version, loaded.ring)
        took("load")
        state, version, ring = cached
        decision, after = decide(
            ruleset, state, event, checked.timestamp_ms, top_k=checked.top_k,
            explain=checked.explain, dedupe_window=self._store.dedupe_window,
        )  # fmt: skip
        took("engine")
        answer = decision_to_pb(
            decision, self._active.tables, customer_id=event.customer_id,
            event_id=event.event_id, decided_at_ms=state.applied_at_ms(checked.timestamp_ms),
            degraded=False,
        )  # fmt: skip
        kept = kept_decision(checked.fingerprint, answer)
        took("answer")
        encoded = encode_state(ruleset, after)
        took("state")
        commit = ToCommit(
            event.customer_id, checked.anonymous, version, encoded, [(event.event_id, kept)],
            timer=event_timer_write(self._store, ruleset, after, (answer,)), ring=ring,
        )  # fmt: skip
        keys, args, written = self._store.commit_command(commit)
        took("commit_args")
        async with self._turn:
            connection = await self._kept_connection()
            self.cpu.start()  # not the wait for the connection's turn (none, one call at a time)
            await connection.send_packed_command(
                connection.pack_command("EVALSHA", self._sha, len(keys), *keys, *args),
                check_health=False,
            )
            result = commit_result(await connection.read_response())
            took("round_trip")
        if result.outcome is not CommitOutcome.COMMITTED:
            self._cache.pop(event.customer_id, None)
            await context.abort(grpc.StatusCode.ABORTED, "the customer changed under the commit")
        self._cache[event.customer_id] = (after, result.version, written)
        self.cpu.call_ended()
        return pb.DecideResponse(decision=answer)

    async def _kept_connection(self) -> Connection:
        if self._connection is None:
            client = self._store.redis
            assert isinstance(client, Redis)  # its embedded Redis: never a cluster
            taken = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
            self._connection = cast(Connection, taken)
        return self._connection


@dataclass
class Bare:
    """A bare Decide serving: its gRPC server, port, store and embedded Redis."""

    server: grpc.aio.Server
    port: int
    store: Store
    redis: EmbeddedRedis

    async def stop(self) -> None:
        await self.server.stop(grace=None)
        await self.store.close()
        self.redis.stop()


async def start_bare(data_dir: Path, port: int = 0, host: str = "127.0.0.1") -> Bare:
    """Serve a bare Decide on `host:port` (0: any free port), its Redis embedded under
    `data_dir`."""
    settings = Settings()
    redis = start_embedded_redis(data_dir)
    try:
        store = Store.from_settings(settings, redis.url)
        sha = await store.redis.script_load(COMMIT_SCRIPT)
        live = LiveRules(load_ruleset([str(RETAIL)]), [str(RETAIL)])
        bare = BareDecide(store, live.active(), settings, sha, PartCpu(data_dir / PARTS_FILE))
        server = grpc.aio.server()
        methods = {
            "Decide": grpc.unary_unary_rpc_method_handler(
                bare.decide,
                request_deserializer=pb.DecideRequest.FromString,
                response_serializer=pb.DecideResponse.SerializeToString,
            )
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, methods),)
        )
        checks = health.aio.HealthServicer()
        await checks.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(checks, server)
        bound = server.add_insecure_port(f"{host}:{port}")
        await server.start()
    except BaseException:
        redis.stop()
        raise
    return Bare(server, bound, store, redis)


async def _serve(host: str, port: int, data_dir: Path) -> None:
    bare = await start_bare(data_dir, port, host)
    print(f"bare Decide listening on {host}:{bare.port}", flush=True)
    try:
        await bare.server.wait_for_termination()
    finally:
        await bare.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m benchmarks.load.bare --port P --data-dir D`: serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50163)
    parser.add_argument("--data-dir", type=Path, required=True, help="its embedded Redis's folder")
    parser.add_argument(
        "--event-loop", choices=event_loop.CHOICES, default="auto",
        help="the same choice as journeyman serve's, so both run on the same loop",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        event_loop.run(_serve(args.host, args.port, args.data_dir), args.event_loop)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
