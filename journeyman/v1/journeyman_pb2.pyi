from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubscribeRequest(_message.Message):
    __slots__ = ("journeys", "stages", "from_id")
    JOURNEYS_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    journeys: _containers.RepeatedScalarFieldContainer[str]
    stages: _containers.RepeatedScalarFieldContainer[str]
    from_id: str
    def __init__(self, journeys: _Optional[_Iterable[str]] = ..., stages: _Optional[_Iterable[str]] = ..., from_id: _Optional[str] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: OutboxEntry
    def __init__(self, entry: _Optional[_Union[OutboxEntry, _Mapping]] = ...) -> None: ...

class OutboxEntry(_message.Message):
    __slots__ = ("id", "decision_id", "kind", "decision")
    ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    id: str
    decision_id: str
    kind: str
    decision: Decision
    def __init__(self, id: _Optional[str] = ..., decision_id: _Optional[str] = ..., kind: _Optional[str] = ..., decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("string_value", "number_value", "bool_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    number_value: float
    bool_value: bool
    def __init__(self, string_value: _Optional[str] = ..., number_value: _Optional[float] = ..., bool_value: _Optional[bool] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "customer_id", "anonymous_id", "type", "channel", "touchpoint", "timestamp_ms", "properties")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TOUCHPOINT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    customer_id: str
    anonymous_id: str
    type: str
    channel: str
    touchpoint: str
    timestamp_ms: int
    properties: _containers.MessageMap[str, Value]
    def __init__(self, event_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., type: _Optional[str] = ..., channel: _Optional[str] = ..., touchpoint: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., properties: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class DecideRequest(_message.Message):
    __slots__ = ("event", "explain", "top_k")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    event: Event
    explain: bool
    top_k: int
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., explain: _Optional[bool] = ..., top_k: _Optional[int] = ...) -> None: ...

class DecideResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class DecideStreamRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: DecideRequest
    def __init__(self, request: _Optional[_Union[DecideRequest, _Mapping]] = ...) -> None: ...

class DecideStreamResponse(_message.Message):
    __slots__ = ("decision", "error_code", "error_message", "field_violations", "retry_after_ms")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    error_code: int
    error_message: str
    field_violations: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    retry_after_ms: int
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., field_violations: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class DecideBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[DecideRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[DecideRequest, _Mapping]]] = ...) -> None: ...

class DecideBatchResponse(_message.Message):
    __slots__ = ("results", "not_stored")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    NOT_STORED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchResult]
    not_stored: int
    def __init__(self, results: _Optional[_Iterable[_Union[BatchResult, _Mapping]]] = ..., not_stored: _Optional[int] = ...) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ("index", "decision", "error_code", "error_message", "field_violations", "retry_after_ms")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    index: int
    decision: Decision
    error_code: int
    error_message: str
    field_violations: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    retry_after_ms: int
    def __init__(self, index: _Optional[int] = ..., decision: _Optional[_Union[Decision, _Mapping]] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., field_violations: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class FieldViolation(_message.Message):
    __slots__ = ("field", "description")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("customer_id", "event_id", "journeys", "actions", "held_out_actions", "excluded", "ruleset_version", "degraded", "duplicate", "decided_at_ms", "conversions", "not_fired")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    JOURNEYS_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    HELD_OUT_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    RULESET_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    NOT_FIRED_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    event_id: str
    journeys: _containers.RepeatedCompositeFieldContainer[JourneyStage]
    actions: _containers.RepeatedCompositeFieldContainer[OfferedAction]
    held_out_actions: _containers.RepeatedScalarFieldContainer[str]
    excluded: _containers.RepeatedCompositeFieldContainer[Exclusion]
    ruleset_version: str
    degraded: bool
    duplicate: bool
    decided_at_ms: int
    conversions: _containers.RepeatedCompositeFieldContainer[Conversion]
    not_fired: _containers.RepeatedCompositeFieldContainer[NotFired]
    def __init__(self, customer_id: _Optional[str] = ..., event_id: _Optional[str] = ..., journeys: _Optional[_Iterable[_Union[JourneyStage, _Mapping]]] = ..., actions: _Optional[_Iterable[_Union[OfferedAction, _Mapping]]] = ..., held_out_actions: _Optional[_Iterable[str]] = ..., excluded: _Optional[_Iterable[_Union[Exclusion, _Mapping]]] = ..., ruleset_version: _Optional[str] = ..., degraded: _Optional[bool] = ..., duplicate: _Optional[bool] = ..., decided_at_ms: _Optional[int] = ..., conversions: _Optional[_Iterable[_Union[Conversion, _Mapping]]] = ..., not_fired: _Optional[_Iterable[_Union[NotFired, _Mapping]]] = ...) -> None: ...

class NotFired(_message.Message):
    __slots__ = ("journey", "transition", "line", "reason")
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    journey: str
    transition: str
    line: int
    reason: str
    def __init__(self, journey: _Optional[str] = ..., transition: _Optional[str] = ..., line: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Conversion(_message.Message):
    __slots__ = ("journey", "action", "goal", "treated", "value", "exposed_at_ms", "stage", "variant")
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    TREATED_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPOSED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    journey: str
    action: str
    goal: str
    treated: bool
    value: float
    exposed_at_ms: int
    stage: str
    variant: str
    def __init__(self, journey: _Optional[str] = ..., action: _Optional[str] = ..., goal: _Optional[str] = ..., treated: _Optional[bool] = ..., value: _Optional[float] = ..., exposed_at_ms: _Optional[int] = ..., stage: _Optional[str] = ..., variant: _Optional[str] = ...) -> None: ...

class JourneyStage(_message.Message):
    __slots__ = ("journey", "stage", "previous_stage", "changed", "transition", "transition_line", "friction_score", "friction_level", "top_signals")
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STAGE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_LINE_FIELD_NUMBER: _ClassVar[int]
    FRICTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    FRICTION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    TOP_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    journey: str
    stage: str
    previous_stage: str
    changed: bool
    transition: str
    transition_line: int
    friction_score: float
    friction_level: str
    top_signals: _containers.RepeatedCompositeFieldContainer[SignalScore]
    def __init__(self, journey: _Optional[str] = ..., stage: _Optional[str] = ..., previous_stage: _Optional[str] = ..., changed: _Optional[bool] = ..., transition: _Optional[str] = ..., transition_line: _Optional[int] = ..., friction_score: _Optional[float] = ..., friction_level: _Optional[str] = ..., top_signals: _Optional[_Iterable[_Union[SignalScore, _Mapping]]] = ...) -> None: ...

class SignalScore(_message.Message):
    __slots__ = ("signal", "score")
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    signal: str
    score: float
    def __init__(self, signal: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class OfferedAction(_message.Message):
    __slots__ = ("action", "journey", "score", "channel", "content_json", "reason", "variant")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_JSON_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    action: str
    journey: str
    score: float
    channel: str
    content_json: str
    reason: str
    variant: str
    def __init__(self, action: _Optional[str] = ..., journey: _Optional[str] = ..., score: _Optional[float] = ..., channel: _Optional[str] = ..., content_json: _Optional[str] = ..., reason: _Optional[str] = ..., variant: _Optional[str] = ...) -> None: ...

class Exclusion(_message.Message):
    __slots__ = ("action", "journey", "reason", "detail")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    action: str
    journey: str
    reason: str
    detail: str
    def __init__(self, action: _Optional[str] = ..., journey: _Optional[str] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class IdentifyRequest(_message.Message):
    __slots__ = ("customer_id", "anonymous_id", "traits")
    class TraitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    anonymous_id: str
    traits: _containers.MessageMap[str, Value]
    def __init__(self, customer_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., traits: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("customer", "merged")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    customer: CustomerView
    merged: bool
    def __init__(self, customer: _Optional[_Union[CustomerView, _Mapping]] = ..., merged: _Optional[bool] = ...) -> None: ...

class GetCustomerRequest(_message.Message):
    __slots__ = ("customer_id", "as_of_ms")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_MS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    as_of_ms: int
    def __init__(self, customer_id: _Optional[str] = ..., as_of_ms: _Optional[int] = ...) -> None: ...

class GetCustomerResponse(_message.Message):
    __slots__ = ("customer", "known")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    customer: CustomerView
    known: bool
    def __init__(self, customer: _Optional[_Union[CustomerView, _Mapping]] = ..., known: _Optional[bool] = ...) -> None: ...

class CustomerView(_message.Message):
    __slots__ = ("customer_id", "journeys", "traits", "last_event_ms", "ruleset_version")
    class TraitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    JOURNEYS_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_MS_FIELD_NUMBER: _ClassVar[int]
    RULESET_VERSION_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    journeys: _containers.RepeatedCompositeFieldContainer[CustomerJourney]
    traits: _containers.MessageMap[str, Value]
    last_event_ms: int
    ruleset_version: str
    def __init__(self, customer_id: _Optional[str] = ..., journeys: _Optional[_Iterable[_Union[CustomerJourney, _Mapping]]] = ..., traits: _Optional[_Mapping[str, Value]] = ..., last_event_ms: _Optional[int] = ..., ruleset_version: _Optional[str] = ...) -> None: ...

class CustomerJourney(_message.Message):
    __slots__ = ("journey", "stage", "stage_entered_ms", "friction_score", "friction_level", "counters", "recent_actions", "recent_stages", "segments")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STAGE_ENTERED_MS_FIELD_NUMBER: _ClassVar[int]
    FRICTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    FRICTION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    RECENT_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    RECENT_STAGES_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    journey: str
    stage: str
    stage_entered_ms: int
    friction_score: float
    friction_level: str
    counters: _containers.ScalarMap[str, float]
    recent_actions: _containers.RepeatedCompositeFieldContainer[ShownAction]
    recent_stages: _containers.RepeatedCompositeFieldContainer[StageEntry]
    segments: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, journey: _Optional[str] = ..., stage: _Optional[str] = ..., stage_entered_ms: _Optional[int] = ..., friction_score: _Optional[float] = ..., friction_level: _Optional[str] = ..., counters: _Optional[_Mapping[str, float]] = ..., recent_actions: _Optional[_Iterable[_Union[ShownAction, _Mapping]]] = ..., recent_stages: _Optional[_Iterable[_Union[StageEntry, _Mapping]]] = ..., segments: _Optional[_Iterable[str]] = ...) -> None: ...

class StageEntry(_message.Message):
    __slots__ = ("stage", "entered_ms")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ENTERED_MS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    entered_ms: int
    def __init__(self, stage: _Optional[str] = ..., entered_ms: _Optional[int] = ...) -> None: ...

class ShownAction(_message.Message):
    __slots__ = ("action", "last_shown_ms")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    LAST_SHOWN_MS_FIELD_NUMBER: _ClassVar[int]
    action: str
    last_shown_ms: int
    def __init__(self, action: _Optional[str] = ..., last_shown_ms: _Optional[int] = ...) -> None: ...

class ForgetCustomerRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class ForgetCustomerResponse(_message.Message):
    __slots__ = ("deleted_keys",)
    DELETED_KEYS_FIELD_NUMBER: _ClassVar[int]
    deleted_keys: int
    def __init__(self, deleted_keys: _Optional[int] = ...) -> None: ...

class GetRulesetRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRulesetResponse(_message.Message):
    __slots__ = ("version", "files", "loaded_at_ms", "reloads", "failed_reloads", "refused_reason", "refused_at_ms")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RELOADS_FIELD_NUMBER: _ClassVar[int]
    FAILED_RELOADS_FIELD_NUMBER: _ClassVar[int]
    REFUSED_REASON_FIELD_NUMBER: _ClassVar[int]
    REFUSED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    version: str
    files: _containers.RepeatedCompositeFieldContainer[RulesFile]
    loaded_at_ms: int
    reloads: int
    failed_reloads: int
    refused_reason: str
    refused_at_ms: int
    def __init__(self, version: _Optional[str] = ..., files: _Optional[_Iterable[_Union[RulesFile, _Mapping]]] = ..., loaded_at_ms: _Optional[int] = ..., reloads: _Optional[int] = ..., failed_reloads: _Optional[int] = ..., refused_reason: _Optional[str] = ..., refused_at_ms: _Optional[int] = ...) -> None: ...

class RulesFile(_message.Message):
    __slots__ = ("path", "journey", "declared_version", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    DECLARED_VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    journey: str
    declared_version: str
    sha256: str
    def __init__(self, path: _Optional[str] = ..., journey: _Optional[str] = ..., declared_version: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class RecordResponseRequest(_message.Message):
    __slots__ = ("customer_id", "anonymous_id", "event_id", "action", "journey", "response", "response_id", "timestamp_ms", "channel", "touchpoint")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TOUCHPOINT_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    anonymous_id: str
    event_id: str
    action: str
    journey: str
    response: str
    response_id: str
    timestamp_ms: int
    channel: str
    touchpoint: str
    def __init__(self, customer_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., event_id: _Optional[str] = ..., action: _Optional[str] = ..., journey: _Optional[str] = ..., response: _Optional[str] = ..., response_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., channel: _Optional[str] = ..., touchpoint: _Optional[str] = ...) -> None: ...

class RecordResponseResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class GetActionReportRequest(_message.Message):
    __slots__ = ("journey", "since", "until")
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    journey: str
    since: str
    until: str
    def __init__(self, journey: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ...) -> None: ...

class GetActionReportResponse(_message.Message):
    __slots__ = ("journey", "since", "until", "rows", "ruleset_version")
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    RULESET_VERSION_FIELD_NUMBER: _ClassVar[int]
    journey: str
    since: str
    until: str
    rows: _containers.RepeatedCompositeFieldContainer[ActionGoalReport]
    ruleset_version: str
    def __init__(self, journey: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[ActionGoalReport, _Mapping]]] = ..., ruleset_version: _Optional[str] = ...) -> None: ...

class Interval(_message.Message):
    __slots__ = ("low", "high")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    low: float
    high: float
    def __init__(self, low: _Optional[float] = ..., high: _Optional[float] = ...) -> None: ...

class ActionGoalReport(_message.Message):
    __slots__ = ("action", "goal", "variant", "treated_customers", "treated_conversions", "treated_value", "control_customers", "control_conversions", "control_value", "treated_rate", "control_rate", "uplift", "uplift_fixed", "uplift_sequential", "relative_uplift", "relative_fixed", "relative_sequential", "incremental_conversions", "incremental_value", "verdict", "verdict_interval", "customers_needed", "holdout_percent", "control_share", "sample_ratio_mismatch", "sample_ratio_message")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    TREATED_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    TREATED_CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    TREATED_VALUE_FIELD_NUMBER: _ClassVar[int]
    CONTROL_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    CONTROL_CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    CONTROL_VALUE_FIELD_NUMBER: _ClassVar[int]
    TREATED_RATE_FIELD_NUMBER: _ClassVar[int]
    CONTROL_RATE_FIELD_NUMBER: _ClassVar[int]
    UPLIFT_FIELD_NUMBER: _ClassVar[int]
    UPLIFT_FIXED_FIELD_NUMBER: _ClassVar[int]
    UPLIFT_SEQUENTIAL_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_UPLIFT_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_FIXED_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_SEQUENTIAL_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_NEEDED_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    CONTROL_SHARE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATIO_MISMATCH_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATIO_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    action: str
    goal: str
    variant: str
    treated_customers: int
    treated_conversions: int
    treated_value: float
    control_customers: int
    control_conversions: int
    control_value: float
    treated_rate: float
    control_rate: float
    uplift: float
    uplift_fixed: Interval
    uplift_sequential: Interval
    relative_uplift: float
    relative_fixed: Interval
    relative_sequential: Interval
    incremental_conversions: float
    incremental_value: float
    verdict: str
    verdict_interval: str
    customers_needed: int
    holdout_percent: float
    control_share: float
    sample_ratio_mismatch: bool
    sample_ratio_message: str
    def __init__(self, action: _Optional[str] = ..., goal: _Optional[str] = ..., variant: _Optional[str] = ..., treated_customers: _Optional[int] = ..., treated_conversions: _Optional[int] = ..., treated_value: _Optional[float] = ..., control_customers: _Optional[int] = ..., control_conversions: _Optional[int] = ..., control_value: _Optional[float] = ..., treated_rate: _Optional[float] = ..., control_rate: _Optional[float] = ..., uplift: _Optional[float] = ..., uplift_fixed: _Optional[_Union[Interval, _Mapping]] = ..., uplift_sequential: _Optional[_Union[Interval, _Mapping]] = ..., relative_uplift: _Optional[float] = ..., relative_fixed: _Optional[_Union[Interval, _Mapping]] = ..., relative_sequential: _Optional[_Union[Interval, _Mapping]] = ..., incremental_conversions: _Optional[float] = ..., incremental_value: _Optional[float] = ..., verdict: _Optional[str] = ..., verdict_interval: _Optional[str] = ..., customers_needed: _Optional[int] = ..., holdout_percent: _Optional[float] = ..., control_share: _Optional[float] = ..., sample_ratio_mismatch: _Optional[bool] = ..., sample_ratio_message: _Optional[str] = ...) -> None: ...

class GetJourneyStatsRequest(_message.Message):
    __slots__ = ("journey", "since", "until")
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    journey: str
    since: str
    until: str
    def __init__(self, journey: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ...) -> None: ...

class GetJourneyStatsResponse(_message.Message):
    __slots__ = ("journey", "since", "until", "stages", "transitions", "stall_after_ms", "friction_levels", "description", "ruleset_version", "as_of_ms")
    JOURNEY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    STALL_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    FRICTION_LEVELS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    RULESET_VERSION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_MS_FIELD_NUMBER: _ClassVar[int]
    journey: str
    since: str
    until: str
    stages: _containers.RepeatedCompositeFieldContainer[StageStats]
    transitions: _containers.RepeatedCompositeFieldContainer[TransitionStats]
    stall_after_ms: int
    friction_levels: _containers.RepeatedScalarFieldContainer[str]
    description: str
    ruleset_version: str
    as_of_ms: int
    def __init__(self, journey: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., stages: _Optional[_Iterable[_Union[StageStats, _Mapping]]] = ..., transitions: _Optional[_Iterable[_Union[TransitionStats, _Mapping]]] = ..., stall_after_ms: _Optional[int] = ..., friction_levels: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., ruleset_version: _Optional[str] = ..., as_of_ms: _Optional[int] = ...) -> None: ...

class StageStats(_message.Message):
    __slots__ = ("stage", "label", "description", "customers", "stalled", "entries", "exits", "visits", "time_in_stage_samples", "time_in_stage_median_s", "time_in_stage_p90_s", "friction_levels", "friction_signals", "actions", "conversions")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    STALLED_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    EXITS_FIELD_NUMBER: _ClassVar[int]
    VISITS_FIELD_NUMBER: _ClassVar[int]
    TIME_IN_STAGE_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TIME_IN_STAGE_MEDIAN_S_FIELD_NUMBER: _ClassVar[int]
    TIME_IN_STAGE_P90_S_FIELD_NUMBER: _ClassVar[int]
    FRICTION_LEVELS_FIELD_NUMBER: _ClassVar[int]
    FRICTION_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    label: str
    description: str
    customers: int
    stalled: int
    entries: int
    exits: int
    visits: int
    time_in_stage_samples: int
    time_in_stage_median_s: float
    time_in_stage_p90_s: float
    friction_levels: _containers.RepeatedCompositeFieldContainer[LevelCount]
    friction_signals: _containers.RepeatedCompositeFieldContainer[SignalCount]
    actions: _containers.RepeatedCompositeFieldContainer[ActionStageStats]
    conversions: _containers.RepeatedCompositeFieldContainer[GoalCount]
    def __init__(self, stage: _Optional[str] = ..., label: _Optional[str] = ..., description: _Optional[str] = ..., customers: _Optional[int] = ..., stalled: _Optional[int] = ..., entries: _Optional[int] = ..., exits: _Optional[int] = ..., visits: _Optional[int] = ..., time_in_stage_samples: _Optional[int] = ..., time_in_stage_median_s: _Optional[float] = ..., time_in_stage_p90_s: _Optional[float] = ..., friction_levels: _Optional[_Iterable[_Union[LevelCount, _Mapping]]] = ..., friction_signals: _Optional[_Iterable[_Union[SignalCount, _Mapping]]] = ..., actions: _Optional[_Iterable[_Union[ActionStageStats, _Mapping]]] = ..., conversions: _Optional[_Iterable[_Union[GoalCount, _Mapping]]] = ...) -> None: ...

class LevelCount(_message.Message):
    __slots__ = ("level", "events")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    level: str
    events: int
    def __init__(self, level: _Optional[str] = ..., events: _Optional[int] = ...) -> None: ...

class SignalCount(_message.Message):
    __slots__ = ("signal", "touchpoint", "fired")
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    TOUCHPOINT_FIELD_NUMBER: _ClassVar[int]
    FIRED_FIELD_NUMBER: _ClassVar[int]
    signal: str
    touchpoint: str
    fired: int
    def __init__(self, signal: _Optional[str] = ..., touchpoint: _Optional[str] = ..., fired: _Optional[int] = ...) -> None: ...

class ActionStageStats(_message.Message):
    __slots__ = ("action", "label", "offered", "held_out", "conversions", "control_conversions")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    OFFERED_FIELD_NUMBER: _ClassVar[int]
    HELD_OUT_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    CONTROL_CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    action: str
    label: str
    offered: int
    held_out: int
    conversions: int
    control_conversions: int
    def __init__(self, action: _Optional[str] = ..., label: _Optional[str] = ..., offered: _Optional[int] = ..., held_out: _Optional[int] = ..., conversions: _Optional[int] = ..., control_conversions: _Optional[int] = ...) -> None: ...

class GoalCount(_message.Message):
    __slots__ = ("goal", "conversions")
    GOAL_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    goal: str
    conversions: int
    def __init__(self, goal: _Optional[str] = ..., conversions: _Optional[int] = ...) -> None: ...

class TransitionStats(_message.Message):
    __slots__ = ("transition", "from_stage", "to_stage", "line", "customers", "share", "per_day")
    TRANSITION_FIELD_NUMBER: _ClassVar[int]
    FROM_STAGE_FIELD_NUMBER: _ClassVar[int]
    TO_STAGE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    PER_DAY_FIELD_NUMBER: _ClassVar[int]
    transition: str
    from_stage: str
    to_stage: str
    line: int
    customers: int
    share: float
    per_day: _containers.RepeatedCompositeFieldContainer[DayCount]
    def __init__(self, transition: _Optional[str] = ..., from_stage: _Optional[str] = ..., to_stage: _Optional[str] = ..., line: _Optional[int] = ..., customers: _Optional[int] = ..., share: _Optional[float] = ..., per_day: _Optional[_Iterable[_Union[DayCount, _Mapping]]] = ...) -> None: ...

class DayCount(_message.Message):
    __slots__ = ("day", "customers")
    DAY_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    day: str
    customers: int
    def __init__(self, day: _Optional[str] = ..., customers: _Optional[int] = ...) -> None: ...
