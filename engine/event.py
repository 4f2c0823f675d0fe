"""The event the engine decides on, already validated by the caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

PropertyValue = str | float | bool

# A response the app records (RecordResponse) is an event of this type, whose properties name
# the response and the action responded to; `response:` conditions read them.
RESPONSE_EVENT_TYPE = "response"
RESPONSE_PROPERTY = "response"
RESPONDED_ACTION_PROPERTY = "action"
RESPONSES = ("impression", "click", "accept", "dismiss")


@dataclass(frozen=True, slots=True)
class Event:
    """One customer event. Its time is passed to `decide` separately, as `now_ms`."""

    event_id: str
    customer_id: str
    type: str
    channel: str = ""
    touchpoint: str = ""
    properties: Mapping[str, PropertyValue] = field(default_factory=dict)
