"""The ruleset in force as the service uses it, and a stored state read under it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from engine.codec import decode_state, layouts_of, unknown_layouts
from engine.compile import Ruleset
from engine.errors import StateDecodeError, StateFromNewerServer
from engine.state import CustomerState, new_state
from server.core.metrics import STATES_UNREADABLE
from server.protocol.convert import ResponseTables
from server.store.record import LAYOUT, later_layout

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActiveRules:
    """The ruleset in force and what answers need from it; swapped whole on reload."""

    ruleset: Ruleset
    tables: ResponseTables
    layouts: Mapping[bytes, bytes]  # of the states written under it (`engine.codec.layouts_of`)

    @classmethod
    def of(cls, ruleset: Ruleset) -> ActiveRules:
        return cls(ruleset, ResponseTables.of(ruleset), layouts_of(ruleset))


def decode_or_new(ruleset: Ruleset, data: bytes | None) -> CustomerState:
    """The stored state, or a new one when there is none or it cannot be read at all. Raises
    `StateFromNewerServer` for a state a newer journeyman wrote: the caller refuses what it was
    asked rather than write over it."""
    if data is None:
        return new_state(ruleset)
    layout = later_layout(data)
    if layout is not None:
        raise StateFromNewerServer(layout, LAYOUT[0], "record layout")
    try:
        return decode_state(data, ruleset)
    except StateDecodeError:
        # Unreadable bytes would fail every event of this customer forever; start afresh and
        # say so (the id is not logged: it is personal data), counted for an alert.
        reason = "layout_missing" if unknown_layouts(data) else "damaged"
        STATES_UNREADABLE.labels(reason=reason).inc()
        log.warning("stored state unreadable (%s); the customer starts afresh", reason,
                    exc_info=True)  # fmt: skip
        return new_state(ruleset)
