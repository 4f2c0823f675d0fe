"""One port, one store: a second, unrelated `journeyman serve` on a port a first one holds exits 2
with the port-in-use message, whatever `--workers` each has (SO_REUSEPORT lets only the first
supervisor's own workers share it), and the first keeps serving.

Every process started here is killed by its pid in a `finally`.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from tests.service.test_process import (
    START_TIMEOUT_S,
    _alive,
    _free_port,
    _start,
    _wait_until_serving,
)

pytestmark = pytest.mark.service

FRESH_CONNECTIONS = 6  # each may land on any process bound to the port


def _decide_on_fresh_connections(address: str) -> list[bool]:
    """`degraded` of one Decide per new connection (a new channel is a new TCP connection)."""
    degraded = []
    for number in range(FRESH_CONNECTIONS):
        with grpc.insecure_channel(address) as channel:
            event = pb.Event(event_id=f"c-{number}", customer_id=f"c{number}", type="add_to_cart")
            reply = pb_grpc.JourneyServiceStub(channel).Decide(
                pb.DecideRequest(event=event), timeout=5
            )
            degraded.append(reply.decision.degraded)
    return degraded


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("first_workers", "second_workers"), [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_a_second_serve_on_a_port_in_use_exits_2_and_the_first_keeps_serving(
    tmp_path: Path, first_workers: int, second_workers: int
) -> None:
    port = _free_port()
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = _start(tmp_path / "first", port, workers=str(first_workers))
    second = None
    try:
        _wait_until_serving(first)
        second = _start(tmp_path / "second", port, workers=str(second_workers))
        code = second.process.wait(timeout=START_TIMEOUT_S)
        output = second.log()
        assert code == 2, output
        assert f"cannot listen on 127.0.0.1:{port}" in output and "in use" in output, output
        assert "--port" in output  # says what to do
        assert "Traceback" not in output
        assert first.process.poll() is None
        assert _decide_on_fresh_connections(first.address) == [False] * FRESH_CONNECTIONS
    finally:
        first.kill()
        if second is not None:
            second.kill()
    # The second left no embedded Redis of its own behind.
    pid_file = tmp_path / "second" / "data" / "redis" / "redis.pid"
    assert not pid_file.exists() or not _alive(int(pid_file.read_text().strip()))
