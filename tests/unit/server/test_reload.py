"""Living rules: a valid edit takes effect whole; a broken one is refused and changes nothing."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from journeyman.v1 import journeyman_pb2 as pb
from server.rules.reload import LiveRules
from server.rules.rulesource import load_ruleset
from server.tools.status import refusal_lines
from tests.rulesets import RULES_DIR


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    shutil.copy(RULES_DIR / "retail.yaml", tmp_path / "retail.yaml")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


async def test_a_valid_edit_replaces_the_ruleset(rules_dir: Path) -> None:
    live = LiveRules(load_ruleset([str(rules_dir)]), [str(rules_dir)])
    before = live.active()
    _edit(rules_dir / "retail.yaml", "version: 2026.11.23", "version: 2026.12.01")
    assert await live.reload()
    assert live.active().ruleset.version.startswith("retail@2026.12.01#")
    assert before.ruleset.version.startswith("retail@2026.11.23#")  # calls holding it keep it
    assert (live.reloads, live.failed_reloads) == (1, 0)


async def test_a_broken_edit_is_refused_and_the_running_rules_stay(
    rules_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = LiveRules(load_ruleset([str(rules_dir)]), [str(rules_dir)])
    before = live.in_force
    text = (rules_dir / "retail.yaml").read_text()
    line = text[: text.index("    cooldown: 1d\n")].count("\n") + 1  # the first action's
    _edit(rules_dir / "retail.yaml", "    cooldown: 1d\n", "    cooldwn: 1d\n")
    assert not await live.reload()
    assert live.in_force is before and (live.reloads, live.failed_reloads) == (1, 1)
    assert f"retail.yaml:{line}:5: unknown key `cooldwn`" in caplog.text
    assert "stays in force" in caplog.text
    # Where people look, not only in the log: GetRuleset and `journeyman status` show it.
    assert f"retail.yaml:{line}:5: unknown key `cooldwn`" in live.refused_reason
    status = refusal_lines(
        pb.GetRulesetResponse(refused_reason=live.refused_reason, refused_at_ms=live.refused_at_ms)
    )
    assert status[0].startswith("rules on disk REFUSED at ") and "stays in force" in status[0]
    assert any("did you mean `cooldown`?" in line for line in status)
    _edit(rules_dir / "retail.yaml", "    cooldwn: 1d\n", "    cooldown: 1d\n")
    await live.reload()
    assert (live.refused_reason, live.refused_at_ms) == ("", 0)


async def test_an_unchanged_file_is_no_change(rules_dir: Path) -> None:
    live = LiveRules(load_ruleset([str(rules_dir)]), [str(rules_dir)])
    before = live.in_force
    assert not await live.reload()
    assert live.in_force is before


async def test_the_watcher_reloads_when_a_file_changes(rules_dir: Path) -> None:
    live = LiveRules(load_ruleset([str(rules_dir)]), [str(rules_dir)])
    watcher = asyncio.get_running_loop().create_task(live.watch())
    try:
        await asyncio.sleep(0.3)  # let the watcher start
        _edit(rules_dir / "retail.yaml", "version: 2026.11.23", "version: 2026.12.02")
        async with asyncio.timeout(10):
            while not live.active().ruleset.version.startswith("retail@2026.12.02#"):
                await asyncio.sleep(0.05)
    finally:
        watcher.cancel()
