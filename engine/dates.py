"""Date traits: a trait that holds a moment, read by `until:` conditions.

An app sends a date as ISO 8601 text (`2026-12-24`, `2026-12-24T18:00:00+01:00`; without a time
zone it is UTC) or as a number of ms since the epoch. The kernels see it as a number of ms in a
trait slot of its own (`date_slot_name`), beside the trait as sent, so that `trait:` comparisons
on the same trait still see the text.
"""

from __future__ import annotations

from datetime import UTC, datetime

from engine.event import PropertyValue

# The trait slot a date trait's ms are kept in: a name no app can send (traits are names).
_DATE_SLOT_PREFIX = "\x00date:"


def date_slot_name(trait: str) -> str:
    return f"{_DATE_SLOT_PREFIX}{trait}"


def date_ms(value: PropertyValue | None) -> int | None:
    """The moment a date trait holds, in ms since the epoch; None when it holds no date."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
