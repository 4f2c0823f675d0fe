"""The ruleset in force, and its reloads: validated and compiled off the hot path, swapped whole.

A call reads the ruleset once and keeps it to the end, so in-flight calls finish on the ruleset
they started with. An invalid file is refused with its problems logged (`file:line:column`), and
the running ruleset stays in force.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.compile import Ruleset
from engine.errors import RulesError
from engine.warm import warm_up
from server.core.metrics import RELOAD_FAILURES, RELOADS, set_ruleset
from server.decisions.active import ActiveRules
from server.rules.rulesource import RulesNotFound, load_ruleset

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class RulesInForce:
    active: ActiveRules
    loaded_at_ms: int


class LiveRules:
    """Holds the ruleset in force; `reload` replaces it when the files on disk are valid."""

    def __init__(self, ruleset: Ruleset, paths: Sequence[str] = ()) -> None:
        self.paths = tuple(paths)
        self._in_force = RulesInForce(ActiveRules.of(ruleset), _now_ms())
        set_ruleset(ruleset.version)
        self.reloads = 0
        self.failed_reloads = 0
        # The last refused reload, shown where people look (GetRuleset, status, the map), not
        # only in the log; cleared when a reload succeeds or finds the rules unchanged.
        self.refused_reason = ""
        self.refused_at_ms = 0
        self._lock = asyncio.Lock()  # one reload at a time; calls never wait on it

    @property
    def in_force(self) -> RulesInForce:
        return self._in_force

    def active(self) -> ActiveRules:
        """The ruleset for a call that starts now."""
        return self._in_force.active

    async def reload(self) -> bool:
        """Load, validate, compile and warm the files at `paths` in a worker thread; swap them
        in if they are valid. Returns whether the ruleset changed."""

        async with self._lock:
            self.reloads += 1
            RELOADS.inc()
            try:
                ruleset = await asyncio.to_thread(load_ruleset, list(self.paths))
                await asyncio.to_thread(warm_up, ruleset)
            except (RulesError, RulesNotFound, OSError) as error:
                self.failed_reloads += 1
                self.refused_reason, self.refused_at_ms = str(error), _now_ms()
                RELOAD_FAILURES.inc()
                log.error("rules reload refused; %s stays in force:\n%s",
                          self._in_force.active.ruleset.version, error)  # fmt: skip
                return False
            self.refused_reason, self.refused_at_ms = "", 0
            old = self._in_force.active.ruleset.version
            if ruleset.version == old:
                log.info("rules reloaded: unchanged (%s)", old)
                return False
            self._in_force = RulesInForce(ActiveRules.of(ruleset), _now_ms())
            set_ruleset(ruleset.version, previous=old)
            log.info("rules reloaded: %s replaces %s", ruleset.version, old)
            return True

    async def watch(self) -> None:
        """Reload whenever a file under `paths` changes (a ConfigMap's symlink swap included),
        until cancelled."""
        import watchfiles

        folders = sorted({str(Path(p) if Path(p).is_dir() else Path(p).parent) for p in self.paths})
        async for _ in watchfiles.awatch(*folders, watch_filter=_rules_change, debounce=300):
            await self.reload()


def _rules_change(change: object, path: str) -> bool:
    # YAML files, and the `..data` symlink Kubernetes swaps when a ConfigMap changes.
    return path.endswith((".yaml", ".yml")) or Path(path).name == "..data"
