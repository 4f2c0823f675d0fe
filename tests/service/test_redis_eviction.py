"""A Redis that deletes keys when it is full (a `maxmemory` with any policy but noeviction)
would lose customer states without a word: the server says so when Redis first answers, and
says nothing of a Redis that never evicts. Real redis-server processes, configured each way."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from server.core.config import Settings
from tests.conftest import start_retail_server
from tests.faults.test_redis_slow import start_redis_server

pytestmark = pytest.mark.service

EVICTION = "Redis deletes keys when it is full"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"), "allkeys-lru"),
        (("--maxmemory", "64mb", "--maxmemory-policy", "volatile-ttl"), "volatile-ttl"),
        (("--maxmemory", "64mb", "--maxmemory-policy", "noeviction"), None),
        (("--maxmemory-policy", "allkeys-lru"), None),  # no maxmemory: it never evicts
    ],
)
async def test_a_redis_that_deletes_keys_when_full_is_named_at_start(
    tmp_path: Path,
    service_settings: Settings,
    caplog: pytest.LogCaptureFixture,
    options: tuple[str, ...],
    named: str | None,
) -> None:
    redis_server = start_redis_server(tmp_path, *options)
    try:
        with caplog.at_level(logging.WARNING, logger="server.runtime.app"):
            running = await start_retail_server(
                service_settings, f"redis://127.0.0.1:{redis_server.port}"
            )
            try:
                assert running.ready is not None and running.ready.done()  # Redis answered
            finally:
                await running.stop(0.5)
    finally:
        redis_server.stop()
    said = [r.getMessage() for r in caplog.records if EVICTION in r.getMessage()]
    if named is None:
        assert said == []
    else:
        assert len(said) == 1
        assert f"maxmemory-policy {named}" in said[0] and "noeviction" in said[0]
