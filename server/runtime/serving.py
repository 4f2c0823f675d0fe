"""One server process: the store, the gRPC server and rules reloads, until a stop signal.

SIGTERM or SIGINT stops it gracefully; SIGHUP, or any change to the rules files, reloads them.
Run alone by `journeyman serve`, or as each worker of `--workers N` (`server.runtime.workers`).
"""

from __future__ import annotations

import asyncio
import gc
import logging

from engine.compile import Ruleset
from server.core.config import Settings
from server.core.tasks import exit_if_still_running, stop_task
from server.runtime.app import PortInUse, create_server, reload_signal, stop_signals
from server.runtime.startup import say, security, start_http
from server.store.errors import StoreRefused, StoreUnavailable
from server.store.redis_store import Store

log = logging.getLogger("journeyman")

# Beyond the grace period, what stopping may still take (closing Redis connections, the rules
# watcher's thread): a process not gone by then is stuck, and exits rather than hang.
STOP_MARGIN_S = 10.0


async def serve(
    settings: Settings, ruleset: Ruleset, redis_url: str, *, worker: bool = False
) -> None:
    """One server process until a stop signal. A worker shares its port with its siblings and
    leaves the HTTP port (/metrics, the map) to the parent."""
    # Stop signals count from the start: a SIGTERM during warm-up or while waiting for Redis
    # stops the server as soon as it is up, instead of being ignored (as process 1 would).
    stop = asyncio.Event()
    with stop_signals(stop):
        await _serve_until(stop, settings, ruleset, redis_url, worker=worker)


async def _serve_until(
    stop: asyncio.Event, settings: Settings, ruleset: Ruleset, redis_url: str, *, worker: bool
) -> None:
    store = Store.from_settings(settings, redis_url)
    try:
        await store.ping()
    except StoreRefused:
        await store.close()
        raise  # wrong credentials never fix themselves: stop with the reason
    except StoreUnavailable:
        pass  # create_server waits for Redis, and answers degraded until it does
    # The HTTP port starts before health can say SERVING: a readiness check that passes finds
    # /metrics answering (started after, it came up a few loop turns later).
    try:
        running = await create_server(
            settings, ruleset, store, reuse_port=worker,
            on_bound=None if worker else lambda port: start_http(settings, port),
        )  # fmt: skip
    except PortInUse:
        await store.close()
        raise
    if not worker:
        say(
            f"journeyman: serving {ruleset.version} on {settings.host}:{running.port} "
            f"(gRPC, {security(settings)}; health and reflection on); "
            "stop with Ctrl-C or SIGTERM"
        )
    # What startup made (numba's compiler, the kernels, grpc, the ruleset: ~150,000 objects)
    # lives as long as the process; a full collection traversed all of it again (~90 ms, one
    # call's latency every few thousand). Frozen, the collector passes only what came after;
    # reference counting still frees it (a ruleset replaced by a reload, say).
    gc.freeze()
    watcher = asyncio.get_running_loop().create_task(running.rules.watch())
    with reload_signal(running.rules):
        await stop.wait()
    exit_if_still_running(settings.grace_period_s + STOP_MARGIN_S, asyncio.get_running_loop())
    await stop_task(watcher)
    if not worker:
        say(f"journeyman: stopping; in-flight calls get {settings.grace_period_s:g} s")
    await running.stop(settings.grace_period_s)
