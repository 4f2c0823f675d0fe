"""Compiling the kernels before the first caller waits for them."""

from __future__ import annotations

from engine.compile import Ruleset
from engine.decide import decide
from engine.event import Event
from engine.many import decide_many
from engine.state import new_state


def warm_up(ruleset: Ruleset) -> None:
    """Run one decision, alone and batched, so the kernels of both are compiled (or loaded from
    numba's cache): a server decides the customers of a large round in one batched call."""
    event = Event("warm-up", "warm-up", "warm-up")
    decide(ruleset, new_state(ruleset), event, 0)
    decide_many(ruleset, [event], [0])
