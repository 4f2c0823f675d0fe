"""The bare Decide of the benchmarks (`benchmarks.load.bare`): over real gRPC and its real embedded
Redis, it answers and stores what the engine decides, or its floor would measure something else.

The truth is the engine itself: each customer's events replayed through `engine.decide.decide`
from a new state, in order, with their own timestamps.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from benchmarks.load import bare as bare_module
from benchmarks.load.bare import PARTS, PARTS_FILE, RETAIL, Bare, PartCpu, read_part_cpu, start_bare
from benchmarks.load.drive import retail_requests
from engine.codec import encode_state
from engine.decide import decide
from engine.state import CustomerState, new_state
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.core.config import Settings
from server.decisions.active import decode_or_new
from server.protocol.convert import decide_input
from server.rules.rulesource import load_ruleset
from server.store.redis_store import Store, ToLoad


@pytest.fixture
async def bare(tmp_path: Path) -> AsyncIterator[Bare]:
    serving = await start_bare(tmp_path / "data")
    try:
        yield serving
    finally:
        await serving.stop()


def _requests(count: int) -> list[pb.DecideRequest]:
    """Retail shoppers' events (3 customers, so each has several), stamped a second apart."""
    now_ms = time.time_ns() // 1_000_000 - 60_000
    requests = list(itertools.islice(retail_requests(customers=3, seed=7), count))
    for at, request in enumerate(requests):
        request.event.timestamp_ms = now_ms + 1_000 * at
    return requests


def _stages(decision: pb.Decision) -> list[tuple[str, str]]:
    return [(journey.journey, journey.stage) for journey in decision.journeys]


async def test_answers_and_stores_what_the_engine_decides(bare: Bare) -> None:
    requests = _requests(24)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{bare.port}") as channel:
        stub = pb_grpc.JourneyServiceStub(channel)
        answers = [(await stub.Decide(request)).decision for request in requests]

    settings, ruleset = Settings(), load_ruleset([str(RETAIL)])
    states: dict[str, CustomerState] = {}
    for request, answer in zip(requests, answers, strict=True):
        checked = decide_input(request, request.event.timestamp_ms, settings)
        customer = checked.event.customer_id
        decision, states[customer] = decide(
            ruleset, states.get(customer) or new_state(ruleset), checked.event,
            checked.timestamp_ms, dedupe_window=settings.dedupe_window,
        )  # fmt: skip
        assert _stages(answer) == [(j.journey, j.stage) for j in decision.journeys]
        assert [a.action for a in answer.actions] == [a.action for a in decision.actions]
        assert not answer.degraded and answer.event_id == checked.event.event_id

    store = Store.from_settings(settings, bare.redis.url)
    try:
        for customer, replayed in states.items():
            loaded = (await store.load_many([ToLoad(customer, False, [])]))[0]
            stored = decode_or_new(ruleset, loaded.state)
            assert encode_state(ruleset, stored) == encode_state(ruleset, replayed)
            assert len(loaded.ring.kept) == sum(
                r.event.customer_id == customer for r in requests
            )  # every event's decision kept (fewer than the ring holds)
    finally:
        await store.close()


def test_each_part_is_charged_the_cpu_its_thread_spent_since_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bare_module, "WRITE_EVERY_S", 0.0)  # written at every call's end
    cpu = PartCpu(tmp_path / PARTS_FILE)
    assert read_part_cpu(tmp_path) is None  # nothing written yet
    for _ in range(2):
        cpu.start()
        started = time.thread_time_ns()
        while time.thread_time_ns() - started < 2_000_000:  # 2 ms of this thread's CPU
            pass
        cpu.took("engine")
        time.sleep(0.01)  # not this thread's CPU
        cpu.start()
        cpu.took("state")
        cpu.call_ended()
    written = read_part_cpu(tmp_path)
    assert written is not None and set(written) == set(PARTS)
    assert 2_000 <= written["engine"] < 4_000  # µs per call
    assert written["state"] < 1_000 and written["validation"] == 0
