"""The event loop the server runs on: uvloop when installed (make installs it), else asyncio."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from server.core import event_loop

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_runs_on_asyncios_own_loop() -> None:
    assert event_loop.run(_loop_module(), "asyncio").startswith("asyncio")


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed (pip install uvloop)")
def test_auto_and_uvloop_run_on_uvloop_when_it_is_installed() -> None:
    assert event_loop.chosen("auto") == "uvloop"
    assert event_loop.run(_loop_module(), "auto").startswith("uvloop")
    assert event_loop.run(_loop_module(), "uvloop").startswith("uvloop")
