"""`journeyman replay` and a running service agree on the real BPIC 2012 log.

The whole log (262,200 events, 13,087 applications), read from its CSV with `--map` as a
marketer would, goes once through `journeyman replay --customers-out` (in-process, no Redis) and
once through a running `journeyman serve` (DecideBatch, each application's events in log order).
Every customer's stage and counters must be the same: the service's as GetCustomer reads them at
the customer's last event, the replay's as it writes them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from benchmarks.load.service import RULES_DIR, Running, journeyman
from engine.event import Event
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.tools.cli import main
from server.tools.event_files import ColumnMap, read_events
from server.tools.event_logs import bpic2012_csv

pytestmark = [pytest.mark.service, pytest.mark.slow]

RULES = RULES_DIR / "loan_application.yaml"
COLUMNS = "type=activity,customer=case_id,time=timestamp"
BATCH = 2000
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
LOOKUPS_AT_ONCE = 64


@pytest.fixture(scope="module")
def log() -> list[tuple[Event, int]]:
    if not bpic2012_csv().is_file():
        pytest.skip(f"the BPIC 2012 log is not at {bpic2012_csv()}")
    return list(read_events(bpic2012_csv(), ColumnMap.parse(COLUMNS)))


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with journeyman(
        RULES, max_batch=str(BATCH), max_message_bytes=str(MAX_MESSAGE_BYTES)
    ) as running:
        yield running


def as_request(event: Event, at_ms: int) -> pb.DecideRequest:
    properties = {
        name: pb.Value(string_value=value)
        if isinstance(value, str)
        else pb.Value(number_value=float(value))
        for name, value in event.properties.items()
    }
    return pb.DecideRequest(
        event=pb.Event(
            event_id=event.event_id, customer_id=event.customer_id, type=event.type,
            channel=event.channel, touchpoint=event.touchpoint, timestamp_ms=at_ms,
            properties=properties,
        )
    )  # fmt: skip


def send_all(address: str, log: Sequence[tuple[Event, int]]) -> None:
    """Every event in log order (so each customer's in order), in batches; none may fail."""
    options = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]
    with grpc.insecure_channel(address, options=options) as channel:
        stub = pb_grpc.JourneyServiceStub(channel)
        for start in range(0, len(log), BATCH):
            requests = [as_request(e, t) for e, t in log[start : start + BATCH]]
            reply = stub.DecideBatch(pb.DecideBatchRequest(requests=requests), timeout=120)
            failed = [r for r in reply.results if r.error_code or r.decision.degraded]
            assert not failed, failed[:3]


async def service_view(
    address: str, last_ms: dict[str, int]
) -> dict[str, dict[str, dict[str, object]]]:
    """Each customer's journeys (stage, counters) as GetCustomer reads them at `last_ms`."""
    found: dict[str, dict[str, dict[str, object]]] = {}
    slots = asyncio.Semaphore(LOOKUPS_AT_ONCE)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.JourneyServiceStub(channel)

        async def look_up(customer: str) -> None:
            request = pb.GetCustomerRequest(customer_id=customer, as_of_ms=last_ms[customer])
            async with slots:
                reply = await stub.GetCustomer(request, timeout=30)
            found[customer] = {
                j.journey: {"stage": j.stage, "counters": dict(j.counters)}
                for j in reply.customer.journeys
            }

        await asyncio.gather(*(look_up(c) for c in last_ms))
    return found


def test_replay_and_service_agree_on_every_customer(
    log: list[tuple[Event, int]], server: Running, tmp_path: Path
) -> None:
    customers_out = tmp_path / "customers.jsonl"
    code = main([
        "replay", "--rules", str(RULES), "--events", str(bpic2012_csv()), "--map", COLUMNS,
        "--customers-out", str(customers_out), "--json",
    ])  # fmt: skip
    assert code == 0
    replayed = {
        item["customer_id"]: item["journeys"]
        for item in map(json.loads, customers_out.read_text(encoding="utf-8").splitlines())
    }
    send_all(server.address, log)
    last_ms: dict[str, int] = {}
    for event, at_ms in log:
        last_ms[event.customer_id] = max(at_ms, last_ms.get(event.customer_id, at_ms))
    served = asyncio.run(service_view(server.address, last_ms))
    assert len(replayed) == len(served) == 13_087
    differing = [c for c in replayed if replayed[c] != served[c]]
    assert not differing, [(c, replayed[c], served[c]) for c in differing[:3]]
