"""`journeyman serve --workers N`: N server processes on one port, supervised by this one.

The workers are forked before any gRPC object exists (gRPC does not survive a fork once it has
started), each builds its own server with SO_REUSEPORT (the kernel spreads connections over
them) and its own Redis pool. The parent forwards SIGTERM, SIGINT and SIGHUP, restarts a worker
that dies, and serves /metrics for all of them from PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time

from prometheus_client import multiprocess

from engine.compile import Ruleset
from server import event_loop
from server.config import Settings

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)  # after 1, 2, ... crashes in a row
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker if the supervisor dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: workers outlive a killed supervisor
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable")


def _worker(settings: Settings, ruleset: Ruleset, redis_url: str) -> int:
    """Body of a forked worker; returns its exit code."""
    from server.serve import serve  # after the fork: never import grpc users before it

    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_DFL)
    _die_with_parent()
    try:
        event_loop.run(serve(settings, ruleset, redis_url, worker=True), settings.event_loop)
    except Exception:
        log.exception("worker %d failed", os.getpid())
        return 1
    return 0


class Supervisor:
    def __init__(self, settings: Settings, ruleset: Ruleset, redis_url: str) -> None:
        self.settings, self.ruleset, self.redis_url = settings, ruleset, redis_url
        self.workers: dict[int, int] = {}  # pid -> slot
        self.stopping = False
        self.crashes = 0

    def spawn(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(_worker(self.settings, self.ruleset, self.redis_url))
        self.workers[pid] = slot

    def forward(self, sig: int, _frame: object) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
        for pid in list(self.workers):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def reap(self) -> None:
        """Wait for one worker to end; restart it unless stopping."""
        pid, status = os.wait()
        slot = self.workers.pop(pid, None)
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
        if slot is None or self.stopping:
            return
        self.crashes += 1
        code = os.waitstatus_to_exitcode(status)
        delay = RESTART_BACKOFF_S[min(self.crashes, len(RESTART_BACKOFF_S)) - 1]
        log.error("worker %d (slot %d) ended with %d; restarting in %.1f s", pid, slot, code, delay)
        time.sleep(delay)
        if not self.stopping:
            self.spawn(slot)


def run_workers(settings: Settings, ruleset: Ruleset, redis_url: str) -> None:
    """Start `settings.workers` workers and supervise them until SIGTERM or SIGINT."""
    from server.serve import say, start_metrics

    supervisor = Supervisor(settings, ruleset, redis_url)
    for sig in FORWARDED:
        signal.signal(sig, supervisor.forward)
    for slot in range(settings.workers):
        supervisor.spawn(slot)
    start_metrics(settings)
    say(
        f"journeyman: serving {ruleset.version} on {settings.host}:{settings.port} with "
        f"{settings.workers} workers ({', '.join(map(str, supervisor.workers))}); "
        "stop with Ctrl-C or SIGTERM"
    )
    while supervisor.workers:
        try:
            supervisor.reap()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
    say("journeyman: all workers stopped")
