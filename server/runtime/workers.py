"""`journeyman serve --workers N`: N server processes on one port, supervised by this one.

The workers are forked before any gRPC object exists (gRPC does not survive a fork once it has
started), each builds its own server with SO_REUSEPORT (the kernel spreads connections over
them) and its own Redis pool. The parent forwards SIGTERM, SIGINT and SIGHUP, restarts a worker
that dies, restarts the embedded Redis when it dies (it is the parent's child too), and serves
/metrics for all of them from PROMETHEUS_MULTIPROC_DIR.

SO_REUSEPORT lets any process of the same user join the port, an unrelated `journeyman serve`
too. So before forking, the parent claims the port (`claim_port`), and only its own workers
share it.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import multiprocess

from engine.compile import Ruleset
from server.core import event_loop
from server.core.config import Settings
from server.runtime.app import PortInUse, port_in_use
from server.runtime.embedded_redis import RedisKeeper
from server.runtime.startup import say, security, start_http

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)  # after 1, 2, ... crashes in a row
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# A worker that cannot bind the port exits with this: retrying would not free the port.
EXIT_PORT_IN_USE = 3


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker if the supervisor dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: workers outlive a killed supervisor
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable")


def _worker(settings: Settings, ruleset: Ruleset, redis_url: str) -> int:
    """Body of a forked worker; returns its exit code."""
    # After the fork: never import grpc users before it.
    from server.runtime.serving import serve

    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)  # blocked across the fork (spawn)
    _die_with_parent()
    try:
        event_loop.run(serve(settings, ruleset, redis_url, worker=True), settings.event_loop)
    except PortInUse as error:
        log.error("worker %d: %s", os.getpid(), error)
        return EXIT_PORT_IN_USE
    except Exception:
        log.exception("worker %d failed", os.getpid())
        return 1
    return 0


class Supervisor:
    def __init__(
        self, settings: Settings, ruleset: Ruleset, redis_url: str, keeper: RedisKeeper | None
    ) -> None:
        self.settings, self.ruleset, self.redis_url = settings, ruleset, redis_url
        self.keeper = keeper  # the embedded Redis, if any: a child to restart, not a worker
        self.workers: dict[int, int] = {}  # pid -> slot
        self.stopping = False
        self.port_refused = False
        self.crashes = 0

    def spawn(self, slot: int) -> None:
        # A stop signal arriving during the fork waits until the new worker is in `workers`
        # (else `forward` would miss it, and it would serve on alone), and in the child until
        # the supervisor's handler is no longer its own.
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
            raise
        if pid == 0:
            code = 1
            try:
                code = _worker(self.settings, self.ruleset, self.redis_url)
            except BaseException:  # e.g. a CancelledError out of the event loop
                log.exception("worker %d failed", os.getpid())
            finally:
                # Never unwind into the supervisor's frames copied by the fork: their `with`
                # blocks (the embedded Redis, the claimed port) are the parent's to close.
                os._exit(code)
        self.workers[pid] = slot
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)

    def forward(self, sig: int, _frame: object) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
            if self.keeper is not None:
                self.keeper.stopping = True  # no restart now; the end of `serve` stops it
        for pid in list(self.workers):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def reap(self) -> None:
        """Wait for one child to end; restart it (a worker or the embedded Redis) unless
        stopping. A worker refused the port stops them all."""
        pid, status = os.wait()
        code = os.waitstatus_to_exitcode(status)
        if self.keeper is not None and pid == self.keeper.pid:
            self.keeper.redis.mark_exited(code)
            if not self.stopping:
                self.keeper.revive()
            return
        slot = self.workers.pop(pid, None)
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
        if slot is None or self.stopping:
            return
        if code == EXIT_PORT_IN_USE:  # another process took the port before this worker bound
            self.port_refused = True
            self.forward(signal.SIGTERM, None)
            return
        self.crashes += 1
        delay = RESTART_BACKOFF_S[min(self.crashes, len(RESTART_BACKOFF_S)) - 1]
        log.error("worker %d (slot %d) ended with %d; restarting in %.1f s", pid, slot, code, delay)
        time.sleep(delay)
        if not self.stopping:
            self.spawn(slot)


@contextmanager
def claim_port(settings: Settings) -> Iterator[None]:
    """Hold the port for this supervisor's workers, or raise PortInUse as one process would.

    The workers bind with SO_REUSEPORT, which any process of the same user may join. A bind
    without SO_REUSEPORT finds whatever already holds the port (one server, or another
    supervisor's workers). A supervisor starting at the same moment would find it free too,
    so first a lock named by the port: an abstract unix socket, which lasts exactly as long as
    a process holding it (the workers inherit it) and, like the port, belongs to the network
    namespace. It is named by the port alone: two supervisors on different addresses of one
    port are refused too, as a wildcard address would overlap.
    """
    lock = _lock_port(settings)
    try:
        _refuse_if_bound(settings)
        yield
    finally:
        if lock is not None:
            lock.close()


def _lock_port(settings: Settings) -> socket.socket | None:
    """The lock on the port (None where abstract unix sockets do not exist); PortInUse if held."""
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lock.bind(f"\0journeyman-port-{settings.port}")
    except OSError as error:
        lock.close()
        if error.errno == errno.EADDRINUSE:
            raise port_in_use(settings.address) from error
        log.debug("no port lock (%s): other supervisors are not kept off the port", error)
        return None
    return lock


def _refuse_if_bound(settings: Settings) -> None:
    """Raise PortInUse when any socket listens on the port (gRPC's own bind would join it)."""
    addresses = socket.getaddrinfo(
        settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            # As gRPC does: a connection in TIME_WAIT holds no port.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno in (errno.EADDRINUSE, errno.EACCES):
                    raise port_in_use(settings.address) from error
                # Anything else (no IPv6 here, say): gRPC's own bind reports what matters.


def run_workers(
    settings: Settings, ruleset: Ruleset, redis_url: str, keeper: RedisKeeper | None = None
) -> None:
    """Start `settings.workers` workers and supervise them, and the embedded Redis `keeper`
    keeps, until SIGTERM or SIGINT. Raises PortInUse when a worker cannot bind the port."""
    supervisor = Supervisor(settings, ruleset, redis_url, keeper)
    for sig in FORWARDED:
        signal.signal(sig, supervisor.forward)
    for slot in range(settings.workers):
        supervisor.spawn(slot)
    start_http(settings, settings.port)
    say(
        f"journeyman: serving {ruleset.version} on {settings.host}:{settings.port} with "
        f"{settings.workers} workers (pids {', '.join(map(str, supervisor.workers))}); gRPC, "
        f"{security(settings)}; stop with Ctrl-C or SIGTERM"
    )
    while supervisor.workers:
        try:
            supervisor.reap()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
    if supervisor.port_refused:
        raise port_in_use(settings.address)
    say("journeyman: all workers stopped")
