"""`journeyman serve` (or the echo ceiling) as a child process for a benchmark run.

Each server gets a free loopback port, its own data folder (so its own embedded Redis, unless a
`redis_url` is given) and a log file; it is stopped by pid on the way out, SIGTERM first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from benchmarks import ROOT
from benchmarks.ports import free_port
from server.tools.healthcheck import check

RULES_DIR = ROOT / "rules"
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 90.0  # a cold numba cache compiles every kernel first
STOP_TIMEOUT_S = 15.0
SERVICE = "journeyman.v1.JourneyService"


@dataclass(frozen=True)
class Running:
    """A server started for a benchmark: where it listens and what to read its CPU from."""

    address: str
    pid: int
    folder: Path
    redis_url: str | None

    @property
    def log_path(self) -> Path:
        return self.folder / "serve.log"

    def redis_pid(self) -> int | None:
        """The embedded Redis's pid (None when the server uses an outside Redis)."""
        pid_file = self.folder / "data" / "redis" / "redis.pid"
        return int(pid_file.read_text().strip()) if pid_file.exists() else None

    def embedded_redis_url(self) -> str:
        """A URL for the Redis this server uses (its embedded one's unix socket, or the given)."""
        if self.redis_url is not None:
            return self.redis_url
        sockets = sorted((self.folder / "data" / "redis").glob("*.sock"))
        if not sockets:
            raise RuntimeError(f"no embedded Redis socket under {self.folder / 'data'}")
        return f"unix://{sockets[0]}"


def _environment(settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")}
    env.update({f"JOURNEYMAN_{name.upper()}": value for name, value in settings.items()})
    return env


def wait_until_serving(address: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited {process.returncode}:\n{log.read_text()}")
        try:
            if check(address, SERVICE, timeout_s=1) == "SERVING":
                return
        except grpc.RpcError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise RuntimeError(f"not SERVING after {START_TIMEOUT_S:g} s:\n{log.read_text()}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def journeyman(
    rules: Path = RULES_DIR / "retail.yaml",
    *,
    redis_url: str | None = None,
    metrics_port: int = 0,
    **settings: str,
) -> Iterator[Running]:
    """A `journeyman serve` on a free port, SERVING when this yields; `settings` become
    JOURNEYMAN_* variables (e.g. ``workers="2"``). `metrics_port` 0: no /metrics."""
    with tempfile.TemporaryDirectory(prefix="journeyman-bench-") as tmp:
        folder = Path(tmp)
        port = free_port()
        command = [
            str(BIN / "journeyman"), "serve", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(folder / "data"), "--rules", str(rules),
            "--metrics-port", str(metrics_port),
        ]  # fmt: skip
        if redis_url is not None:
            settings = {**settings, "redis_url": redis_url}
        log = folder / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=folder, env=_environment(settings),
            )  # fmt: skip
        try:
            address = f"127.0.0.1:{port}"
            wait_until_serving(address, process, log)
            yield Running(address, process.pid, folder, redis_url)
        finally:
            _stop(process)


@contextmanager
def echo(event_loop: str = "auto") -> Iterator[Running]:
    """The transport ceiling (`benchmarks/load/echo.py`) on a free port, on the same kind of event
    loop as `journeyman serve` (both default to uvloop when it is installed)."""
    with _module_server("echo", event_loop, serving=False) as running:
        yield running


@contextmanager
def bare(event_loop: str = "auto") -> Iterator[Running]:
    """A bare Decide (`benchmarks/load/bare.py`: the parts and one commit, nothing around them)
    on a free port with an embedded Redis of its own, SERVING when this yields."""
    with _module_server("bare", event_loop, serving=True) as running:
        yield running


@contextmanager
def _module_server(name: str, event_loop: str, *, serving: bool) -> Iterator[Running]:
    """`python -m benchmarks.load.<name>` on a free port with a folder of its own (`--data-dir`
    when it keeps data), stopped by pid; ready when it listens, or when health says SERVING."""
    with tempfile.TemporaryDirectory(prefix=f"journeyman-{name}-") as tmp:
        folder = Path(tmp)
        port = free_port()
        log = folder / "serve.log"
        data = ["--data-dir", str(folder / "data")] if serving else []
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", f"benchmarks.load.{name}", "--port", str(port), *data,
                 "--event-loop", event_loop],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        try:
            address = f"127.0.0.1:{port}"
            if serving:
                wait_until_serving(address, process, log)
            else:
                _wait_until_listening(address, process, log)
            yield Running(address, process.pid, folder, None)
        finally:
            _stop(process)


def _wait_until_listening(address: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the echo server exited {process.returncode}:\n{log.read_text()}")
        with grpc.insecure_channel(address) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                return
            except grpc.FutureTimeoutError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the echo server did not listen:\n{log.read_text()}")


def scrape(port: int) -> dict[str, float]:
    """Decide calls answered (and their seconds in the server), Redis round trips and commands,
    decision rounds and the events in them so far, from the /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
        text = page.read().decode()
    wanted = {
        ("journeyman_call_seconds_count", "Decide"): "events",
        ("journeyman_redis_pipelines_total", None): "pipelines",
        ("journeyman_redis_commands_total", None): "commands",
        ("journeyman_call_seconds_sum", "Decide"): "call_seconds",
        ("journeyman_round_events_sum", None): "round_events",
        ("journeyman_round_events_count", None): "rounds",
    }
    counts = dict.fromkeys(wanted.values(), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = wanted.get((sample.name, sample.labels.get("method")))
            if name is not None:
                counts[name] += sample.value  # summed over status codes
    return counts
