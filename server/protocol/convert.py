"""Protobuf ↔ engine types: every request field validated once, every bad one reported together."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.compile import Ruleset
from engine.content import content_for, content_keys
from engine.decision import Decision, OfferedAction
from engine.event import (
    RESPONDED_ACTION_PROPERTY,
    RESPONSE_EVENT_TYPE,
    RESPONSE_PROPERTY,
    RESPONSES,
    Event,
    PropertyValue,
)
from engine.timers import TIMER_EVENT_TYPE
from engine.view import CustomerView
from journeyman.v1 import journeyman_pb2 as pb
from server.core.config import Settings
from server.protocol.dedupe import event_fingerprint
from server.protocol.errors import EventInvalid, FieldViolation
from server.store.keys import validate_customer_id

_MAX_TOP_K = 50


@dataclass(frozen=True, slots=True)
class DecideInput:
    """A validated DecideRequest."""

    event: Event
    timestamp_ms: int  # when it happened (the server's clock when the caller sent none)
    anonymous: bool  # the event's customer is an anonymous visitor
    explain: bool
    top_k: int | None
    # The event as sent, hashed: a retry carries the same, a reused event id does not.
    fingerprint: bytes


class Violations:
    """Collects every bad field of a request, to report them all in one INVALID_ARGUMENT."""

    def __init__(self) -> None:
        self.found: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.found.append(FieldViolation(field, description))

    def text(self, field: str, value: str, limit: int, *, required: bool) -> None:
        if not value:
            if required:
                self.add(field, "is required; send a non-empty string")
        elif len(value) > limit:
            self.add(field, f"is {len(value)} characters long; send at most {limit}")
        elif not value.isprintable():
            self.add(field, "contains control characters; send printable text")

    def raise_if_any(self) -> None:
        if self.found:
            raise EventInvalid(self.found)


def _value(value: pb.Value, field: str, limit: int, violations: Violations) -> PropertyValue:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        violations.text(field, value.string_value, limit, required=False)
        return value.string_value
    if kind == "number_value":
        if not math.isfinite(value.number_value):
            violations.add(field, "is not a finite number; send a number, not NaN or infinity")
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    violations.add(field, "has no value; set one of string_value, number_value, bool_value")
    return ""


def values_from_pb(
    values: Mapping[str, pb.Value], field: str, settings: Settings, violations: Violations
) -> dict[str, PropertyValue]:
    """Properties or traits, checked for count, name length and value kinds."""
    if len(values) > settings.max_properties:
        violations.add(field, f"has {len(values)} entries; send at most {settings.max_properties}")
        return {}
    converted: dict[str, PropertyValue] = {}
    limit = settings.max_string_length
    # By key, not `.items()`: a protobuf map's items view iterates in Python (collections.abc).
    for name in values:
        value = values[name]
        if _plainly_valid(name, value, limit):  # the common case, without building messages
            converted[name] = getattr(value, value.WhichOneof("kind"))
            continue
        where = f"{field}[{json.dumps(name)[:80]}]"
        violations.text(where, name, settings.max_string_length, required=True)
        converted[name] = _value(value, where, settings.max_string_length, violations)
    return converted


def _plainly_valid(name: str, value: pb.Value, limit: int) -> bool:
    """Whether a property passes every check `_value` and `Violations.text` make."""
    if not (0 < len(name) <= limit and name.isprintable()):
        return False
    kind: str | None = value.WhichOneof("kind")
    if kind == "number_value":
        return math.isfinite(value.number_value)
    if kind == "string_value":
        text: str = value.string_value
        return len(text) <= limit and text.isprintable()
    return kind == "bool_value"


def _customer(event: pb.Event, violations: Violations) -> tuple[str, bool]:
    if event.customer_id and event.anonymous_id:
        violations.add("event.anonymous_id", "send customer_id or anonymous_id, not both")
    customer, field = (
        (event.customer_id, "event.customer_id")
        if event.customer_id or not event.anonymous_id
        else (event.anonymous_id, "event.anonymous_id")
    )
    if not customer:
        violations.add("event.customer_id", "is required (or send anonymous_id for a visitor)")
    elif (problem := validate_customer_id(customer)) is not None:
        violations.add(field, problem)
    return customer, field == "event.anonymous_id"


def _timestamp(event: pb.Event, now_ms: int, settings: Settings, violations: Violations) -> int:
    if event.timestamp_ms == 0:
        return now_ms
    if event.timestamp_ms < 0:
        violations.add("event.timestamp_ms", "is negative; send ms since the Unix epoch, or 0")
    elif event.timestamp_ms < settings.oldest_timestamp_ms:
        violations.add("event.timestamp_ms", _too_old(event.timestamp_ms, settings))
    elif event.timestamp_ms > now_ms + settings.max_future_skew_ms:
        violations.add(
            "event.timestamp_ms",
            f"is {(event.timestamp_ms - now_ms) / 1000:.0f} s in the future; send the time the "
            "event happened, or 0 for now",
        )
    return event.timestamp_ms


def _too_old(timestamp_ms: int, settings: Settings) -> str:
    as_ms = datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    oldest = datetime.fromtimestamp(settings.oldest_timestamp_ms / 1000, UTC).date()
    if timestamp_ms < SECONDS_UP_TO_2286:
        return (
            f"is {timestamp_ms}, which as milliseconds is {as_ms}: it looks like seconds since"
            f" the epoch; send milliseconds ({timestamp_ms * 1000}), or 0 for now"
        )
    return (
        f"is {timestamp_ms} ({as_ms}), before {oldest}, the oldest time accepted"
        " (JOURNEYMAN_OLDEST_TIMESTAMP_MS); send ms since the Unix epoch, or 0 for now"
    )


# Every time in seconds up to the year 2286 is below this; as milliseconds, it is April 1970.
SECONDS_UP_TO_2286 = 10_000_000_000


def decide_input(request: pb.DecideRequest, now_ms: int, settings: Settings) -> DecideInput:
    """Validate a DecideRequest. Raises `EventInvalid` naming every bad field."""
    violations = Violations()
    if not request.HasField("event"):
        violations.add("event", "is required")
        violations.raise_if_any()
    event = request.event
    limit = settings.max_string_length
    violations.text("event.event_id", event.event_id, limit, required=True)
    customer, anonymous = _customer(event, violations)
    violations.text("event.type", event.type, limit, required=True)
    if event.type == TIMER_EVENT_TYPE:
        violations.add("event.type", f"{TIMER_EVENT_TYPE!r} is the type of timers; send your own")
    violations.text("event.channel", event.channel, limit, required=False)
    violations.text("event.touchpoint", event.touchpoint, limit, required=False)
    timestamp_ms = _timestamp(event, now_ms, settings, violations)
    properties = values_from_pb(event.properties, "event.properties", settings, violations)
    if not 0 <= request.top_k <= _MAX_TOP_K:
        violations.add("top_k", f"is {request.top_k}; send 0 (the rules' default) to {_MAX_TOP_K}")
    violations.raise_if_any()
    engine_event = Event(
        event.event_id, customer, event.type, event.channel, event.touchpoint, properties
    )
    return DecideInput(
        engine_event, timestamp_ms, anonymous, request.explain, request.top_k or None,
        event_fingerprint(event),
    )  # fmt: skip


def response_input(
    request: pb.RecordResponseRequest, now_ms: int, settings: Settings, ruleset: Ruleset
) -> DecideInput:
    """A RecordResponseRequest as the event it is decided as: of type RESPONSE_EVENT_TYPE, with
    the response and the action in its properties. Raises `EventInvalid` naming every bad field
    of the request."""
    violations = Violations()
    limit = settings.max_string_length
    violations.text("event_id", request.event_id, limit, required=True)
    violations.text("response_id", request.response_id, limit, required=False)
    if request.response not in RESPONSES:
        violations.add("response", f"is {request.response!r}; send one of {', '.join(RESPONSES)}")
    journey = _responded_journey(request, ruleset, violations)
    response_id = request.response_id or f"{request.event_id}:{request.action}:{request.response}"
    if not request.response_id and len(response_id) > limit:
        violations.add("event_id", f"makes a response id of {len(response_id)} characters; "
                       f"send a response_id of at most {limit}")  # fmt: skip
    violations.raise_if_any()
    properties = {
        RESPONSE_PROPERTY: request.response, RESPONDED_ACTION_PROPERTY: request.action,
        "journey": journey, "decision_event_id": request.event_id,
    }  # fmt: skip
    event = pb.Event(
        event_id=response_id, customer_id=request.customer_id,
        anonymous_id=request.anonymous_id, type=RESPONSE_EVENT_TYPE, channel=request.channel,
        touchpoint=request.touchpoint, timestamp_ms=request.timestamp_ms,
        properties={k: pb.Value(string_value=v) for k, v in properties.items()},
    )  # fmt: skip
    try:
        return decide_input(pb.DecideRequest(event=event), now_ms, settings)
    except EventInvalid as error:  # the same fields, named as RecordResponse spells them
        raise EventInvalid(
            [FieldViolation(_response_field(v.field), v.description) for v in error.violations]
        ) from None


def _response_field(event_field: str) -> str:
    """A field of the event made of a response, as RecordResponseRequest names it."""
    return "response_id" if event_field == "event.event_id" else event_field.removeprefix("event.")


def _responded_journey(
    request: pb.RecordResponseRequest, ruleset: Ruleset, violations: Violations
) -> str:
    """The journey of the action responded to; a violation when there is none or no one."""
    if not request.action:
        violations.add("action", "is required; send the id of the action responded to")
        return ""
    journeys = [j.name for j in ruleset.journeys if request.action in j.action_ids]
    if request.journey:
        if request.journey not in journeys:
            where = f"it is in {', '.join(journeys)}" if journeys else "no journey has it"
            violations.add("journey", f"has no action {request.action!r}; {where}")
        return request.journey
    if not journeys:
        violations.add("action", f"no journey in force has an action {request.action!r}")
    elif len(journeys) > 1:
        violations.add("journey", f"action {request.action!r} is in {', '.join(journeys)}: "
                       "send the journey")  # fmt: skip
    return journeys[0] if journeys else ""


def customer_id_input(customer_id: str, field: str = "customer_id") -> str:
    """A request's customer id, valid; raises `EventInvalid` naming `field`."""
    problem = validate_customer_id(customer_id) if customer_id else "is required"
    if problem is not None:
        raise EventInvalid([FieldViolation(field, problem)])
    return customer_id


def identify_input(
    request: pb.IdentifyRequest, settings: Settings
) -> tuple[str, dict[str, PropertyValue]]:
    """An IdentifyRequest's valid anonymous id ("" for none) and traits; raises `EventInvalid`
    naming every bad field (the customer id is checked first, by `customer_id_input`)."""
    violations = Violations()
    anonymous_id = request.anonymous_id
    if anonymous_id and (problem := validate_customer_id(anonymous_id)):
        violations.add("anonymous_id", problem)
    elif anonymous_id and anonymous_id == request.customer_id:
        violations.add(
            "anonymous_id",
            "is the customer_id itself; send the visitor's anonymous id to merge, or leave"
            " it empty to set traits only",
        )
    traits = values_from_pb(request.traits, "traits", settings, violations)
    violations.raise_if_any()
    return anonymous_id, traits


def as_of_input(as_of_ms: int, now_ms: int, settings: Settings) -> int:
    """The moment a customer view is read at: `as_of_ms`, or `now_ms` when it is 0."""
    if as_of_ms == 0:
        return now_ms
    if as_of_ms < 0 or as_of_ms > now_ms + settings.max_future_skew_ms:
        problem = "is negative" if as_of_ms < 0 else "is in the future"
        fix = "send ms since the Unix epoch, or 0 for now"
        raise EventInvalid([FieldViolation("as_of_ms", f"{problem}; {fix}")])
    return as_of_ms


def view_to_pb(customer_id: str, view: CustomerView, ruleset_version: str) -> pb.CustomerView:
    """The single customer view (`engine.view.customer_view`) as the API gives it."""
    return pb.CustomerView(
        customer_id=customer_id,
        journeys=[
            pb.CustomerJourney(
                journey=j.journey, stage=j.stage, stage_entered_ms=j.stage_entered_ms,
                friction_score=j.friction_score, friction_level=j.friction_level,
                counters=dict(j.counters),
                recent_actions=[
                    pb.ShownAction(action=action, last_shown_ms=shown_ms)
                    for action, shown_ms in j.last_shown_ms.items()
                ],
                recent_stages=[
                    pb.StageEntry(stage=stage, entered_ms=entered_ms)
                    for stage, entered_ms in j.recent_stages
                ],
                segments=list(j.segments),
            )
            for j in view.journeys
        ],
        traits={name: value_to_pb(value) for name, value in view.traits.items()},
        last_event_ms=view.last_event_ms,
        ruleset_version=ruleset_version,
    )  # fmt: skip


def value_to_pb(value: PropertyValue) -> pb.Value:
    if isinstance(value, bool):
        return pb.Value(bool_value=value)
    if isinstance(value, str):
        return pb.Value(string_value=value)
    return pb.Value(number_value=float(value))


@dataclass(frozen=True, slots=True)
class ResponseTables:
    """What turning decisions into protobuf needs from the ruleset, computed once per ruleset."""

    # (journey, action, variant, channel key) → the content as JSON; the key is "" for a channel
    # the action has no content of its own for (engine.content.channel_key).
    content_json: Mapping[tuple[str, str, str, str], str]
    keyed_channels: Mapping[tuple[str, str], frozenset[str]]  # (journey, action) → channel keys

    @classmethod
    def of(cls, ruleset: Ruleset) -> ResponseTables:
        contents, channels = {}, {}
        for journey in ruleset.journeys:
            for action in journey.model.actions:
                keys = content_keys(action)
                channels[journey.name, action.id] = frozenset(c for _, c in keys)
                for variant, channel in keys:
                    content = dict(content_for(action, variant, channel))
                    contents[journey.name, action.id, variant, channel] = json.dumps(
                        content, sort_keys=True, default=str
                    )
        return cls(contents, channels)

    def content(self, offered: OfferedAction) -> str:
        keyed = self.keyed_channels[offered.journey, offered.action]
        channel = offered.channel if offered.channel in keyed else ""
        return self.content_json[offered.journey, offered.action, offered.variant, channel]


def decision_to_pb(
    decision: Decision,
    tables: ResponseTables,
    *,
    customer_id: str,
    event_id: str,
    decided_at_ms: int,
    degraded: bool,
) -> pb.Decision:
    """The protobuf form of an engine `Decision`."""
    return pb.Decision(
        customer_id=customer_id,
        event_id=event_id,
        journeys=[
            pb.JourneyStage(
                journey=o.journey, stage=o.stage, previous_stage=o.previous_stage,
                changed=o.changed, transition=o.transition or "",
                transition_line=o.transition_line or 0, friction_score=o.friction_score,
                friction_level=o.friction_level,
                top_signals=[pb.SignalScore(signal=s.signal, score=s.score) for s in o.top_signals],
            )
            for o in decision.journeys
        ],
        actions=[
            pb.OfferedAction(
                action=a.action, journey=a.journey, score=a.score, channel=a.channel,
                content_json=tables.content(a), reason=a.reason, variant=a.variant,
            )
            for a in decision.actions
        ],
        held_out_actions=list(decision.held_out),
        excluded=[
            pb.Exclusion(action=e.action, journey=e.journey, reason=e.reason, detail=e.detail)
            for e in decision.excluded
        ],
        ruleset_version=decision.ruleset_version,
        degraded=degraded,
        duplicate=decision.duplicate,
        decided_at_ms=decided_at_ms,
        not_fired=[
            pb.NotFired(journey=n.journey, transition=n.transition, line=n.line, reason=n.reason)
            for n in decision.not_fired
        ],
        conversions=[
            pb.Conversion(
                journey=c.journey, action=c.action, goal=c.goal, treated=c.treated, value=c.value,
                exposed_at_ms=c.exposed_at_ms, stage=c.stage, variant=c.variant,
            )
            for c in decision.conversions
        ],
    )  # fmt: skip
