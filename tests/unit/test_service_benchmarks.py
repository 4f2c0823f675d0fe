"""The service benchmarks' pure parts: what they send, how they schedule it, how they sum it up.

Never timings: the benchmarks measure those, against a running server.
"""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.load.drive import Result
from benchmarks.load.overload import goodput, summarise_run
from benchmarks.load.replay import (
    EngineReplay,
    StreamReplay,
    StreamSchedule,
    as_request,
    by_case,
    compare_stages,
    first_cases,
    spread_over_streams,
    summary,
)
from benchmarks.redis.ceiling import Plan as CeilingPlan
from benchmarks.redis.ceiling import (
    benchmark_commands,
    commit_args,
    customer_id,
    event_id,
    events_per_s_from_commands,
    parse_benchmark_csv,
    payload,
    shares,
)
from benchmarks.redis.memory import (
    DAY_MS,
    YEAR_DAYS,
    CustomerBytes,
    bytes_summary,
    distribution,
    year_of_shoppers,
)
from server.store.keys import Keyspace
from server.store.record import FINGERPRINT_BYTES, decode_record
from server.tools.event_logs import LoanEvent, loan_event

END_MS = 1_795_000_000_000


def _row(case: str, activity: str, at_ms: int, lifecycle: str = "COMPLETE") -> LoanEvent:
    return LoanEvent(case, activity, lifecycle, at_ms, 5000.0, "")


LOG = [
    _row("1", "A_SUBMITTED", 10),
    _row("2", "A_SUBMITTED", 11),
    _row("1", "W_Nabellen offertes", 12, "START"),
    _row("3", "A_SUBMITTED", 13),
    _row("2", "A_DECLINED", 14),
    _row("1", "A_APPROVED", 15),
]


# --- replay ---------------------------------------------------------------------------------------


def test_first_cases_keeps_every_row_of_the_first_cases_in_file_order() -> None:
    assert first_cases(LOG, 2) == [r for r in LOG if r.case_id in ("1", "2")]
    assert first_cases(LOG, None) == LOG


def test_by_case_numbers_rows_by_their_place_in_the_log() -> None:
    cases = by_case(LOG)
    assert [n for n, _ in cases["1"]] == [0, 2, 5]
    assert [row.activity for _, row in cases["2"]] == ["A_SUBMITTED", "A_DECLINED"]


def test_a_request_carries_the_event_the_engine_replay_decides_at_the_row_time() -> None:
    request = as_request((2, LOG[2]))
    engine = loan_event(2, LOG[2])
    event = request.event
    assert (event.event_id, event.customer_id, event.type) == (
        engine.event_id, engine.customer_id, engine.type,
    )  # fmt: skip
    assert (event.channel, event.touchpoint) == (engine.channel, engine.touchpoint)
    assert event.timestamp_ms == LOG[2].timestamp_ms
    assert event.properties["lifecycle"].string_value == "START"
    assert event.properties["amount_req"].number_value == 5000.0


@given(st.lists(st.integers(1, 200), max_size=60), st.integers(1, 8))
def test_every_case_goes_to_one_stream_and_streams_are_balanced(
    sizes: list[int], streams: int
) -> None:
    assigned = spread_over_streams(sizes, streams)
    assert sorted(c for stream in assigned for c in stream) == list(range(len(sizes)))
    loads = [sum(sizes[c] for c in stream) for stream in assigned]
    # Longest-processing-time: no stream exceeds the lightest by more than one (largest) case.
    assert max(loads) - min(loads) <= max(sizes, default=0)


@given(
    st.lists(st.integers(0, 6), max_size=12),
    st.integers(1, 5),
    st.randoms(use_true_random=False),
)
def test_a_stream_never_has_two_events_of_one_case_in_flight(
    lengths: list[int], window: int, rng: random.Random
) -> None:
    cases = [[(case, position) for position in range(n)] for case, n in enumerate(lengths)]
    schedule = StreamSchedule(cases, window)
    in_flight = schedule.start()
    sent = list(in_flight)
    while in_flight:
        assert len(in_flight) <= window
        assert len({case for case, _ in in_flight}) == len(in_flight)
        answered = in_flight.pop(rng.randrange(len(in_flight)))  # answers in any order
        following = schedule.answered(answered[0])
        if following is not None:
            in_flight.append(following)
            sent.append(following)
    # Every event sent once, each case's events in their order.
    assert Counter(item for _, item in sent) == Counter(e for case in cases for e in case)
    for case, events in enumerate(cases):
        assert [item for c, item in sent if c == case] == events


def test_summary_says_whether_the_service_ended_where_the_engine_did() -> None:
    replayed = StreamReplay(sent=6, answered=6, degraded=1, wall_s=2.0)
    replayed.final_stages = {"1": {"loan_application": "approved"}, "2": {"loan_application": "x"}}
    engine = EngineReplay({"1": "approved", "2": "declined"}, events_per_s=1000.0)
    figures = summary(
        replayed, engine, {"approved": 1, "declined": 1}, {"1": "approved", "2": "declined"},
        streams=2, window=1,
    )  # fmt: skip
    assert figures["events_per_s"] == 3.0
    assert figures["stage_counts_match"] is True
    assert figures["customers_mismatched"] == 0
    assert figures["answers_match_engine"] is False  # the last answer for "2" said "x"
    assert figures["degraded"] == 1
    assert compare_stages({"1": "a"}, {"1": "a", "2": "b"}) == ["2"]


# --- memory ---------------------------------------------------------------------------------------


def test_a_year_of_shoppers_spreads_each_one_over_the_year_in_time_order() -> None:
    journeys, traits = year_of_shoppers(5, 30, END_MS, seed=1)
    assert len(journeys) == len(traits) == 5
    ids = [r.event.event_id for events in journeys for r in events]
    assert len(ids) == len(set(ids))
    for events, customer in zip(journeys, traits, strict=True):
        times = [r.event.timestamp_ms for r in events]
        assert times == sorted(times)
        assert END_MS - YEAR_DAYS * DAY_MS <= times[0] and times[-1] <= END_MS
        assert len({(t - (END_MS - YEAR_DAYS * DAY_MS)) // DAY_MS for t in times}) == 30
        assert {r.event.customer_id for r in events} == {customer}
    assert year_of_shoppers(5, 30, END_MS, seed=1)[0] == journeys  # seeded


def test_distribution_and_bytes_summary() -> None:
    assert distribution([3.0, 1.0, 2.0]) == {"mean": 2.0, "p50": 2.0, "p99": 3.0, "max": 3.0}
    measured = [
        CustomerBytes(1600, 0, 1300, 1200, [100] * 8, 16, ("hashtable", "absent")),
        # A customer not written since the decision ring moved: its decisions hash is left.
        CustomerBytes(900, 3000, 700, 700, [], 0, ("hashtable", "hashtable")),
    ]
    figures = bytes_summary(measured)
    assert figures["bytes_per_customer_max"] == 3900
    assert figures["bytes_per_customer_mean"] == 2750.0
    assert figures["decisions_key_bytes_mean"] == 1500.0
    assert (figures["record_bytes_mean"], figures["record_bytes_max"]) == (1000.0, 1300)
    assert figures["engine_state_bytes_mean"] == 950.0
    assert (figures["decisions_kept_mean"], figures["decisions_kept_max"]) == (4.0, 8)
    assert figures["events_remembered_max"] == 16
    assert figures["decision_bytes_mean"] == 100.0  # over the decisions kept, not the customers
    assert figures["within_target"] is False
    assert figures["key_encodings"] == {"hashtable/absent": 1, "hashtable/hashtable": 1}


# --- redis ceiling --------------------------------------------------------------------------------


def test_redis_benchmark_csv_and_the_per_event_rate() -> None:
    output = (
        '"test","rps","avg_latency_ms","p50_latency_ms","p99_latency_ms"\n'
        '"HGET k f","40000.00","0.100","0.090","0.300"\n'
    )
    assert parse_benchmark_csv(output) == {
        "rps": 40000.0, "avg_latency_ms": 0.1, "p50_latency_ms": 0.09, "p99_latency_ms": 0.3,
    }  # fmt: skip
    # A load at 60k/s and a commit at 20k/s, one of each per event, back to back: 15k events/s.
    rates = {"HMGET state": 60_000.0, "EVALSHA commit": 20_000.0}
    assert round(events_per_s_from_commands(rates)) == 15_000


def test_redis_benchmark_sends_the_two_commands_of_an_event() -> None:
    commands = benchmark_commands("0" * 40, 1300)
    assert list(commands) == ["HMGET state", "EVALSHA commit"]
    commit = commands["EVALSHA commit"]
    keys = Keyspace("jmnew:").customer("__rand_int__").all()
    assert commit[2 : 3 + len(keys)] == [str(len(keys)), *keys]
    assert len(commit[3 + len(keys) + 2]) == 1300  # expected version, new version, then the blob


def test_the_ceiling_writes_a_record_of_the_planned_size() -> None:
    plan = CeilingPlan()
    written = payload(plan)
    state, ring = decode_record(written.record)
    assert state == written.state and len(state) == plan.state_bytes
    assert len(ring.entries) == 16
    cut = written.decision[:FINGERPRINT_BYTES]
    assert [kept for _, kept in ring.entries] == [cut] * 8 + [written.decision] * 8
    assert abs(len(written.record) - plan.blob_bytes) < 0.05 * plan.blob_bytes
    assert commit_args(0, written.record, 60, new=7) == [0, 7, written.record, 60]


def test_redis_benchmark_reads_the_keys_the_population_writes() -> None:
    commands = benchmark_commands("0" * 40, CeilingPlan().blob_bytes)
    state_key = commands["HMGET state"][1]
    assert state_key == Keyspace().customer("__rand_int__").state
    # redis-benchmark spells __rand_int__ as twelve digits, as customer_id does.
    assert (
        state_key.replace("__rand_int__", customer_id(7))
        == Keyspace().customer("000000000007").state
    )
    assert len(event_id(12)) == 36


def test_shares_deal_each_customer_to_exactly_one_worker() -> None:
    customers = [customer_id(n) for n in range(10)]
    dealt = shares(customers, 4)
    assert len(dealt) == 4
    assert sorted(c for share in dealt for c in share) == customers


# --- overload -------------------------------------------------------------------------------------


def _result(calls: int, errors: dict[str, int], rate_target: float | None = 100.0) -> Result:
    return Result(
        target="t", mode="unary", concurrency=64, rate_target=rate_target, duration_s=2.0,
        calls=calls, rate=calls / 2.0, events=calls, events_per_s=calls / 2.0, degraded=0,
        latency_us={"p50": 900.0, "p99": 5000.0, "p90": 1.0,
        "p99.9": 1.0}, errors=errors, client_cpu_us_per_call=100.0, server_cpu_us_per_call=None,
        server_cpu_by_process_us_per_call={},
    )  # fmt: skip


def test_goodput_counts_only_ok_answers() -> None:
    assert goodput(_result(200, {"RESOURCE_EXHAUSTED": 50, "CANCELLED": 10})) == 70.0


def test_an_open_loop_run_separates_the_ways_calls_were_refused() -> None:
    errors = {"RESOURCE_EXHAUSTED": 5, "CANCELLED": 7, "CLIENT_OVERLOADED": 1, "UNAVAILABLE": 2}
    figures = summarise_run(_result(100, errors), 2.0, planned_s=2.0, loop_lag_ms=3.0)
    assert figures["resource_exhausted"] == 5
    assert figures["cancelled"] == 7
    assert figures["client_overloaded"] == 1
    assert figures["other_errors"] == {"UNAVAILABLE": 2}
    assert figures["ok"] == 85
    assert figures["goodput_per_s"] == 42.5
    assert figures["driver_kept_schedule"] is True
    assert (figures["ok_p50_us"], figures["ok_p99_us"]) == (900, 5000)


def test_rates_are_left_out_when_the_driver_lost_its_schedule() -> None:
    late = summarise_run(_result(100, {}), 8.0, planned_s=2.0, loop_lag_ms=900.0)
    assert late["driver_kept_schedule"] is False
    squeezed = summarise_run(_result(100, {}), 8.0, planned_s=5.0, loop_lag_ms=1.0)
    assert squeezed["driver_kept_schedule"] is False  # drive measured 2 s of a 5 s window
    assert squeezed["goodput_per_s"] is None and squeezed["client_cpu_us_per_call"] is None
