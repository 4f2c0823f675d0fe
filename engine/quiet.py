"""Quiet hours: the customer's local time, for a contact policy's `quiet_hours`.

The kernels see an event's offset from UTC in the customer's time zone (a trait, e.g.
`Europe/Paris`; the policy's default where it holds none or no valid one) as one more event
property slot (`offset_slot_name`), worked out at the event's time, so a change to or from
daylight saving time moves the quiet hours with the clock on the wall.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.event import PropertyValue
from engine.kernels.codes import MINUTES_PER_DAY, MS_PER_MINUTE

# An event property slot no app can send (properties are names): the offset, ms.
_OFFSET_SLOT_PREFIX = "\x00utc_offset:"


def offset_slot_name(trait: str, default_zone: str) -> str:
    return f"{_OFFSET_SLOT_PREFIX}{trait}:{default_zone}"


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_name(value: PropertyValue | None, default_zone: str) -> str:
    """The time zone a trait value names, or `default_zone` when it names none."""
    if isinstance(value, str) and _zone(value) is not None:
        return value
    return default_zone


def utc_offset_ms(value: PropertyValue | None, default_zone: str, at_ms: int) -> int:
    """The offset from UTC, ms, of the time zone a trait value names (else `default_zone`) at
    the moment `at_ms`."""
    return _offset_in_quarter(zone_name(value, default_zone), at_ms // _QUARTER_MS)


# Offsets change (daylight saving time) at a whole quarter of an hour in UTC in every zone in use
# today, so one lookup serves a zone for a quarter: measured, the lookup was 4 us a decision.
_QUARTER_MS = 15 * MS_PER_MINUTE


@lru_cache(maxsize=4096)
def _offset_in_quarter(name: str, quarter: int) -> int:
    zone = _zone(name)
    assert zone is not None, name  # the rules check refuses an unknown default zone
    moment = datetime.fromtimestamp(quarter * _QUARTER_MS / 1000, tz=UTC)
    offset = moment.astimezone(zone).utcoffset()
    return 0 if offset is None else int(offset.total_seconds() * 1000)


def local_minute(at_ms: int, offset_ms: int) -> int:
    """The minute of the day (0-1439) on the customer's clock."""
    return ((at_ms + offset_ms) // MS_PER_MINUTE) % MINUTES_PER_DAY


def clock_minute(text: str) -> int:
    """`HH:MM` as a minute of the day."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)
