"""Fixtures of the service tests beyond tests/conftest.py's: a plain client of the one Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.Redis]:
    """A fresh client per test (each test runs in its own event loop)."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
