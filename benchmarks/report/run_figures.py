"""The figures each run of `make bench` returns, as they travel through results.json.

The contract between the benchmarks (each `measure()` returns one of these) and the report
(which reads them back from JSON, where a run may be missing or, written by an older version,
lack a key). TypedDicts rather than dataclasses because JSON is what they are: `--render-only`
renders a results.json without converting anything. `float | None` is a figure its benchmark may
not have; a float that came out NaN (no samples) is None once through JSON, which the report
reads as "not measured" whatever the type says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from benchmarks.calls import CallCounts
from benchmarks.engine.regret import RegretFigures

if TYPE_CHECKING:
    from benchmarks.load.drive import Result


class RedisWork(TypedDict):
    """Redis work per event between two /metrics scrapes (`targets.per_event`)."""

    events: float
    pipelines: float
    commands: float
    pipelines_per_event: float | None
    commands_per_event: float | None
    commands_per_pipeline: float | None
    # Absent in results written before they were measured.
    events_per_round: NotRequired[float | None]
    server_us_per_call: NotRequired[float | None]  # in journeyman's Decide handler, mean


class TransportPlan(TypedDict):
    concurrency: int
    warmup_s: float
    closed_s: float
    open_s: float
    lockstep_s: float
    # One call at a time, the echo, Decide and the bare Decide took turns in this many rounds;
    # absent in results written when they ran one after the other.
    lockstep_rounds: NotRequired[int]
    # The linger of the Decide server with its loop spinning (`JOURNEYMAN_SPIN_US`); absent in
    # results written before it took its turn.
    spin_us: NotRequired[int]
    # The closed and open loops, the echo and Decide took turns in this many rounds (each after a
    # re-warm of `turns_rewarm_s` but the first); absent in results written when they ran one
    # after the other.
    turns: NotRequired[int]
    turns_rewarm_s: NotRequired[float]


class TransportFigures(TypedDict):
    """Echo and Decide, unary: closed and open loops, Redis work, `--workers 2`."""

    plan: TransportPlan
    echo_unary: Result
    echo_lockstep: Result
    decide_unary: Result
    half_rate_per_s: float
    decide_open: Result
    echo_open: Result
    decide_lockstep: Result
    # One call at a time against the parts and one commit alone (`benchmarks.load.bare`);
    # absent in results written before it was measured.
    bare_lockstep: NotRequired[Result]
    # Its parts' CPU per call on its thread (`benchmarks.load.bare.PARTS`; None: not written).
    bare_parts_us: NotRequired[dict[str, float] | None]
    # One call at a time against `journeyman serve` with its loop spinning (`plan.spin_us`).
    spinning_lockstep: NotRequired[Result]
    decide_unary_workers2: Result
    # The echo's closed loop in turns with `--workers 2`'s, its ceiling; absent in results
    # written when `echo_unary` was.
    echo_unary_beside_workers2: NotRequired[Result]
    redis_unary: RedisWork
    redis_lockstep: RedisWork


class StreamingPlan(TypedDict):
    streams: int
    window: int
    warmup_s: float
    closed_s: float
    # The stream echo and DecideStream took turns in this many rounds (`TransportPlan.turns`).
    turns: NotRequired[int]
    turns_rewarm_s: NotRequired[float]


class StreamingFigures(TypedDict):
    plan: StreamingPlan
    echo_stream: Result
    decide_stream: Result


class BatchPlan(TypedDict):
    batch: int
    in_flight: int
    customers: int
    warmup_s: float
    closed_s: float


class BatchFigures(TypedDict):
    plan: BatchPlan
    decide_batch: Result


class RedisBenchmarkCommand(TypedDict):
    """One redis-benchmark run of one command."""

    ops_per_s: float
    p50_ms: float
    p99_ms: float
    client_cpu_us_per_op: float
    redis_cpu_us_per_op: float


class RedisPyRun(TypedDict):
    """One redis-py run: through the service's Store, or pipelined by hand."""

    events_per_s: float
    ops_per_s: float
    client_cpu_us_per_event: float
    redis_cpu_us_per_event: float
    conflicts: int  # commits refused (0 unless the benchmark's commands are wrong)


class RedisCeilingFigures(TypedDict):
    """Redis alone (`benchmarks.redis.ceiling`)."""

    redis_version: str
    customers: int
    blob_bytes: int  # each commit's record: the state, 16 event ids and 8 decisions, compressed
    concurrency: int
    # "<socket> P<pipeline> <command>": one command; "<socket> P<pipeline> events_per_s": one of
    # each command per event, back to back.
    redis_benchmark: dict[str, RedisBenchmarkCommand | float]
    redis_py: dict[str, RedisPyRun]  # by run: "unix Store x64", "unix pipelined N=64 x1", …


class ZenFigures(TypedDict):
    """decide() beside zen-engine (`benchmarks.engine.peer_zen`), µs per event."""

    rules: str
    zen_engine_version: str
    events: int
    shoppers: int
    repeats: int
    load_average: str
    agree_stage_events: int
    agree_eligible_events: int
    agree_offers_events: int
    disagreements: list[str]
    transitions_fired: list[str]
    actions_offered: list[str]
    decide_us_per_event: float
    decide_cpu_us_per_event: float
    zen_us_per_event: float
    zen_cpu_us_per_event: float
    zen_evaluate_us_per_event: float
    zen_evaluate_cpu_us_per_event: float
    zen_create_decision_us_per_event: float
    zen_create_decision_cpu_us_per_event: float
    zen_batch_us_per_event: float
    zen_batch_cpu_us_per_event: float
    zen_async_us_per_event: float | None
    zen_async_cpu_us_per_event: float | None
    zen_async_note: str
    zen_to_decide_ratio: float
    zen_to_decide_cpu_ratio: float
    target_ratio: float


class EngineFigures(TypedDict):
    zen: ZenFigures
    ceilings_us: dict[str, float]  # "python": an empty Python call, "numba": a bare numba call
    # decide_many() beside a loop of decide(): `benchmarks.engine.many.ManyFigures` as a dict
    many: NotRequired[dict[str, float | int | None]]


class ReplayFigures(TypedDict):
    """The BPIC 2012 log through DecideStream (`benchmarks.load.replay`)."""

    events: int
    cases: int
    streams: int
    window: int
    wall_s: float
    events_per_s: float
    errors: dict[str, int]
    errors_total: int
    unanswered_events: int
    degraded: int
    duplicates: int
    client_cpu_us_per_event: float | None
    server_cpu_us_per_event: float | None
    stage_counts_service: dict[str, int]
    stage_counts_engine: dict[str, int]
    stage_counts_match: bool
    answers_match_engine: bool
    customers_checked: int
    customers_mismatched: int
    mismatched_examples: list[str]
    engine_in_process_events_per_s: float


class CustomerBytesFigures(TypedDict):
    """(a) of `benchmarks.redis.memory`: what a customer costs in Redis after a year."""

    bytes_per_customer_mean: float
    bytes_per_customer_p50: float
    bytes_per_customer_p99: float
    bytes_per_customer_max: float
    state_key_bytes_mean: float  # MEMORY USAGE of the state hash, whose blob is the record
    decisions_key_bytes_mean: float  # the decisions hash older versions wrote: 0 once committed
    record_bytes_mean: float  # the blob: the engine state and the decision ring, compressed
    record_bytes_max: float
    engine_state_bytes_mean: float  # in the record, uncompressed
    decision_bytes_mean: float  # a kept decision in the record's ring, uncompressed
    decisions_kept_mean: float
    decisions_kept_max: int
    events_remembered_max: int  # event ids in the ring, the older with their fingerprint alone
    key_encodings: dict[str, int]  # "<state key>/<decisions key>" encodings: customers
    target_bytes_per_customer: int
    within_target: bool


class YearFigures(CustomerBytesFigures):
    customers: int
    events: int
    events_per_customer_mean: float
    visit_days_per_customer: int
    errors: dict[str, int]
    degraded: int


class RssFigures(TypedDict):
    """(b) of `benchmarks.redis.memory`: RSS in MiB while a closed loop of Decide runs."""

    load_calls_per_s: float
    load_errors: dict[str, int]
    target_rss_mib: int
    server_rss_mib_before: NotRequired[float]
    server_rss_mib_peak: NotRequired[float]
    server_rss_mib_end: NotRequired[float]
    redis_rss_mib_before: NotRequired[float]  # none of the redis_* with an outside Redis
    redis_rss_mib_peak: NotRequired[float]
    redis_rss_mib_end: NotRequired[float]
    server_within_target: bool


class MemoryFigures(YearFigures, RssFigures):
    server_rss_mib_at_start: float


class OverloadRun(TypedDict):
    """One open-loop run at a multiple of the sustainable rate R."""

    multiple: float
    offered_per_s: float
    goodput_per_s: float | None  # None when the driver's window did not hold
    ok: int
    resource_exhausted: int
    cancelled: int
    client_overloaded: int
    other_errors: dict[str, int]
    ok_p50_us: int
    ok_p99_us: int
    driver_loop_lag_ms_max: float
    driver_kept_schedule: bool
    client_cpu_us_per_call: float | None
    server_cpu_us_per_call: float | None


class OverloadFigures(TypedDict):
    max_concurrent_calls: int
    sustainable_per_s: float
    closed_p50_us: int
    closed_p99_us: int
    closed_errors: dict[str, int]
    runs: list[OverloadRun]


class LocustRequest(TypedDict):
    """One row of locust's stats (a request name, or all of them): times in µs."""

    requests: int
    failures: int
    requests_per_s: float
    avg_us: float | None
    min_us: float | None
    max_us: float | None
    p50_us: float | None
    p90_us: float | None
    p99_us: float | None
    p99_9_us: float | None


class LocustFigures(LocustRequest):
    """The locust load (`benchmarks.load.run_locust`): the totals, then per request name."""

    tool: str
    locust_version: str
    time_unit: str
    target: str
    users: int
    spawn_rate_per_s: float
    duration_s: float
    think_ms: float
    run_id: str
    by_request: dict[str, LocustRequest]
    failure_messages: list[str]
    user_errors: list[str]
    journeys: dict[str, Any]  # the locustfile's journey summary per user class, as it wrote it
    skipped: dict[str, str]


class KernelsFigures(TypedDict):
    """The kernel micro-benchmarks: where kernels.md went, and its figures table."""

    path: str
    figures_table: list[list[str]]  # the header row first
    notes: list[str]


class GoalsEngineFigures(TypedDict):
    """decide() on the retail journey with and without its goals, the same events."""

    events: int
    shoppers: int
    repeats: int
    with_goals_us: float
    without_goals_us: float
    with_goals_samples_us: list[float]
    without_goals_samples_us: list[float]
    exposures: int  # new exposures the with-goals replay recorded
    conversions: int  # and the conversions it attributed


class GoalsRedisWork(RedisWork):
    """Redis work per event, with Redis's own count of commands (`INFO stats`): the hot path
    and the statistics flush together."""

    redis_commands_per_event: float | None


class GoalsLoadFigures(TypedDict):
    """One server's turns (ABBA, `rounds` of them) of `benchmarks.goals_cost.measure_load`."""

    decide: list[Result]
    decide_redis: list[GoalsRedisWork]
    batch: list[Result]
    lockstep_redis: list[GoalsRedisWork]


class GoalsCostPlan(TypedDict):
    concurrency: int
    warmup_s: float
    segment_s: float
    rounds: int
    lockstep_s: float
    batch: int
    batch_in_flight: int
    memory_customers: int


class GoalsCostFigures(TypedDict):
    """What goals and exposures cost (`benchmarks.goals_cost`): each figure with and without;
    `memory` and `load` by variant ("with_goals", "without_goals")."""

    plan: GoalsCostPlan
    engine: GoalsEngineFigures
    memory: dict[str, YearFigures]
    load: dict[str, GoalsLoadFigures]
    seconds: float


class TimerMemoryFigures(TypedDict):
    """(a) of `benchmarks.redis.timers`: Redis bytes of the due-time index and of the states."""

    redis_version: str
    customers: int  # members written to the index, each with its state
    shards: int
    member_chars: float  # `c:<customer id>`, mean: a UUID as apps send it
    index_bytes_per_timer: float  # used memory (less client and AOF buffers) grown ÷ customers
    index_memory_usage_per_timer: float  # MEMORY USAGE … SAMPLES 0 of every shard ÷ customers
    index_encodings: dict[str, int]  # OBJECT ENCODING of the shards: how many of each
    state_bytes_per_customer: float  # the states' used memory grown ÷ customers
    state_memory_usage_mean: float  # MEMORY USAGE … SAMPLES 0 of a sample of state hashes
    state_blob_bytes_mean: float
    fill_index_s: float
    fill_states_s: float


class TimerRateFigures(TypedDict):
    """(b) of `benchmarks.redis.timers`: the real `TimerLoop` turns until the due are fired."""

    pending: int  # customers in the index before the run, the due among them
    due: int
    fired: int  # timers the loop committed
    turns: int
    seconds: float
    fired_per_s: float
    loop_cpu_us_per_timer: float  # this process: claim, load, decide, commit, settle, stats
    redis_cpu_us_per_timer: float
    pending_after: int
    conflicts: int  # commits that met a newer state (none expected: nothing else writes)
    checks: dict[str, bool]  # what must hold after the run, by what it says


class TimerLoadTurn(TypedDict):
    """One turn of (c): Decide driven against a server whose timer loop is off, idle or busy."""

    variant: str  # "off", "idle" or "busy"
    decide: Result  # closed loop
    lockstep: Result  # one call at a time
    scheduled: int  # timers made due over the turn (busy turns)
    fired: float  # timers the server committed during the turn (its /metrics)
    fired_per_s: float
    lateness_s_mean: float | None  # from due time to commit, the turn's timers


class TimerPlan(TypedDict):
    customers: int
    due: int
    concurrency: int
    warmup_s: float
    segment_s: float
    lockstep_s: float
    rounds: int
    busy_per_s: float


class TimerRedisFigures(TypedDict):
    """`benchmarks.redis.timers`: a pending timer's bytes, and the loop's rate."""

    memory: TimerMemoryFigures
    rate: TimerRateFigures  # with `customers` pending
    rate_alone: TimerRateFigures  # the same due timers with nothing else pending
    decide_us_per_timer: float  # decide() alone on the same timers, in-process


class TimerFigures(TimerRedisFigures):
    """Timers at scale (`benchmarks.timers_cost`, issue 15): memory, rate, hot-path cost."""

    plan: TimerPlan
    load: list[TimerLoadTurn]  # in the order they ran
    seconds: float


class ConditionsVariant(TypedDict):
    """One variant of the trial journey in `benchmarks.engine.conditions_cost`: decide() µs per
    event, the customers' encoded states after a replay, and what the replay offered."""

    us_per_event: float  # the fastest of its timed replays (the least disturbed by other work)
    us_per_event_median: float
    samples_us: list[float]  # each timed replay's, in the order run
    traits_us: float  # `engine.decide.trait_features` alone (dates parsed there), fastest round
    state_bytes_mean: float  # `engine.codec.encode_state`, per customer
    state_bytes_max: int
    offers: dict[str, int]  # by action, over one replay


class ConditionsPlan(TypedDict):
    customers: int
    rounds: int
    many_repeats: int


class ConditionsCostFigures(TypedDict):
    """What time conditions and the contact policy cost (`benchmarks.engine.conditions_cost`,
    issue 17); `variants` by name: "base", "since", "until", "contact", "all"."""

    plan: ConditionsPlan
    events: int
    variants: dict[str, ConditionsVariant]
    many_events_per_s: dict[str, float]  # decide_many(), median: "base" and "all"
    many_samples_per_s: dict[str, list[float]]
    load_average_start: str  # `report.machine.load_average`: the machine is shared
    load_average_end: str
    seconds: float


class RoundTripCpu(TypedDict):
    """A Redis round trip's client CPU, µs (`benchmarks.redis.round_trip`): one HSET of a
    1,200-byte value with no client library, through the service's Pipeliner, through
    redis-py's pipeline and pool."""

    bare_us: float
    pipeliner_us: float
    redis_py_us: float


class DecisionPartsUs(TypedDict):
    """The calls a decision makes (`server.decisions.round`), each alone, CPU µs per event."""

    validation: float  # `decide_input`
    engine: float  # `engine.decide.decide`
    answer: float  # `decision_to_pb` + `kept_decision`
    state: float  # `engine.codec.encode_state`
    timer: float  # `event_timer_write`
    record: float  # `encode_record`: msgpack + zstd of the state and the ring
    commit: float  # `Store.commit_many` of one ToCommit: its record included, and a round trip


class PartsPlan(TypedDict):
    customers: int
    events: int
    batch: int
    batches: int
    round_trips: int
    repeats: int
    counted_events: NotRequired[int]  # absent in results written before calls were counted


class PartsFigures(TypedDict):
    """Where a decision's CPU goes (`benchmarks.decision_parts`, issue 16): the whole decision
    in-process, CPU µs per event, one at a time and in DecideBatch calls (validation not
    included: it is a part), its parts alone, and a Redis round trip's client CPU."""

    plan: PartsPlan
    redis_version: str
    round_trip_us: RoundTripCpu
    decide_us: float  # `Decider.decide`, one event at a time
    # Its calls and validation's, per event (`benchmarks.calls`); absent in older results.
    calls_per_event: NotRequired[CallCounts]
    decide_batch_us: float  # `Decider.decide_batch`, per event
    parts_us: DecisionPartsUs
    seconds: float


class RunFigures(TypedDict, total=False):
    """Every run's figures by run name; a run that failed or did not run is absent."""

    transport: TransportFigures
    streaming: StreamingFigures
    batch: BatchFigures
    redis: RedisCeilingFigures
    engine: EngineFigures
    replay: ReplayFigures
    memory: MemoryFigures
    overload: OverloadFigures
    locust: LocustFigures
    kernels: KernelsFigures
    goals: GoalsCostFigures
    regret: RegretFigures
    timers: TimerFigures
    conditions: ConditionsCostFigures
    parts: PartsFigures
