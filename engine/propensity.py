"""What adaptive arbitration has learned: per journey, per action and stage, how many exposed
customers reached the journey's adaptive goal and how many did not.

The service builds these tables from its outcome counts and hands them to `decide`; the kernels
sample each adaptive action's rate from Beta(1 + conversions, 1 + the others) (Thompson
sampling). A journey without a table samples from the uniform prior: it explores.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from engine.compile import CompiledJourney

PropensityTable = npt.NDArray[np.float64]  # (n_actions, n_stages, 2): conversions, the others
Propensities = Mapping[str, PropensityTable]  # by journey name

_UNKNOWN: dict[tuple[int, int], PropensityTable] = {}


def table_shape(journey: CompiledJourney) -> tuple[int, int, int]:
    return len(journey.action_ids), len(journey.stage_ids), 2


def propensity_of(journey: CompiledJourney, propensities: Propensities | None) -> PropensityTable:
    """`journey`'s table in `propensities`, or one of zeros (nothing learned yet)."""
    table = None if propensities is None else propensities.get(journey.name)
    if table is None:
        size = len(journey.action_ids), len(journey.stage_ids)
        zeros = _UNKNOWN.get(size)
        if zeros is None:
            zeros = _UNKNOWN[size] = np.zeros(table_shape(journey), dtype=np.float64)
        return zeros
    shape = table_shape(journey)
    if table.shape != shape or table.dtype != np.float64:
        raise ValueError(
            f"the propensity table of journey {journey.name!r} has shape {table.shape} and "
            f"dtype {table.dtype}; build it with engine.propensity.propensity_table"
        )
    return table


def propensity_table(
    journey: CompiledJourney, learned: Mapping[tuple[str, str], tuple[int, int]]
) -> PropensityTable:
    """A table from (action, stage) -> (customers exposed, of whom converted); names the
    journey no longer has are skipped."""
    table = np.zeros(table_shape(journey), dtype=np.float64)
    actions = {name: i for i, name in enumerate(journey.action_ids)}
    stages = {name: i for i, name in enumerate(journey.stage_ids)}
    for (action, stage), (exposed, converted) in learned.items():
        if action in actions and stage in stages:
            converted = min(max(converted, 0), exposed)
            table[actions[action], stages[stage]] = (converted, exposed - converted)
    return table
