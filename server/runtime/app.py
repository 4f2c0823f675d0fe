"""The gRPC server: servicer, health, reflection, warm-up before SERVING, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import (
    _async as reflection_async,  # the servicer grpcio-reflection itself uses for grpc.aio
)
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from engine.compile import Ruleset
from engine.errors import JourneymanError
from engine.warm import warm_up
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.api.admission import CallGate
from server.api.auth import Token, TokenGate, parse_tokens
from server.api.service import JourneyService
from server.core.config import Settings
from server.core.health import STORE_SERVICE
from server.core.metrics import BATCHES, REDIS_UP
from server.core.spinner import Spinner
from server.core.tasks import stop_task
from server.decisions.decider import Decider
from server.decisions.timers import TimerLoop
from server.rules.reload import LiveRules
from server.store.errors import StoreUnavailable
from server.store.redis_store import Store

log = logging.getLogger(__name__)

REDIS_WAIT_AT_START_S = 5.0  # create_server returns after this even if Redis is still down
REDIS_PROBE_INTERVAL_S = 0.5
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["JourneyService"].full_name


class PortInUse(JourneymanError):
    """The port is taken by another process."""


def port_in_use(bind: str) -> PortInUse:
    """The one message for a port this server cannot have, whoever finds out."""
    return PortInUse(
        f"cannot listen on {bind}: the port is in use or not available; choose another with --port"
    )


@dataclass
class Running:
    """A started server and what stopping it must close."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    decider: Decider
    store: Store
    rules: LiveRules
    ready: asyncio.Future[None] | None = None  # done once Redis answered and health says SERVING
    store_watch: asyncio.Task[None] | None = None  # the store's health, following Redis
    timers: TimerLoop | None = None  # this server's timer loop (`JOURNEYMAN_TIMERS`)
    spinner: asyncio.Task[None] | None = None  # the event loop's (`JOURNEYMAN_SPIN_US`)

    async def stop(self, grace_s: float) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight ones finish, then close Redis."""
        if self.ready is not None:
            self.ready.cancel()
        await stop_task(self.store_watch)
        if self.timers is not None:
            await self.timers.stop()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        await stop_task(self.spinner)
        await self.decider.drain()
        await self.store.close()
        BATCHES.flush()  # a worker's last decisions into the files its supervisor reads


async def create_server(
    settings: Settings,
    ruleset: Ruleset,
    store: Store,
    address: str | None = None,
    *,
    reuse_port: bool = False,
    on_bound: Callable[[int], None] | None = None,
) -> Running:
    """Build and start the server on `address` (default: the settings'; port 0 = any free one).
    `on_bound(port)` runs once it listens and before health can say SERVING (what must be up
    for a server said ready, such as its HTTP port); if it raises, the server stops.

    Health says SERVING only once the kernels are warm and Redis has answered. The ruleset can be
    reloaded from `settings.rules` (`Running.rules.reload`).
    """
    live = LiveRules(ruleset, settings.rules)

    def company() -> bool:
        # Other calls in the server: batches wait a few loop turns for more (the coalescer).
        return call_gate.in_flight > 1

    spinner = Spinner(settings.spin_us / 1e6, crowded=company) if settings.spin_us > 0 else None
    call_gate = CallGate(
        settings.max_concurrent_calls, activity=spinner.touch if spinner else lambda: None
    )

    store.linger_with(company)
    decider = Decider(
        live.active, store, conflict_retries=settings.conflict_retries,
        redis_timeout_s=settings.redis_timeout_ms / 1000, company=company,
    )  # fmt: skip
    tokens = load_tokens(settings)
    gates: list[grpc.aio.ServerInterceptor] = [TokenGate(tokens)] if tokens else []
    server = grpc.aio.server(
        interceptors=[*gates, call_gate],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(settings.grace_period_s * 1000)),
            # Off for one process, so that a port in use is an error; on for workers sharing it.
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ],
    )
    pb_grpc.add_JourneyServiceServicer_to_server(
        JourneyService(settings, live, store, decider), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _enable_reflection(server)
    for name in ("", SERVICE_NAME, STORE_SERVICE):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    bind = address or settings.address
    try:
        credentials = server_credentials(settings)
        if credentials is None:
            port = server.add_insecure_port(bind)
        else:
            port = server.add_secure_port(bind, credentials)
    except RuntimeError as error:  # grpcio raises when the bind fails
        raise port_in_use(bind) from error
    await server.start()
    if on_bound is not None:
        try:
            on_bound(port)
        except BaseException:
            await server.stop(0)
            raise
    warm_up(ruleset)
    running = Running(server, port, health_servicer, decider, store, live)
    if spinner is not None:
        running.spinner = asyncio.get_running_loop().create_task(spinner.run(), name="spinner")
    if settings.timers:
        running.timers = TimerLoop(
            live.active, store, decider.stats, decider.learned_rates, settings
        )
        running.timers.start()
    # Serving starts once Redis answers; until then calls are answered degraded and health says
    # NOT_SERVING, so a load balancer sends traffic elsewhere while Redis is being started.
    loop = asyncio.get_running_loop()
    running.ready = loop.create_future()
    running.store_watch = loop.create_task(_follow_redis(running, running.ready))
    await asyncio.wait({running.ready}, timeout=REDIS_WAIT_AT_START_S)
    return running


async def _follow_redis(running: Running, ready: asyncio.Future[None]) -> None:
    """Ping Redis every REDIS_PROBE_INTERVAL_S, off the hot path, and say what it found: the
    store's health (STORE_SERVICE) and the REDIS_UP gauge follow every change; the whole
    server turns SERVING the first time Redis answers and stays so, since degraded answers
    are still useful (a fleet sharing one Redis must not leave its load balancer at once)."""
    answered_before: bool | None = None
    while True:
        error = await _redis_error(running.store)
        answers = error is None
        REDIS_UP.set(1 if answers else 0)
        if answers != answered_before:
            await _store_health_changed(running, error, starting=answered_before is None)
            answered_before = answers
        if answers and not ready.done():
            for name in ("", SERVICE_NAME):
                await running.health.set(name, health_pb2.HealthCheckResponse.SERVING)
            ready.set_result(None)
        await asyncio.sleep(REDIS_PROBE_INTERVAL_S)


async def _redis_error(store: Store) -> StoreUnavailable | None:
    """None when Redis answers PING, else why not."""
    try:
        await store.ping()
    except StoreUnavailable as error:
        return error
    return None


async def _store_health_changed(
    running: Running, error: StoreUnavailable | None, *, starting: bool
) -> None:
    if error is None:
        if not starting:
            log.warning("Redis answers again: %s is SERVING, answers are stored", STORE_SERVICE)
        await running.health.set(STORE_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        policy = await running.store.evicts()
        if policy is not None:
            # Evicted states are lost without a word: customers start afresh, and a layout
            # evicted from the registry makes its states unreadable.
            log.warning(
                "Redis deletes keys when it is full (maxmemory-policy %s): customer states "
                "can vanish without a word; run it with maxmemory-policy noeviction (a full "
                "Redis then refuses writes, and journeyman answers degraded) or without "
                "maxmemory", policy,
            )  # fmt: skip
        return
    await running.health.set(STORE_SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    if starting:
        log.warning("Redis does not answer (%s); health stays NOT_SERVING and answers "
                    "are degraded until it does", error)  # fmt: skip
    else:
        log.error("Redis does not answer (%s): %s is NOT_SERVING and answers are degraded "
                  "until it does", error, STORE_SERVICE)  # fmt: skip


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS (and mTLS with a client CA) from the settings' PEM files, or None for plaintext."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def load_tokens(settings: Settings) -> tuple[Token, ...]:
    """The bearer tokens the settings name (file and variable together); none: no auth."""
    tokens: list[Token] = []
    if settings.auth_tokens_file is not None:
        path = settings.auth_tokens_file
        tokens += parse_tokens(path.read_text(encoding="utf-8"), str(path))
    if settings.auth_tokens:
        text = "\n".join(settings.auth_tokens.split(","))
        tokens += parse_tokens(text, "JOURNEYMAN_AUTH_TOKENS")
    return tuple(tokens)


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def _enable_reflection(server: grpc.aio.Server) -> None:
    """Server reflection under both names grpcurl and other tools ask for.

    grpcio-reflection serves only v1alpha; v1 has the same messages with the same field numbers,
    so the same servicer answers v1 calls through handlers registered under the v1 name.
    """
    names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME, REFLECTION_V1)
    servicer = reflection_async.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1_info = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": v1_info}),)
    )


@contextmanager
def stop_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` instead of killing the process."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


@contextmanager
def reload_signal(live: LiveRules) -> Iterator[None]:
    """SIGHUP reloads the rules (off the hot path; a broken file is refused and logged)."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = loop.create_task(live.reload())
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
