"""Real `journeyman serve` replicas with timer loops, sharing one Redis of the test's own, and
what the timer fault tests read back: the outbox stream as Redis holds it (each entry with the
millisecond Redis committed it at), and a Subscribe follower that resumes after the last id it
saw, as rules/README.md tells a client to.

Every process started here is stopped by its pid (`stop_replicas`), by the test's `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
import redis
from redis.asyncio import Redis as AsyncRedis

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.runtime.embedded_redis import EmbeddedRedis, EmbeddedRedisError, start_embedded_redis
from server.store.keys import Keyspace, due_shard, timer_member
from tests.rulesets import RULES_DIR
from tests.service.test_process import JOURNEYMAN, Served, _environment, _free_port
from tests.service.test_process import _wait_until_serving as wait_until_serving

# retail.yaml's abandoned_cart: `after: 30m` in consideration, where an add_to_cart puts a new
# customer; a cart stamped this long before a moment is due at that moment.
HALF_HOUR_MS = 30 * 60 * 1000
TIMER_SHARDS = 16  # the default, said once: the test reads the shards the servers write
CALL_TIMEOUT_S = 5.0
REDIS_SPAWN_ATTEMPTS = 3
T = TypeVar("T")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def cart_due_at(customer: str, due_ms: int) -> pb.DecideRequest:
    """A new customer's add_to_cart, stamped so that their abandoned_cart timer is due at
    `due_ms` (past timestamps are accepted)."""
    return pb.DecideRequest(event=pb.Event(
        event_id=f"{customer}-cart", customer_id=customer, type="add_to_cart", channel="web",
        timestamp_ms=due_ms - HALF_HOUR_MS,
    ))  # fmt: skip


def checkout(customer: str) -> pb.DecideRequest:
    """A checkout_started event, applied at the server's now."""
    return pb.DecideRequest(event=pb.Event(
        event_id=f"{customer}-checkout", customer_id=customer, type="checkout_started",
        channel="web",
    ))  # fmt: skip


def start_redis(folder: Path) -> EmbeddedRedis:
    """A Redis of the test's own in `folder`, with its AOF fsynced at every write."""
    return _spawning_again(lambda: start_embedded_redis(folder, appendfsync="always"))


def restart_redis(server: EmbeddedRedis) -> None:
    """`server`, ended, started again on its folder and socket: it replays its AOF."""
    _spawning_again(server.restart)


def _spawning_again(spawn: Callable[[], T]) -> T:
    """`spawn()`, tried again when the redis-server child died before it ran: it is forked
    with a preexec_fn (embedded_redis), and a fork of this process, whose gRPC threads are busy,
    dies of SIGSEGV or SIGABRT now and then, in grpc's fork handlers (GRPC_ENABLE_FORK_SUPPORT
    is on by default)."""
    for attempt in range(REDIS_SPAWN_ATTEMPTS):
        try:
            return spawn()
        except EmbeddedRedisError as error:
            if attempt == REDIS_SPAWN_ATTEMPTS - 1 or "exited with status -" not in str(error):
                raise
    raise AssertionError("unreachable")


def start_replicas(
    folder: Path, redis_url: str, key_prefix: str, settings: Sequence[dict[str, str]]
) -> list[Served]:
    """One `journeyman serve` (retail rules, timers on) per entry of `settings`, each given as
    JOURNEYMAN_* variables on top of `key_prefix`; returns once all are SERVING.

    The first starts alone: after an engine change it compiles the kernels into numba's disk
    cache (over half a minute on two busy cores), and the others, started together once it
    serves, load them from there instead of each compiling them too."""
    replicas: list[Served] = []
    try:
        for number, own in enumerate(settings):
            replica_folder = folder / f"replica-{number}"
            replica_folder.mkdir()
            replicas.append(_serve(replica_folder, redis_url, key_prefix, own))
            if number == 0:
                wait_until_serving(replicas[0])
        for replica in replicas[1:]:
            wait_until_serving(replica)
    except BaseException:
        stop_replicas(replicas)
        raise
    return replicas


def _serve(folder: Path, redis_url: str, key_prefix: str, settings: dict[str, str]) -> Served:
    """`settings` are JOURNEYMAN_* variables, but for `metrics_port` (default 0: off)."""
    port = _free_port()
    log_path = folder / "serve.log"
    variables = dict(settings)
    metrics_port = variables.pop("metrics_port", "0")
    command = [
        str(JOURNEYMAN), "serve", "--host", "127.0.0.1", "--port", str(port),
        "--metrics-port", metrics_port, "--redis-url", redis_url,
        "--rules", str(RULES_DIR / "retail.yaml"),
    ]  # fmt: skip
    environment = _environment(key_prefix=key_prefix, timers="1", grace_period_s="1", **variables)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=folder, env=environment,
        )  # fmt: skip
    # data_dir holds no redis.pid (the Redis is the test's), so Served.kill stops only the server.
    return Served(process, port, folder / "data", log_path)


def stop_replicas(replicas: Sequence[Served]) -> None:
    """SIGKILL each replica still running, by pid, and reap it."""
    for replica in replicas:
        replica.kill()


async def decide_all(
    replicas: Sequence[Served], requests: Sequence[pb.DecideRequest]
) -> list[pb.Decision]:
    """Every request, at once, spread round-robin over the replicas; the answers in order.
    Degraded answers fail the test: these tests need every event stored."""
    channels = [grpc.aio.insecure_channel(r.address) for r in replicas]
    try:
        stubs = [pb_grpc.JourneyServiceStub(c) for c in channels]
        replies = await asyncio.gather(*(
            stubs[number % len(stubs)].Decide(request, timeout=CALL_TIMEOUT_S)
            for number, request in enumerate(requests)
        ))  # fmt: skip
    finally:
        for channel in channels:
            await channel.close()
    decisions = [reply.decision for reply in replies]
    degraded = [d.customer_id for d in decisions if d.degraded]
    assert not degraded, f"answered degraded (not stored): {degraded[:5]}"
    return decisions


async def stages_of(replica: Served, customers: Sequence[str]) -> dict[str, str]:
    """Each customer's retail stage, as GetCustomer reads it from Redis."""
    async with grpc.aio.insecure_channel(replica.address) as channel:
        stub = pb_grpc.JourneyServiceStub(channel)
        views = await asyncio.gather(*(
            stub.GetCustomer(pb.GetCustomerRequest(customer_id=c), timeout=CALL_TIMEOUT_S)
            for c in customers
        ))  # fmt: skip
    return {c: v.customer.journeys[0].stage for c, v in zip(customers, views, strict=True)}


def metric_total(metrics_port: int, name: str) -> float:
    """The sum of a Prometheus metric's samples (all labels) on a replica's /metrics."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=CALL_TIMEOUT_S) as reply:
        text = reply.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name)] in " {"
    )


@dataclass(frozen=True)
class Published:
    """One outbox entry as the stream holds it; `committed_ms` is the stream id's time, Redis's
    clock when the commit script appended it, the same atomic step that stored the state."""

    committed_ms: int
    entry: pb.OutboxEntry

    @property
    def customer(self) -> str:
        return self.entry.decision.customer_id

    @property
    def due_ms(self) -> int:
        """The due time a timer decision names in its event id, `timer:<due ms>:<visit>`."""
        return int(self.entry.decision.event_id.split(":")[1])

    @property
    def move(self) -> tuple[str, str, str, str]:
        """(kind, previous stage, stage, transition) in the retail journey."""
        (journey,) = self.entry.decision.journeys
        return self.entry.kind, journey.previous_stage, journey.stage, journey.transition


def read_outbox(redis_url: str, key_prefix: str) -> list[Published]:
    """The whole outbox stream, oldest first."""
    with redis.Redis.from_url(redis_url, socket_timeout=CALL_TIMEOUT_S) as client:
        stream = client.xrange(Keyspace(key_prefix).outbox())
    published = []
    for stream_id, fields in stream:
        entry = pb.OutboxEntry.FromString(fields[b"d"])
        entry.id = stream_id.decode()
        published.append(Published(int(entry.id.split("-")[0]), entry))
    return published


async def due_index_scores(
    client: AsyncRedis, key_prefix: str, customers: Sequence[str]
) -> list[float | None]:
    """Each customer's score in the due-time index (its due time, or a claim's lapse), or None
    when it is not there (no timer pending: fired, or moved on by an event)."""
    keys = Keyspace(key_prefix)
    pipe = client.pipeline(transaction=False)
    for customer in customers:
        member = timer_member(customer)
        pipe.zscore(keys.due(due_shard(member, TIMER_SHARDS)), member)
    return [None if score is None else float(score) for score in await pipe.execute()]


@dataclass
class Follower:
    """A Subscribe client of one replica: keeps every entry it receives with the time it did,
    and, when the stream breaks (UNAVAILABLE: Redis away), subscribes again after the last id
    it saw, as a real consumer does."""

    address: str
    received: list[tuple[int, pb.OutboxEntry]] = field(default_factory=list)
    breaks: int = 0
    _task: asyncio.Task[None] | None = None

    def decision_ids(self) -> set[str]:
        return {entry.decision_id for _, entry in self.received}

    def start(self, wanted: int, timeout_s: float) -> None:
        """Follow in the background until `wanted` distinct decisions came, or `timeout_s`."""
        self._task = asyncio.create_task(self._follow_for(wanted, timeout_s))

    async def wait(self) -> None:
        assert self._task is not None
        await self._task

    async def stop(self) -> None:
        """Cancel the following (a test that failed before waiting for it)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow_for(self, wanted: int, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._follow(wanted), timeout_s)
        except TimeoutError:
            pass  # the caller's assertions say what is missing

    async def _follow(self, wanted: int) -> None:
        last_id = "0"  # the test's own stream: from its first entry
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = pb_grpc.JourneyServiceStub(channel)
            while len(self.decision_ids()) < wanted:
                call = stub.Subscribe(pb.SubscribeRequest(from_id=last_id))
                try:
                    async for response in call:
                        self.received.append((now_ms(), response.entry))
                        last_id = response.entry.id
                        if len(self.decision_ids()) >= wanted:
                            return
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                    self.breaks += 1
                    await asyncio.sleep(0.1)
                finally:
                    call.cancel()
