"""`journeyman serve`: rules, Redis (embedded unless a URL is given) and the gRPC server, until
SIGTERM or SIGINT stops it gracefully. SIGHUP, or any change to the rules files, reloads them."""

from __future__ import annotations

import asyncio
import logging
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from engine.compile import Ruleset
from server import event_loop
from server.app import PortInUse, create_server, reload_signal, stop_signals
from server.config import Settings
from server.embedded_redis import RedisKeeper, start_embedded_redis
from server.logs import configure_logging
from server.metrics import serve_metrics
from server.rulesource import load_ruleset
from server.store import Store, StoreRefused, StoreUnavailable, connect

log = logging.getLogger("journeyman")


def say(message: str) -> None:
    """Start-up facts for the person who ran the command, on stderr like the logs."""
    print(message, file=sys.stderr, flush=True)


def start_metrics(settings: Settings) -> None:
    """/metrics on the settings' port, or nothing when it is 0. Raises PortInUse."""
    if not settings.metrics_port:
        return
    try:
        serve_metrics(
            settings.metrics_port, settings.host,
            multiprocess_dir=settings.metrics_multiprocess_dir,
        )  # fmt: skip
    except OSError as error:
        raise PortInUse(
            f"cannot serve metrics on port {settings.metrics_port}: {error.strerror}; "
            "choose another with --metrics-port (0 turns metrics off)"
        ) from error
    say(f"journeyman: Prometheus metrics on http://{settings.host}:{settings.metrics_port}/metrics")


def security(settings: Settings) -> str:
    """How callers reach the port, for the start line: TLS or plaintext, and token auth."""
    if settings.tls_cert is None:
        transport = "TLS off"
    elif settings.tls_client_ca is not None:
        transport = "TLS on, client certificates required"
    else:
        transport = "TLS on"
    tokens = settings.auth_tokens_file is not None or bool(settings.auth_tokens)
    return f"{transport}, token auth {'on' if tokens else 'off'}"


async def serve(
    settings: Settings, ruleset: Ruleset, redis_url: str, *, worker: bool = False
) -> None:
    """One server process until a stop signal. A worker shares its port with its siblings and
    leaves /metrics to the parent."""
    # Stop signals count from the start: a SIGTERM during warm-up or while waiting for Redis
    # stops the server as soon as it is up, instead of being ignored (as process 1 would).
    stop = asyncio.Event()
    with stop_signals(stop):
        await _serve_until(stop, settings, ruleset, redis_url, worker=worker)


async def _serve_until(
    stop: asyncio.Event, settings: Settings, ruleset: Ruleset, redis_url: str, *, worker: bool
) -> None:
    store = Store(
        connect(
            redis_url,
            timeout_s=settings.redis_timeout_ms / 1000,
            max_connections=max(256, settings.max_concurrent_calls),
        ),  # fmt: skip
        prefix=settings.key_prefix,
        decisions_kept=settings.decisions_kept,
        state_ttl_s=settings.state_ttl_s,
        stats_retention_s=settings.stats_retention_days * 86_400,
    )
    try:
        await store.ping()
    except StoreRefused:
        await store.close()
        raise  # wrong credentials never fix themselves: stop with the reason
    except StoreUnavailable:
        pass  # create_server waits for Redis, and answers degraded until it does
    running = await create_server(settings, ruleset, store, reuse_port=worker)
    if not worker:
        try:
            start_metrics(settings)
        except PortInUse:
            await running.stop(0)
            raise
        say(
            f"journeyman: serving {ruleset.version} on {settings.host}:{running.port} "
            f"(gRPC, {security(settings)}; health and reflection on); "
            "stop with Ctrl-C or SIGTERM"
        )
    watcher = asyncio.get_running_loop().create_task(running.rules.watch())
    with reload_signal(running.rules):
        await stop.wait()
    watcher.cancel()
    if not worker:
        say(f"journeyman: stopping; in-flight calls get {settings.grace_period_s:g} s")
    await running.stop(settings.grace_period_s)


@contextmanager
def redis_for(settings: Settings) -> Iterator[tuple[str, RedisKeeper | None]]:
    """The Redis URL to use, and what keeps it running: the settings' URL (None: nothing to
    keep), or an embedded Redis started here, restarted whenever it dies, stopped at the end."""
    if settings.redis_url is not None:
        yield settings.redis_url, None
        return
    folder = settings.data_dir / "redis"
    keeper = RedisKeeper(start_embedded_redis(folder))
    socket_path = shlex.quote(str(keeper.redis.socket_path))
    say(f"journeyman: embedded Redis with AOF persistence in {folder}, on the unix socket "
        f"{keeper.redis.socket_path} (redis-cli -s {socket_path})")  # fmt: skip
    try:
        yield keeper.redis.url, keeper
    finally:
        keeper.stop()


def run(settings: Settings) -> None:
    """Load the rules and serve (in `settings.workers` processes); the caller turns errors into
    messages and exit codes."""
    configure_logging(settings.log_level, settings.log_format)
    ruleset = load_ruleset(list(settings.rules))
    if settings.workers == 1:
        with redis_for(settings) as (redis_url, keeper):
            if keeper is not None:
                keeper.watch_in_background()
            event_loop.run(serve(settings, ruleset, redis_url), settings.event_loop)
        return
    from server.workers import claim_port, run_workers

    # The port first: a second supervisor on it stops before touching its data folder.
    with claim_port(settings), redis_for(settings) as (redis_url, keeper):
        run_workers(settings, ruleset, redis_url, keeper)
