"""`journeyman serve` as a real process: reflection and health for grpcurl, a JSON Decide, a
graceful SIGTERM that lets in-flight calls finish and stops the embedded Redis, and a clear exit
when the port is taken.

Every process started here is killed by its pid in a `finally`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from queue import Queue

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.ports import free_port
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from tests.rulesets import RULES_DIR

pytestmark = pytest.mark.service

BIN = Path(sys.executable).parent
JOURNEYMAN = BIN / "journeyman"
GRPCURL = BIN / "grpcurl"
START_TIMEOUT_S = 60.0  # a cold numba cache compiles the kernels first (about 10 s)
SERVICE = "journeyman.v1.JourneyService"


def _free_port() -> int:
    return free_port()


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting to be reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Served:
    """A `journeyman serve` child process with an embedded Redis under `data_dir`."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def redis_pid(self) -> int:
        return int((self.data_dir / "redis" / "redis.pid").read_text().strip())

    def wait_for_log(self, text: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log():
            assert self.process.poll() is None, f"exited {self.process.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {text!r} in the log:\n{self.log()}"
            time.sleep(0.02)

    def kill(self) -> None:
        """The last resort of a failed test: the server, then its Redis, by pid."""
        redis_pid = None
        try:
            redis_pid = self.redis_pid()
        except (FileNotFoundError, ValueError):
            pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if redis_pid is not None and _alive(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)


def _environment(**settings: str) -> dict[str, str]:
    """This environment without any JOURNEYMAN_* setting (no outside Redis), plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")}
    env.update({f"JOURNEYMAN_{name.upper()}": value for name, value in settings.items()})
    return env


def _start(folder: Path, port: int, metrics_port: int = 0, **settings: str) -> Served:
    log_path = folder / "serve.log"
    command = [
        str(JOURNEYMAN), "serve", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(folder / "data"), "--rules", str(RULES_DIR / "retail.yaml"),
        # 0 unless a test picks a free port: a fixed one could be taken on a shared machine.
        "--metrics-port", str(metrics_port),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=folder, env=_environment(**settings),
        )  # fmt: skip
    return Served(process, port, folder / "data", log_path)


def _wait_until_serving(served: Served, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with grpc.insecure_channel(served.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            assert served.process.poll() is None, (
                f"journeyman serve exited {served.process.returncode}:\n{served.log()}"
            )
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass  # not listening yet
            assert time.monotonic() < deadline, f"not SERVING in time:\n{served.log()}"
            time.sleep(poll_s)


@pytest.fixture
def grace_period_s() -> float:
    return 3.0


@pytest.fixture
def serving(tmp_path: Path, grace_period_s: float) -> Iterator[Served]:
    served = _start(tmp_path, _free_port(), grace_period_s=str(grace_period_s))
    try:
        _wait_until_serving(served)
        yield served
    finally:
        served.kill()


def _grpcurl(served: Served, *args: str, body: object = None) -> subprocess.CompletedProcess[str]:
    data = ["-d", json.dumps(body)] if body is not None else []
    return subprocess.run(
        [str(GRPCURL), "-plaintext", *data, served.address, *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_grpcurl_lists_describes_checks_health_and_decides(serving: Served) -> None:
    listed = _grpcurl(serving, "list")
    assert listed.returncode == 0, listed.stderr
    assert SERVICE in listed.stdout.split()
    assert "grpc.health.v1.Health" in listed.stdout.split()

    described = _grpcurl(serving, "describe", SERVICE)
    assert described.returncode == 0, described.stderr
    for method in ("Decide", "DecideStream", "DecideBatch", "Identify", "GetCustomer"):
        assert f"rpc {method} (" in described.stdout

    health = _grpcurl(serving, "grpc.health.v1.Health/Check")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}

    event = {"event_id": "e-1", "customer_id": "alice", "type": "add_to_cart", "channel": "web"}
    decided = _grpcurl(serving, f"{SERVICE}/Decide", body={"event": event})
    assert decided.returncode == 0, decided.stderr
    decision = json.loads(decided.stdout)["decision"]
    assert decision["customer_id"] == "alice" and decision["event_id"] == "e-1"
    assert decision["journeys"][0]["stage"] == "consideration"
    assert decision["ruleset_version"].startswith("retail@")
    assert "free_shipping" in [action["action"] for action in decision["actions"]]
    assert not decision.get("degraded", False)


def test_grpcurl_shows_the_bad_fields_of_an_invalid_event(serving: Served) -> None:
    event = {"customer_id": "a{b}", "type": "add_to_cart"}
    refused = _grpcurl(serving, f"{SERVICE}/Decide", body={"event": event})
    assert refused.returncode != 0
    assert "InvalidArgument" in refused.stderr
    assert "event.event_id" in refused.stderr and "event.customer_id" in refused.stderr


def _stream_event(event_id: str, type_: str = "product_view") -> pb.DecideStreamRequest:
    event = pb.Event(event_id=event_id, customer_id="bo", type=type_, channel="web")
    return pb.DecideStreamRequest(request=pb.DecideRequest(event=event))


@contextmanager
def _stream(
    address: str,
) -> Iterator[tuple[Queue[pb.DecideStreamRequest | None], Iterator[pb.DecideStreamResponse]]]:
    """A DecideStream whose requests the test puts on a queue (None ends it)."""
    requests: Queue[pb.DecideStreamRequest | None] = Queue()
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.JourneyServiceStub(channel)
        # grpc reads the request iterator on a thread of its own, so get() may block.
        responses = stub.DecideStream(iter(requests.get, None), timeout=30)
        try:
            yield requests, responses
        finally:
            requests.put(None)


def test_sigterm_lets_in_flight_calls_finish_then_exits_0_and_stops_redis(
    serving: Served, grace_period_s: float
) -> None:
    redis_pid = serving.redis_pid()
    assert _alive(redis_pid)
    with _stream(serving.address) as (requests, responses):
        # A stream the server is surely running: one event sent and answered before SIGTERM.
        requests.put(_stream_event("t-1"))
        assert next(responses).decision.event_id == "t-1"

        serving.process.send_signal(signal.SIGTERM)
        serving.wait_for_log("journeyman: stopping")

        # The call in flight goes on: more events, each answered from Redis, then a clean end.
        for event_id, type_ in (("t-2", "add_to_cart"), ("t-3", "checkout_started")):
            requests.put(_stream_event(event_id, type_))
            decision = next(responses).decision
            assert decision.event_id == event_id and not decision.degraded
        assert decision.journeys[0].stage == "purchase"
        requests.put(None)
        assert list(responses) == []
        assert responses.code() is grpc.StatusCode.OK

    assert serving.process.wait(timeout=grace_period_s + 10) == 0, serving.log()
    assert not _alive(redis_pid)
    assert "Traceback" not in serving.log()


@pytest.mark.parametrize("grace_period_s", [1.0])
def test_sigterm_cuts_a_call_that_outlives_the_grace_period_and_still_exits_0(
    serving: Served, grace_period_s: float
) -> None:
    redis_pid = serving.redis_pid()
    with _stream(serving.address) as (requests, responses):
        requests.put(_stream_event("u-1"))
        assert next(responses).decision.event_id == "u-1"
        serving.process.send_signal(signal.SIGTERM)  # and the client never ends its stream
        assert serving.process.wait(timeout=grace_period_s + 10) == 0, serving.log()
        with pytest.raises(grpc.RpcError) as raised:
            next(responses)
        assert raised.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    assert not _alive(redis_pid)


def test_metrics_answer_as_soon_as_health_says_serving(tmp_path: Path) -> None:
    """A readiness check that passes finds /metrics up: the HTTP port starts before SERVING."""
    metrics_port = _free_port()
    served = _start(tmp_path, _free_port(), metrics_port=metrics_port)
    try:
        _wait_until_serving(served, poll_s=0.0)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
            assert page.status == 200
            assert b"journeyman_decisions_total" in page.read()
    finally:
        served.kill()


def test_a_port_in_use_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        served = _start(tmp_path, port)
        try:
            code = served.process.wait(timeout=START_TIMEOUT_S)
            output = served.log()
        finally:
            served.kill()
    assert code == 2, output
    assert f"cannot listen on 127.0.0.1:{port}" in output and "in use" in output
    assert "--port" in output  # says what to do
    assert "Traceback" not in output
    # The embedded Redis it had started is stopped again, not left behind.
    pid_file = tmp_path / "data" / "redis" / "redis.pid"
    assert not pid_file.exists() or not _alive(int(pid_file.read_text().strip()))


def test_an_http_port_in_use_exits_2_before_health_ever_says_serving(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        http_port = int(taken.getsockname()[1])
        served = _start(tmp_path, _free_port(), metrics_port=http_port)
        said: list[int] = []
        try:
            with grpc.insecure_channel(served.address) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                while served.process.poll() is None:
                    try:
                        check = health_pb2.HealthCheckRequest(service=SERVICE)
                        said.append(health.Check(check, timeout=1).status)
                    except grpc.RpcError:
                        pass  # not listening yet, or gone
            code = served.process.wait(timeout=START_TIMEOUT_S)
            output = served.log()
        finally:
            served.kill()
    assert code == 2, output
    assert f"cannot serve HTTP (metrics, the journey map) on port {http_port}" in output
    assert "--http-port" in output  # says what to do
    assert "Traceback" not in output
    assert health_pb2.HealthCheckResponse.SERVING not in said


def test_the_start_lines_say_where_redis_listens_and_whether_tls_and_tokens_are_on(
    tmp_path: Path,
) -> None:
    served = _start(tmp_path, _free_port(), auth_tokens="start-line-token-0123456789 decide")
    try:
        _wait_until_serving(served)
        served.wait_for_log("journeyman: serving")
    finally:
        served.kill()
    socket_path = served.data_dir.resolve() / "redis" / "redis.sock"
    assert f"on the unix socket {socket_path} (redis-cli -s {socket_path})" in served.log()
    assert "(gRPC, TLS off, token auth on;" in served.log()
    assert "start-line-token" not in served.log()  # a secret is never printed
