"""GetJourneyStats over a real port and a real Redis: after random shoppers' events, every figure
equals the one computed from the decisions the service answered (stages, moves per day and
from-stage, entries, time in stage, stalls, friction per stage), and bad requests name the field.
The BPIC 2012 replay against the raw log is `tests/faults/test_journey_stats_bpic.py`."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime

import grpc
import pytest

from journeyman.v1 import journeyman_pb2 as pb
from tests.conftest import Service

pytestmark = pytest.mark.service

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
STALL_AFTER_MS = 7 * DAY_MS  # retail.yaml says nothing: the default
TYPES = ("page_view", "product_view", "add_to_cart", "checkout_started", "purchase", "rage_click")


def bound_ms(bucket: int) -> int:
    """The documented time-in-stage buckets: up to ceil(1000 * 2 ** (b / 4)) ms."""
    return math.ceil(1000 * 2 ** (bucket / 4))


def bucket_upper_s(duration_ms: int) -> float:
    bucket = 0
    while bound_ms(bucket) < duration_ms:
        bucket += 1
    return bound_ms(bucket) / 1000


def nearest_rank(values: list[int], numerator: int, denominator: int) -> int:
    ordered = sorted(values)
    return ordered[-(-len(ordered) * numerator // denominator) - 1]


def day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()


def shoppers(prefix: str, now_ms: int) -> list[pb.Event]:
    """Forty shoppers over the last twenty days, each event a few hours after their last."""
    rng = random.Random(13)
    events = []
    for n in range(40):
        at_ms = now_ms - 20 * DAY_MS + rng.randrange(5 * DAY_MS)
        for k in range(rng.randrange(1, 12)):
            at_ms += rng.randrange(HOUR_MS // 2, 3 * DAY_MS)
            if at_ms >= now_ms:
                break
            events.append(pb.Event(
                event_id=f"{prefix}{n}-{k}", customer_id=f"{prefix}{n}", type=rng.choice(TYPES),
                channel="web", touchpoint=rng.choice(("pdp", "cart")), timestamp_ms=at_ms,
            ))  # fmt: skip
    return events


async def answers(service: Service, events: list[pb.Event]) -> list[pb.Decision]:
    """Each customer's events in order (one batch, customers' lanes in order)."""
    request = pb.DecideBatchRequest(requests=[pb.DecideRequest(event=e) for e in events])
    response = await service.stub.DecideBatch(request, timeout=30)
    assert not response.not_stored
    return [result.decision for result in response.results]


async def settled(
    service: Service, request: pb.GetJourneyStatsRequest, customers: int
) -> pb.GetJourneyStatsResponse:
    """The figures once the statistics flush (every 50 ms) has counted every customer."""
    deadline = time.monotonic() + 5
    previous = None
    while True:
        stats = await service.stub.GetJourneyStats(request, timeout=5)
        # Moves keep the sum, so it is not enough: the figures must also stop moving.
        counted = sum(s.customers for s in stats.stages) == customers
        same = previous is not None and [s.customers for s in stats.stages] == [
            s.customers for s in previous.stages
        ]
        if counted and same or time.monotonic() > deadline:
            return stats
        previous = stats
        await asyncio.sleep(0.2)


async def test_figures_equal_the_answers(service: Service) -> None:
    now_ms = int(time.time() * 1000)
    events = shoppers("js-", now_ms)
    decisions = await answers(service, events)
    stage: dict[str, str] = {}
    entered: dict[str, int] = {}
    last: dict[str, int] = {}
    moves: Counter[tuple[str, str, str]] = Counter()
    entries: Counter[str] = Counter()
    times: dict[str, list[int]] = defaultdict(list)
    levels: Counter[tuple[str, str]] = Counter()
    for event, decision in zip(events, decisions, strict=True):
        (outcome,) = decision.journeys
        customer, at_ms = event.customer_id, decision.decided_at_ms
        if customer not in stage:
            entries[outcome.previous_stage] += 1
            entered[customer] = at_ms
        if outcome.changed:
            moves[outcome.transition, outcome.previous_stage, day(at_ms)] += 1
            entries[outcome.stage] += 1
            times[outcome.previous_stage].append(at_ms - entered[customer])
            entered[customer] = at_ms
        levels[outcome.previous_stage, outcome.friction_level] += 1
        stage[customer], last[customer] = outcome.stage, at_ms
    first_day = day(now_ms - 21 * DAY_MS)
    request = pb.GetJourneyStatsRequest(journey="retail", since=first_day)
    stats = await settled(service, request, len(stage))

    assert stats.journey == "retail" and stats.stall_after_ms == STALL_AFTER_MS
    assert sum(moves.values()) > 20 and any(s.stalled for s in stats.stages)  # a real test
    assert any(edge.customers == 0 for edge in stats.transitions)  # and a never taken one
    stalled_at = now_ms - STALL_AFTER_MS - HOUR_MS  # stalls are counted to the hour
    for figures in stats.stages:
        name = figures.stage
        in_stage = [c for c in stage if stage[c] == name]
        assert figures.customers == len(in_stage), name
        sure = sum(1 for c in in_stage if last[c] < stalled_at)
        maybe = sum(1 for c in in_stage if last[c] < now_ms - STALL_AFTER_MS)
        assert sure <= figures.stalled <= maybe, name
        assert figures.entries == entries[name], name
        assert figures.visits == entries[name], name  # nobody was in it before the first day
        assert figures.time_in_stage_samples == len(times[name]), name
        if times[name]:
            median = bucket_upper_s(nearest_rank(times[name], 1, 2))
            p90 = bucket_upper_s(nearest_rank(times[name], 9, 10))
            assert (figures.time_in_stage_median_s, figures.time_in_stage_p90_s) == (median, p90)
        counted = {c.level: c.events for c in figures.friction_levels}
        assert counted == {lvl: levels[name, lvl] for lvl in stats.friction_levels}, name
    for edge in stats.transitions:
        per_day = {d.day: d.customers for d in edge.per_day}
        expected = {
            d: count for (t, f, d), count in moves.items()
            if (t, f) == (edge.transition, edge.from_stage)
        }  # fmt: skip
        assert {d: c for d, c in per_day.items() if c} == expected, edge.transition
        assert edge.customers == sum(expected.values())
        visits = entries[edge.from_stage]
        assert edge.share == pytest.approx(edge.customers / visits) if visits else True


async def test_bad_range_names_the_field(service: Service) -> None:
    for request, field in (
        (pb.GetJourneyStatsRequest(journey="nope"), "journey"),
        (pb.GetJourneyStatsRequest(since="2026-13-01"), "since"),
        (pb.GetJourneyStatsRequest(since="2026-02-01", until="2026-01-01"), "since"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await service.stub.GetJourneyStats(request, timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (caught.value.details() or "")
