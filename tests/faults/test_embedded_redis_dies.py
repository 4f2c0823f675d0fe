"""The embedded Redis of a real `journeyman serve` (one process, or a --workers supervisor):
killed with SIGKILL under load from 8 clients, it is restarted from its AOF and the service
recovers by itself, with the store's health saying NOT_SERVING meanwhile, a log line and a
metric, and no acknowledged event lost; and a SIGKILLed serve does not leave its redis-server
running, so the next serve on the same data folder starts.

Every process started here is killed by its pid in a `finally`.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.tools.healthcheck import STORE_SERVICE
from tests.service.test_process import Served, _alive, _free_port, _start, _wait_until_serving

pytestmark = pytest.mark.service

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
RECOVERY_BOUND_S = 30.0  # restart backoff (1 s) + start + probe, with room for a busy machine
EVENTS_BEFORE = 20
CLIENTS = 8


def _wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _decide(stub: pb_grpc.JourneyServiceStub, event_id: str, customer: str) -> pb.Decision:
    event = pb.Event(event_id=event_id, customer_id=customer, type="product_view")
    return stub.Decide(pb.DecideRequest(event=event), timeout=5).decision


def _product_views(stub: pb_grpc.JourneyServiceStub, customer: str) -> float:
    reply = stub.GetCustomer(pb.GetCustomerRequest(customer_id=customer), timeout=5)
    (journey,) = reply.customer.journeys
    return journey.counters["product_views_7d"]


def _children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _metric(port: int, sample: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        page = response.read().decode()
    (value,) = [row.split()[-1] for row in page.splitlines() if row.startswith(sample + " ")]
    return float(value)


@dataclass
class Load:
    """CLIENTS threads, each sending its own customer's events in order until `stop` is set."""

    address: str
    stop: threading.Event = field(default_factory=threading.Event)
    sent: Counter[str] = field(default_factory=Counter)
    stored: Counter[str] = field(default_factory=Counter)  # acknowledged, not degraded
    degraded: Counter[str] = field(default_factory=Counter)
    last_stored: dict[str, bool] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def customers(self) -> list[str]:
        return [f"load{number}" for number in range(CLIENTS)]

    def start(self) -> None:
        for customer in self.customers:
            thread = threading.Thread(target=self._client, args=(customer,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def _client(self, customer: str) -> None:
        with grpc.insecure_channel(self.address) as channel:
            stub = pb_grpc.JourneyServiceStub(channel)
            while not self.stop.is_set():
                self.sent[customer] += 1
                try:  # each event once: a refused call may still have been stored
                    decision = _decide(stub, f"{customer}-{self.sent[customer]}", customer)
                except grpc.RpcError:
                    pass
                else:
                    counter = self.degraded if decision.degraded else self.stored
                    counter[customer] += 1
                    self.last_stored[customer] = not decision.degraded
                time.sleep(0.01)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Starts `journeyman serve` processes (data under tmp_path/data) and kills them at the end."""
    started: list[Served] = []

    def start(workers: int, metrics_port: int = 0) -> Served:
        served = _start(tmp_path, _free_port(), metrics_port, workers=str(workers))
        started.append(served)
        _wait_until_serving(served)
        return served

    try:
        yield start
    finally:
        for served in started:
            served.kill()


def _kill_redis_and_watch_it_come_back(served: Served, health: health_pb2_grpc.HealthStub) -> int:
    """SIGKILL the embedded redis-server; return its pid once the store's health has gone
    NOT_SERVING (the whole server staying SERVING) and then SERVING again."""
    # Watch pushes every change of the store's health, so a short outage is not missed.
    store_health = health.Watch(
        health_pb2.HealthCheckRequest(service=STORE_SERVICE), timeout=RECOVERY_BOUND_S
    )
    try:
        assert next(store_health).status == SERVING
        redis_pid = served.redis_pid()
        os.kill(redis_pid, signal.SIGKILL)
        assert next(store_health).status == NOT_SERVING
        overall = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert overall.status == SERVING  # degraded answers are still useful
        assert next(store_health).status == SERVING  # restarted, by itself
    finally:
        store_health.cancel()
    return redis_pid


def _check_every_acknowledged_event_is_there(stub: pb_grpc.JourneyServiceStub, load: Load) -> None:
    print(f"\n{'customer':>9} {'sent':>6} {'stored':>6} {'degraded':>8} {'in Redis':>8}")
    for customer in load.customers:
        counted = _product_views(stub, customer)
        print(f"{customer:>9} {load.sent[customer]:>6} {load.stored[customer]:>6} "
              f"{load.degraded[customer]:>8} {counted:>8g}")  # fmt: skip
        # Every acknowledged event is there, none twice. A commit Redis applied just before
        # dying was answered degraded: it may count without being acknowledged as stored.
        assert load.stored[customer] <= counted <= load.sent[customer]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_embedded_redis_is_restarted_and_the_service_recovers_by_itself(
    serve: Callable[..., Served], workers: int
) -> None:
    metrics_port = _free_port()
    served = serve(workers, metrics_port)
    load = Load(served.address)
    with grpc.insecure_channel(served.address) as channel:
        stub, health = pb_grpc.JourneyServiceStub(channel), health_pb2_grpc.HealthStub(channel)
        for number in range(EVENTS_BEFORE):
            assert not _decide(stub, f"before-{number}", "kim").degraded
        load.start()
        try:
            _wait_for(lambda: all(load.stored[c] >= 5 for c in load.customers))
            redis_pid = _kill_redis_and_watch_it_come_back(served, health)
            load.last_stored.clear()
            _wait_for(lambda: all(load.last_stored.get(c) for c in load.customers))
        finally:
            load.finish()
        assert served.redis_pid() != redis_pid and not _alive(redis_pid)
        assert _product_views(stub, "kim") == EVENTS_BEFORE
        _check_every_acknowledged_event_is_there(stub, load)
    served.wait_for_log(f"embedded Redis (pid {redis_pid}) ended with signal SIGKILL")
    served.wait_for_log(f"embedded Redis restarted (pid {served.redis_pid()})")
    assert _metric(metrics_port, "journeyman_embedded_redis_deaths_total") == 1
    restarts = 'journeyman_embedded_redis_restarts_total{outcome="started"}'
    assert _metric(metrics_port, restarts) == 1
    assert "Traceback" not in served.log()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2])
def test_a_sigkilled_serve_leaves_no_redis_and_the_next_serve_starts(
    serve: Callable[..., Served], workers: int
) -> None:
    first = serve(workers)
    with grpc.insecure_channel(first.address) as channel:
        assert not _decide(pb_grpc.JourneyServiceStub(channel), "e-1", "max").degraded
    children = _children(first.process.pid)  # the workers, and the redis-server among them
    redis_pid = first.redis_pid()
    assert redis_pid in children

    first.process.kill()
    first.process.wait()
    _wait_for(lambda: not any(_alive(pid) for pid in children))  # none outlives its parent

    second = serve(workers)  # same data folder
    assert second.redis_pid() != redis_pid
    with grpc.insecure_channel(second.address) as channel:
        assert _product_views(pb_grpc.JourneyServiceStub(channel), "max") == 1
