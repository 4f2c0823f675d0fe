"""The pure core of journeyman: rules, compiler, kernels, customer state and `decide`.

Nothing here does I/O: files are read by the caller and passed in as text. The names below are
the public surface, enough to decide events from Python (README, "Using the engine from Python"):

    from engine import Event, compile_ruleset, decide, new_state, parse_journeys

Each is imported on first use, so `import engine.errors` (the health check, the status tool)
does not load numba and the kernels.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.codec import decode_state, encode_state
    from engine.compile import Ruleset, compile_ruleset
    from engine.decide import decide
    from engine.decision import Decision
    from engine.errors import JourneymanError, RulesError, StateDecodeError
    from engine.event import Event, PropertyValue
    from engine.merge import merge_states
    from engine.rules.load import parse_journey, parse_journeys
    from engine.state import CustomerState, new_state
    from engine.view import CustomerView, customer_view

_EXPORTS = {
    "compile_ruleset": "engine.compile",
    "Ruleset": "engine.compile",
    "parse_journey": "engine.rules.load",
    "parse_journeys": "engine.rules.load",
    "decide": "engine.decide",
    "Decision": "engine.decision",
    "Event": "engine.event",
    "PropertyValue": "engine.event",
    "CustomerState": "engine.state",
    "new_state": "engine.state",
    "encode_state": "engine.codec",
    "decode_state": "engine.codec",
    "customer_view": "engine.view",
    "CustomerView": "engine.view",
    "merge_states": "engine.merge",
    "JourneymanError": "engine.errors",
    "RulesError": "engine.errors",
    "StateDecodeError": "engine.errors",
}

__all__ = [
    "CustomerState",
    "CustomerView",
    "Decision",
    "Event",
    "JourneymanError",
    "PropertyValue",
    "Ruleset",
    "RulesError",
    "StateDecodeError",
    "compile_ruleset",
    "customer_view",
    "decide",
    "decode_state",
    "encode_state",
    "merge_states",
    "new_state",
    "parse_journey",
    "parse_journeys",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


class _Surface(types.ModuleType):
    """`engine` itself. Importing the submodule `engine.decide` would bind that module as the
    attribute `engine.decide`, hiding the function; the module stays reachable in `sys.modules`."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Surface
