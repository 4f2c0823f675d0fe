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
measures one call at a time, nothing concurrent.

    python -m benchmarks.load.bare --port 50163 --data-dir /tmp/bare
"""

from __future__ import annotations

import argparse
import asyncio
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


class BareDecide:
    """Decide with nothing but the parts and one commit (see the module)."""

    def __init__(self, store: Store, active: ActiveRules, settings: Settings, sha: str) -> None:
        self._store = store
        self._active = active
        self._settings = settings
        self._sha = sha
        self._connection: Connection | None = None
        self._turn = asyncio.Lock()  # one round trip at a time on the one connection
        # customer id -> (state, version, ring), as the service's state cache keeps them
        self._cache: dict[str, tuple[CustomerState, int, Ring]] = {}

    async def decide(self, request: pb.DecideRequest, context: Context) -> pb.DecideResponse:
        checked = decide_input(request, time.time_ns() // 1_000_000, self._settings)
        event, ruleset = checked.event, self._active.ruleset
        cached = self._cache.get(event.customer_id)
        if cached is None:
            wanted = ToLoad(event.customer_id, checked.anonymous, [event.event_id])
            loaded = (await self._store.load_many([wanted]))[0]
            cached = (decode_or_new(ruleset, loaded.state), loaded.version, loaded.ring)
        state, version, ring = cached
        decision, after = decide(
            ruleset, state, event, checked.timestamp_ms, top_k=checked.top_k,
            explain=checked.explain, dedupe_window=self._store.dedupe_window,
        )  # fmt: skip
        answer = decision_to_pb(
            decision, self._active.tables, customer_id=event.customer_id,
            event_id=event.event_id, decided_at_ms=state.applied_at_ms(checked.timestamp_ms),
            degraded=False,
        )  # fmt: skip
        commit = ToCommit(
            event.customer_id, checked.anonymous, version, encode_state(ruleset, after),
            [(event.event_id, kept_decision(checked.fingerprint, answer))],
            timer=event_timer_write(self._store, ruleset, after, (answer,)), ring=ring,
        )  # fmt: skip
        keys, args, written = self._store.commit_command(commit)
        async with self._turn:
            connection = await self._kept_connection()
            await connection.send_packed_command(
                connection.pack_command("EVALSHA", self._sha, len(keys), *keys, *args),
                check_health=False,
            )
            result = commit_result(await connection.read_response())
        if result.outcome is not CommitOutcome.COMMITTED:
            self._cache.pop(event.customer_id, None)
            await context.abort(grpc.StatusCode.ABORTED, "the customer changed under the commit")
        self._cache[event.customer_id] = (after, result.version, written)
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
        bare = BareDecide(store, live.active(), settings, sha)
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
