"""A customer's recent stages in a journey: the last STAGE_HISTORY stages they entered, with
when, newest first, kept in the journey's int state (two slots per entry) for the customer view.

Kept by `decide` after the kernels (they never read it): a customer's first event records the
stage they start in, and each transition the stage it leads to.
"""

from __future__ import annotations

from typing import Final

from engine.compile import STAGE_HISTORY_SLOTS, CompiledJourney
from engine.kernels import codes
from engine.state import JourneyState

STAGE_HISTORY: Final = STAGE_HISTORY_SLOTS


def record_entry(journey: CompiledJourney, state: JourneyState, stage: int, at_ms: int) -> None:
    """Remember that the customer entered `stage` at `at_ms` (in place)."""
    first, ints = journey.history_index, state.ints
    ints[first + 2 : first + 2 * STAGE_HISTORY] = ints[first : first + 2 * (STAGE_HISTORY - 1)]
    ints[first], ints[first + 1] = stage, at_ms


def entries(journey: CompiledJourney, state: JourneyState) -> list[tuple[str, int]]:
    """(stage, entered_ms) newest first; empty for a customer the journey has not seen."""
    return entries_in(journey, state.ints.tolist())


def entries_in(journey: CompiledJourney, ints: list[int]) -> list[tuple[str, int]]:
    """`entries` of the int state `ints`, as a list (for a caller that made the list already)."""
    return entries_at(ints, journey.history_index, STAGE_HISTORY, journey.stage_ids)


def entries_at(
    ints: list[int], first: int, slots: int, stage_ids: tuple[str, ...]
) -> list[tuple[str, int]]:
    """The `slots` entries from int `first` of `ints`, their stages named by `stage_ids` (the
    codec reads states laid out by rules it did not compile)."""
    found = []
    for n in range(slots):
        stage, at_ms = ints[first + 2 * n], ints[first + 2 * n + 1]
        if at_ms == codes.NEVER_MS or not 0 <= stage < len(stage_ids):
            break
        found.append((stage_ids[stage], at_ms))
    return found


def restore(journey: CompiledJourney, state: JourneyState, stored: list[tuple[str, int]]) -> None:
    """Write back `stored` entries (newest first); stages the journey no longer has end it."""
    for n, (stage, at_ms) in enumerate(stored[:STAGE_HISTORY]):
        if stage not in journey.stage_ids:
            break
        state.ints[journey.history_index + 2 * n] = journey.stage_ids.index(stage)
        state.ints[journey.history_index + 2 * n + 1] = at_ms


def copy_history(journey: CompiledJourney, source: JourneyState, into: JourneyState) -> None:
    first = journey.history_index
    into.ints[first : first + 2 * STAGE_HISTORY] = source.ints[first : first + 2 * STAGE_HISTORY]
