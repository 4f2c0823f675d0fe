"""Capture: a service with JOURNEYMAN_CAPTURE_DAYS keeps the events it accepted, `journeyman events
export` writes them out, and the export replays to the stages the service holds.

Real BPIC 2012 applications go through a running `journeyman serve` (DecideBatch, each
application's events in log order), then each customer's last 16 events again (repeats:
answered, not captured) and an invalid event (refused: not captured). The export must hold each
accepted event once, each customer's events together and in log order; `journeyman replay` of
it must end every customer in the stage GetCustomer reports.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from benchmarks.load.service import BIN, RULES_DIR, Running, journeyman
from engine.event import Event
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.tools.cli import main
from server.tools.event_files import ColumnMap, read_events
from server.tools.event_logs import bpic2012_csv
from tests.faults.test_replay_agrees import as_request, service_view

pytestmark = pytest.mark.service

RULES = RULES_DIR / "loan_application.yaml"
CASES = 300


@pytest.fixture(scope="module")
def log() -> list[tuple[Event, int]]:
    if not bpic2012_csv().is_file():
        pytest.skip(f"the BPIC 2012 log is not at {bpic2012_csv()}")
    columns = ColumnMap.parse("type=activity,customer=case_id,time=timestamp")
    cases: set[str] = set()
    events = []
    for event, at_ms in read_events(bpic2012_csv(), columns):
        if event.customer_id not in cases and len(cases) == CASES:
            continue
        cases.add(event.customer_id)
        events.append((event, at_ms))
    return events


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with journeyman(RULES, capture_days="7") as running:
        yield running


def send(address: str, log: list[tuple[Event, int]]) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.JourneyServiceStub(channel)
        for start in range(0, len(log), 500):
            requests = [as_request(e, t) for e, t in log[start : start + 500]]
            reply = stub.DecideBatch(pb.DecideBatchRequest(requests=requests), timeout=60)
            assert reply.not_stored == 0
        bad = pb.DecideRequest(event=pb.Event(event_id="bad", customer_id="", type="x"))
        with pytest.raises(grpc.RpcError):
            stub.Decide(bad, timeout=10)


def recent(log: list[tuple[Event, int]]) -> list[tuple[Event, int]]:
    """Each customer's last events within the dedupe window (16): sent again, they are
    repeats (an older id would be a new event again)."""
    seen: dict[str, int] = {}
    kept = []
    for event, at_ms in reversed(log):
        seen[event.customer_id] = seen.get(event.customer_id, 0) + 1
        if seen[event.customer_id] <= 16:
            kept.append((event, at_ms))
    return kept[::-1]


def test_the_export_holds_what_was_accepted_and_replays_to_the_same_stages(
    log: list[tuple[Event, int]], server: Running, tmp_path: Path
) -> None:
    send(server.address, log)
    send(server.address, recent(log))  # repeats: answered, not captured again
    exported = tmp_path / "events.jsonl.gz"
    code = main([
        "events", "export", "--since", "1d", "-o", str(exported),
        "--redis-url", server.embedded_redis_url(),
    ])  # fmt: skip
    assert code == 0
    lines = [json.loads(line) for line in gzip.open(exported, "rt", encoding="utf-8")]
    assert sorted(line["event_id"] for line in lines) == sorted(e.event_id for e, _ in log)
    order = [line["customer_id"] for line in lines]
    assert len({c for i, c in enumerate(order) if i == 0 or order[i - 1] != c}) == CASES
    position = {e.event_id: i for i, (e, _) in enumerate(log)}
    for earlier, later in zip(lines, lines[1:], strict=False):
        if earlier["customer_id"] == later["customer_id"]:
            assert position[earlier["event_id"]] < position[later["event_id"]]
    customers_out = tmp_path / "customers.jsonl"
    assert main([
        "replay", "--rules", str(RULES), "--events", str(exported),
        "--customers-out", str(customers_out),
    ]) == 0  # fmt: skip
    replayed = {
        item["customer_id"]: item["journeys"]
        for item in map(json.loads, customers_out.read_text(encoding="utf-8").splitlines())
    }
    last_ms: dict[str, int] = {}
    for event, at_ms in log:
        last_ms[event.customer_id] = max(at_ms, last_ms.get(event.customer_id, at_ms))
    assert replayed == asyncio.run(service_view(server.address, last_ms))


def test_capture_is_off_by_default(tmp_path: Path) -> None:
    with journeyman(RULES) as running:
        event = pb.Event(event_id="e1", customer_id="c1", type="A_SUBMITTED")
        with grpc.insecure_channel(running.address) as channel:
            pb_grpc.JourneyServiceStub(channel).Decide(pb.DecideRequest(event=event), timeout=10)
        out = tmp_path / "none.jsonl"
        done = subprocess.run(
            [str(BIN / "journeyman"), "events", "export", "-o", str(out),
             "--redis-url", running.embedded_redis_url()],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert out.read_text(encoding="utf-8") == ""
        assert "wrote 0 events" in done.stderr
