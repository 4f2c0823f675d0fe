"""`server.core.metric_batches`: the hot path's counts and observations reach their Prometheus
metrics in batches, whole, and before any read of the registry. Real prometheus_client metrics
in a registry of the test's own."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram

from server.core.metric_batches import FlushFirst, MetricBatches


def _registry(batches: MetricBatches) -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    registry.register(FlushFirst(batches))  # ahead of the metrics it feeds
    counter = Counter("jm_test_events", "events", registry=registry)
    histogram = Histogram("jm_test_seconds", "seconds", buckets=(0.1, 1.0), registry=registry)
    return registry, counter, histogram


def test_on_an_event_loop_touches_wait_for_the_flush_and_then_all_arrive() -> None:
    batches = MetricBatches(flush_after_s=0.05)
    registry = CollectorRegistry()  # no FlushFirst: reads do not flush here
    counter = Counter("jm_test_waiting", "events", registry=registry)
    histogram = Histogram("jm_test_waiting_s", "s", buckets=(0.1, 1.0), registry=registry)

    async def touch() -> tuple[float | None, float | None]:
        batches.inc(counter)
        batches.inc(counter, 2)
        for seconds in (0.05, 0.5, 5.0):
            batches.observe(histogram, seconds)
        before = registry.get_sample_value("jm_test_waiting_total")
        await asyncio.sleep(0.2)
        return before, registry.get_sample_value("jm_test_waiting_total")

    before, after = asyncio.run(touch())
    assert (before, after) == (0.0, 3.0)
    bucket = "jm_test_waiting_s_bucket"
    assert [registry.get_sample_value(bucket, {"le": le}) for le in ("0.1", "1.0", "+Inf")] == [
        1.0, 2.0, 3.0,
    ]  # fmt: skip
    assert registry.get_sample_value("jm_test_waiting_s_sum") == 5.55


def test_a_read_of_the_registry_flushes_first() -> None:
    batches = MetricBatches(flush_after_s=60.0)  # the loop's flush would come far too late
    registry, counter, histogram = _registry(batches)

    async def touch_and_read() -> float | None:
        for _ in range(5):
            batches.inc(counter)
        batches.observe(histogram, 0.5)
        return registry.get_sample_value("jm_test_events_total")

    assert asyncio.run(touch_and_read()) == 5.0
    assert registry.get_sample_value("jm_test_seconds_count") == 1.0


def test_off_an_event_loop_a_touch_arrives_at_once() -> None:
    batches = MetricBatches()
    registry = CollectorRegistry()
    counter = Counter("jm_test_at_once", "events", registry=registry)
    batches.inc(counter, 4)
    assert registry.get_sample_value("jm_test_at_once_total") == 4.0


def test_flushes_from_another_thread_neither_lose_nor_double_a_touch() -> None:
    batches = MetricBatches(flush_after_s=0.001)
    registry, counter, histogram = _registry(batches)
    touches = 60_000
    stop = threading.Event()

    def scrape() -> None:  # as the HTTP port's thread does, as often as it can
        while not stop.is_set():
            registry.get_sample_value("jm_test_events_total")

    scraper = threading.Thread(target=scrape)
    scraper.start()

    async def touch() -> None:
        for i in range(touches):
            batches.inc(counter)
            batches.observe(histogram, 0.01)
            if i % 500 == 0:
                await asyncio.sleep(0)  # let the loop's own flushes run too

    try:
        asyncio.run(touch())
    finally:
        stop.set()
        scraper.join()
    assert registry.get_sample_value("jm_test_events_total") == touches
    assert registry.get_sample_value("jm_test_seconds_count") == touches


def test_a_loop_closed_before_its_flush_does_not_hold_up_the_next_loops() -> None:
    batches = MetricBatches(flush_after_s=0.05)
    registry = CollectorRegistry()  # no FlushFirst: only the loops' flushes count here
    counter = Counter("jm_test_two_loops", "events", registry=registry)

    async def touch_and_leave() -> None:
        batches.inc(counter)  # its flush was due on this loop, which closes first

    async def touch_and_wait() -> None:
        batches.inc(counter)
        await asyncio.sleep(0.2)

    asyncio.run(touch_and_leave())
    asyncio.run(touch_and_wait())
    assert registry.get_sample_value("jm_test_two_loops_total") == 2.0
