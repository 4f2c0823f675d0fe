"""`journeyman status` reads health and the ruleset from a running server."""

from __future__ import annotations

import asyncio

import pytest

from server.tools.status import status_lines
from tests.conftest import Service

pytestmark = pytest.mark.service


async def test_status_shows_health_the_ruleset_and_says_when_metrics_are_unreachable(
    service: Service,
) -> None:
    serving, lines = await asyncio.to_thread(
        status_lines, service.address, "http://127.0.0.1:9/metrics", 2.0
    )
    assert serving and lines[0] == "health: SERVING"
    assert lines[1] == "store (journeyman.v1.Store): SERVING (Redis answers)"
    assert lines[2].startswith("ruleset: retail@") and "0 reloads, 0 refused" in lines[2]
    assert lines[3].endswith("retail.yaml: journey retail 2026.11.23")
    assert lines[-1].startswith("metrics: not reachable at http://127.0.0.1:9/metrics")
