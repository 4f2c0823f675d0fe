"""Journey statistics: customers per stage and transitions per day, counted as customers move,
and the exposures and conversions per action and day that the action report compares.

Every move is counted here, whatever made it: a decision (`count_decision`), or a customer who
appears, leaves or is merged outside one (`count_moves`: Identify, ForgetCustomer). Counts are
summed and written off the hot path every FLUSH_S, in one pipeline (`Store.add_to_stats`): they
are analytics, not state, so a Redis failure loses a few increments instead of failing a call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Callable, Sequence

from engine.compile import Ruleset
from engine.decision import Exposure, JourneyOutcome
from engine.state import CustomerState
from engine.view import customer_view
from journeyman.v1 import journeyman_pb2 as pb
from server.decisions.journey_moves import Standing, decision_increments, move_increments
from server.store.errors import StoreUnavailable
from server.store.keys import (
    VALUE_SCALE,
    conversion_field,
    exposure_field,
    utc_day,
    value_field,
)
from server.store.redis_store import StageChange, StatIncrements, Store

log = logging.getLogger(__name__)

FLUSH_S = 0.05
DAY_MS = 86_400_000


class JourneyStats:
    """Counts stage moves and writes them, summed, every FLUSH_S. One per process."""

    def __init__(self, store: Store, clock_ms: Callable[[], int]) -> None:
        self._store = store
        self._clock_ms = clock_ms
        self._counted: StatIncrements = Counter()
        # Stored decisions not counted yet: (answer, exposures, is_new, outcomes, touchpoint).
        self._decided: list[
            tuple[pb.Decision, Sequence[Exposure], bool, Sequence[JourneyOutcome], str]
        ] = []
        self._writer: asyncio.Task[None] | None = None  # the one waiting FLUSH_S to write
        # Every writer not yet ended, the ones already writing included: `_write` clears
        # `_writer` before it writes, so that counts made meanwhile start the next one.
        self._writers: set[asyncio.Task[None]] = set()

    def count_decision(
        self,
        answer: pb.Decision,
        exposures: Sequence[Exposure],
        *,
        is_new: bool,
        outcomes: Sequence[JourneyOutcome] = (),
        touchpoint: str = "",
    ) -> None:
        """The stage moves, exposures and conversions of a stored decision (`is_new`: the
        customer's first event); with the engine's `outcomes` and the event's `touchpoint`,
        also what the journey map reads (`journey_moves.decision_increments`).

        Kept as it is and counted by the writer, with the others of its FLUSH_S: one call at a
        time a decision runs cold, and its twenty-odd Python calls of keys and fields cost
        several times what they cost counted together, warm, off the caller's wait."""
        self._decided.append((answer, exposures, is_new, outcomes, touchpoint))
        self._start_writer()

    def _count_decided(self) -> None:
        """Count the decisions kept since the last write (`count_decision`)."""
        decided, self._decided = self._decided, []
        for answer, exposures, is_new, outcomes, touchpoint in decided:
            try:
                self._count_decision(answer, exposures, is_new, outcomes, touchpoint)
            except Exception:  # a bug in counting one must not lose the others' counts
                log.exception("journey statistics: decision %s not counted", answer.event_id)

    def _count_decision(
        self,
        answer: pb.Decision,
        exposures: Sequence[Exposure],
        is_new: bool,
        outcomes: Sequence[JourneyOutcome],
        touchpoint: str,
    ) -> None:
        if outcomes:
            at_ms = answer.decided_at_ms
            day = _utc_day(at_ms // DAY_MS)
            decision_increments(
                self._store.keys, outcomes, day, at_ms, touchpoint, is_new=is_new,
                into=self._counted,
            )  # fmt: skip
        changes = [
            StageChange(
                journey=j.journey,
                from_stage=None if is_new else j.previous_stage,
                to_stage=j.stage,
                transition=j.transition or None,
            )
            for j in answer.journeys
            if is_new or j.changed
        ]
        self._add(changes, answer.decided_at_ms)
        if exposures or answer.conversions:
            self._count_outcomes(exposures, answer.conversions, answer.decided_at_ms)

    def _count_outcomes(
        self, exposures: Sequence[Exposure], conversions: Sequence[pb.Conversion], at_ms: int
    ) -> None:
        day = _utc_day(at_ms // DAY_MS)
        keys, counted = self._store.keys, self._counted
        for exposure in exposures:
            key = keys.outcomes(exposure.journey, day)
            field = exposure_field(
                exposure.action, exposure.stage, treated=exposure.treated,
                variant=exposure.variant,
            )  # fmt: skip
            counted[key, field] += 1
        for conversion in conversions:  # on the exposure's day: that day's cohort converted
            exposure_day = _utc_day(conversion.exposed_at_ms // DAY_MS)
            key = keys.outcomes(conversion.journey, exposure_day)
            action, goal, stage = conversion.action, conversion.goal, conversion.stage
            treated, variant = conversion.treated, conversion.variant
            counted[
                key, conversion_field(action, goal, stage, treated=treated, variant=variant)
            ] += 1
            if conversion.value:
                value = round(conversion.value * VALUE_SCALE)
                field = value_field(action, goal, stage, treated=treated, variant=variant)
                counted[key, field] += value
        self._start_writer()

    def count_moves(
        self, ruleset: Ruleset, before: CustomerState | None, after: CustomerState | None
    ) -> None:
        """A customer who appeared (`before` None), left (`after` None: forgotten, merged into
        another) or was merged, outside a decision."""
        now_ms = self._clock_ms()
        old = _stages(ruleset, before, now_ms)
        new = _stages(ruleset, after, now_ms)
        changes = [
            StageChange(journey.name, old.get(journey.name), new.get(journey.name), None)
            for journey in ruleset.journeys
            if old.get(journey.name) != new.get(journey.name)
        ]
        self._add(changes, now_ms)
        day = _utc_day(now_ms // DAY_MS)
        was, now = _standings(ruleset, before, now_ms), _standings(ruleset, after, now_ms)
        for journey in ruleset.journeys:
            name = journey.name
            move_increments(
                self._store.keys, name, was.get(name), now.get(name), day, into=self._counted
            )
        self._start_writer()

    def _add(self, changes: list[StageChange], at_ms: int) -> None:
        if not changes:
            return
        self._counted.update(self._store.stat_increments(changes, _utc_day(at_ms // DAY_MS)))
        self._start_writer()

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = writer = asyncio.get_running_loop().create_task(self._write())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)

    async def _write(self) -> None:
        try:
            await asyncio.sleep(FLUSH_S)
        finally:
            # Also when cancelled (shutdown): what was counted is written, not dropped.
            self._count_decided()
            increments, self._counted = self._counted, Counter()
            self._writer = None
            try:
                await self._store.add_to_stats(increments)
            except StoreUnavailable:
                log.debug("journey statistics not counted: store unavailable")

    async def drain(self) -> None:
        """Write what was counted so far (shutdown): wait for every writer, also one already
        writing (`_writer` is None by then), and for those the counts made meanwhile started;
        the store is closed next, and a write still out would open a connection of its own."""
        while self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)


def _stages(ruleset: Ruleset, state: CustomerState | None, now_ms: int) -> dict[str, str]:
    if state is None:
        return {}
    return {j.journey: j.stage for j in customer_view(ruleset, state, now_ms).journeys}


def _standings(ruleset: Ruleset, state: CustomerState | None, now_ms: int) -> dict[str, Standing]:
    if state is None:
        return {}
    view = customer_view(ruleset, state, now_ms)
    return {j.journey: Standing(j.stage, view.last_event_ms) for j in view.journeys}


@functools.lru_cache(maxsize=8)
def _utc_day(day_number: int) -> str:
    """`utc_day` of a day number (ms // DAY_MS): formatting a date per event costs µs."""
    return utc_day(day_number * DAY_MS)
