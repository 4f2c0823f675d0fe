"""What adaptive arbitration has learned, for `decide`: per journey with adaptive actions, each
action's exposures and conversions of the adaptive goal per stage, over the last LEARN_DAYS
UTC days of outcome counts (the treated group only: control never saw the action).

Rebuilt in the background at most every REFRESH_S from one pipelined read per journey, never
on the hot path: a decision uses the tables of the last refresh. A Redis failure keeps the
tables it had; a ruleset that changed starts from nothing until the next refresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from engine.compile import CompiledJourney, Ruleset
from engine.propensity import Propensities, propensity_table
from server.core.tasks import stop_task
from server.store.errors import StoreUnavailable
from server.store.keys import outcome_field, utc_day
from server.store.redis_store import Store

log = logging.getLogger(__name__)

REFRESH_S = 10.0
LEARN_DAYS = 30
DAY_MS = 86_400_000


class LearnedRates:
    """The propensity tables in force, refreshed in the background. One per process."""

    def __init__(self, store: Store, clock_ms: Callable[[], int]) -> None:
        self._store = store
        self._clock_ms = clock_ms
        self._tables: Propensities = {}
        self._version = ""  # of the ruleset the tables were built for
        self._next_refresh = 0.0  # monotonic
        self._refreshing: asyncio.Task[None] | None = None
        self._adaptive_in: Ruleset | None = None  # the ruleset `_adaptive` was read for
        self._adaptive = False

    def current(self, ruleset: Ruleset) -> Propensities | None:
        """The tables for `ruleset` (None: nothing learned for it yet); starts a refresh when
        the last one is older than REFRESH_S."""
        if self._adaptive_in is not ruleset:  # asked every round: read once per ruleset
            self._adaptive_in = ruleset
            self._adaptive = any(j.rules.action_adaptive.any() for j in ruleset.journeys)
        if not self._adaptive:
            return None
        if self._refreshing is None and time.monotonic() >= self._next_refresh:
            self._next_refresh = time.monotonic() + REFRESH_S
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh(ruleset))
        return self._tables if self._version == ruleset.version else None

    async def _refresh(self, ruleset: Ruleset) -> None:
        try:
            days = learning_days(self._clock_ms())
            tables = {}
            for journey in ruleset.journeys:
                if journey.rules.action_adaptive.any() and journey.adaptive_goal >= 0:
                    counts = await self._store.outcome_counts(journey.name, days)
                    tables[journey.name] = propensity_table(journey, learned(journey, counts))
            self._tables, self._version = tables, ruleset.version
        except StoreUnavailable:
            log.debug("adaptive rates not refreshed: store unavailable")
        finally:
            self._refreshing = None

    async def drain(self) -> None:
        """Stop a refresh in flight (shutdown)."""
        await stop_task(self._refreshing)


def learning_days(now_ms: int) -> list[str]:
    """The UTC days whose outcomes adaptive arbitration learns from, oldest first."""
    today = now_ms // DAY_MS
    return [utc_day((today - back) * DAY_MS) for back in range(LEARN_DAYS - 1, -1, -1)]


def learned(
    journey: CompiledJourney, counts: Counter[str]
) -> dict[tuple[str, str], tuple[int, int]]:
    """(action, stage) -> (treated customers exposed, of whom converted for the adaptive goal),
    from the fields of the outcomes hash summed over days."""
    goal = journey.goal_names[journey.adaptive_goal]
    exposed: Counter[tuple[str, str]] = Counter()
    converted: Counter[tuple[str, str]] = Counter()
    for name, count in counts.items():
        field = outcome_field(name)
        if field is None or not field.treated:
            continue
        if field.kind == "x":
            exposed[field.action, field.stage] += count
        elif field.kind == "c" and field.goal == goal:
            converted[field.action, field.stage] += count
    return {key: (exposed[key], converted[key]) for key in exposed}
