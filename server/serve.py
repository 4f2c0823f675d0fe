"""`journeyman serve`: rules, Redis (embedded unless a URL is given) and the gRPC server, until
SIGTERM or SIGINT stops it gracefully. SIGHUP, or any change to the rules files, reloads them."""

from __future__ import annotations

import asyncio
import logging
import sys

from engine.compile import Ruleset
from server.app import PortInUse, create_server, reload_signal, stop_signals
from server.config import Settings
from server.embedded_redis import EmbeddedRedis, start_embedded_redis
from server.logs import configure_logging
from server.metrics import serve_metrics
from server.rulesource import load_ruleset
from server.store import Store, connect

log = logging.getLogger("journeyman")


def _say(message: str) -> None:
    """Start-up facts for the person who ran the command, on stderr like the logs."""
    print(message, file=sys.stderr, flush=True)


async def serve(settings: Settings, ruleset: Ruleset) -> None:
    """Serve until a stop signal; the embedded Redis, if any, is stopped last."""
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if url is None:
        embedded = start_embedded_redis(settings.data_dir / "redis")
        url = embedded.url
        _say(f"journeyman: embedded Redis with AOF persistence in {settings.data_dir / 'redis'}")
    try:
        store = Store(
            connect(url, timeout_s=settings.redis_timeout_ms / 1000),
            prefix=settings.key_prefix,
            state_ttl_s=settings.state_ttl_s,
        )
        running = await create_server(settings, ruleset, store)
        if settings.metrics_port:
            try:
                serve_metrics(
                    settings.metrics_port, settings.host,
                    multiprocess_dir=settings.metrics_multiprocess_dir,
                )  # fmt: skip
            except OSError as error:
                await running.stop(0)
                raise PortInUse(
                    f"cannot serve metrics on port {settings.metrics_port}: {error.strerror}; "
                    "choose another with --metrics-port (0 turns metrics off)"
                ) from error
            _say(
                f"journeyman: Prometheus metrics on http://{settings.host}:{settings.metrics_port}/metrics"
            )
        _say(
            f"journeyman: serving {ruleset.version} on {settings.host}:{running.port} "
            f"(gRPC; health and reflection on); stop with Ctrl-C or SIGTERM"
        )
        stop = asyncio.Event()
        watcher = asyncio.get_running_loop().create_task(running.rules.watch())
        with stop_signals(stop), reload_signal(running.rules):
            await stop.wait()
        watcher.cancel()
        _say(f"journeyman: stopping; in-flight calls get {settings.grace_period_s:g} s")
        await running.stop(settings.grace_period_s)
    finally:
        if embedded is not None:
            embedded.stop()


def run(settings: Settings) -> None:
    """Load the rules and serve; the caller turns errors into messages and exit codes."""
    configure_logging(settings.log_level, settings.log_format)
    ruleset = load_ruleset(list(settings.rules))
    asyncio.run(serve(settings, ruleset))
