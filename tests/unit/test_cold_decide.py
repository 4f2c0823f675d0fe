"""decide() cold (`benchmarks.engine.cold`): only the step is timed, never the work between
events, and every shopper's state runs on from their last event as in a warm replay."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.engine import cold
from benchmarks.engine.figures import cold_figure
from benchmarks.engine.workload import load_workload
from engine.state import CustomerState
from tests.rulesets import RULES_DIR

RETAIL = RULES_DIR / "retail.yaml"


def test_only_the_step_is_timed_and_states_run_on() -> None:
    workload = load_workload(str(RETAIL), RETAIL.read_text(encoding="utf-8"), 5, 4)
    calls: list[tuple[str, Any, Any]] = []  # (customer, state in, state out)

    def step(ruleset: Any, state: Any, event: Any, now_ms: int) -> tuple[None, Any]:
        started = time.thread_time_ns()
        while time.thread_time_ns() - started < 200_000:  # 200 µs of this thread's CPU
            pass
        after = (event.event_id, state)
        calls.append((event.customer_id, state, after))
        return None, after

    samples = cold.cold_per_event_us(workload, step, repeats=2, events=6)
    # One warm replay of every event, then two cold ones of the first 6.
    assert len(calls) == len(workload.events) + 2 * 6
    assert len(samples) == 2
    # 200 µs each, where the work between events takes milliseconds of CPU (its 16 MB sweep).
    assert all(200 <= us < 1_000 for us in samples)
    # In a replay, each shopper's event gets the state their last one left, the first a fresh one.
    left: dict[str, Any] = {}
    for customer, state_in, state_out in calls[-6:]:
        if customer in left:
            assert state_in is left[customer]
        else:
            assert isinstance(state_in, CustomerState)  # fresh, not another replay's
        left[customer] = state_out


def test_the_cold_figure_is_the_median_of_its_repeats_against_the_warm_figure() -> None:
    figure = cold_figure([250.0, 210.0, 400.0], warm_us=35.0)
    assert figure.value == 250.0  # the median: one busy repeat does not move it
    assert figure.note == "7.1× decide() warm (35.0 µs); repeats 210.0–400.0 µs"


def test_a_preparation_given_runs_before_each_event_in_place_of_the_default() -> None:
    workload = load_workload(str(RETAIL), RETAIL.read_text(encoding="utf-8"), 3, 2)
    prepared: list[int] = []

    def step(ruleset: Any, state: Any, event: Any, now_ms: int) -> tuple[None, Any]:
        return None, state

    samples = cold.cold_per_event_us(
        workload, step, repeats=2, events=4, before=lambda: prepared.append(1)
    )
    assert len(samples) == 2
    assert len(prepared) == 2 * 4  # once before each timed event, never in the warm replay


def test_the_pause_alone_idles_the_thread_and_the_spun_pause_keeps_it_running() -> None:
    for pause, busy in ((cold.pause_alone, False), (cold.pause_spun, True)):
        wall, cpu = time.perf_counter(), time.thread_time()
        pause()
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        assert wall >= cold.PAUSE_S
        if busy:
            assert cpu >= cold.PAUSE_S * 0.5  # this thread's CPU: it ran all along
        else:
            assert cpu < cold.PAUSE_S * 0.5  # asleep, not running
