"""Compiling the kernels before the first caller waits for them."""

from __future__ import annotations

from engine.compile import Ruleset
from engine.decide import decide
from engine.event import Event
from engine.state import new_state


def warm_up(ruleset: Ruleset) -> None:
    """Run one decision so the kernels are compiled (or loaded from numba's cache)."""
    decide(ruleset, new_state(ruleset), Event("warm-up", "warm-up", "warm-up"), 0)
