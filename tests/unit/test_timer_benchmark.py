"""The timer benchmark (`benchmarks.timers_cost`, issue 15), small: what its figures must satisfy
whatever the machine, never how fast it went.

The whole `--quick` run goes once for the module (a redis-server of its own, two journeyman
servers): every due timer fired once and nothing else, bytes per timer within reason, the hot
path's turns as planned, section 12 of RESULTS.md drawn from it. The parts that need no server
(the shoppers' due times, the order of turns, the merge into results.json) are tested alone.
"""

from __future__ import annotations

import pytest

from benchmarks.redis import timers
from benchmarks.report.markdown import section_markdown
from benchmarks.report.run_figures import TimerFigures
from benchmarks.report.sections import Runs, timers_section
from benchmarks.timers_cost import QUICK, VARIANTS, _orders, measure
from engine.codec import decode_state
from engine.timers import next_due_ms
from engine.view import customer_view

HOUR_MS = 3_600_000
AT_MS = 1_795_000_000_000


@pytest.fixture(scope="module")
def figures() -> TimerFigures:
    return measure(quick=True)


# --- no server -----------------------------------------------------------------------------------


def test_each_shoppers_timer_falls_due_when_the_benchmark_says() -> None:
    ruleset = timers.retail_rules()
    found = timers.shoppers(ruleset, 50, 10, AT_MS, templates=8, due_templates=3)
    assert len(found.ids) == len(set(found.ids)) == 50
    for number, (blob, due_ms) in enumerate(zip(found.blobs, found.due_ms, strict=True)):
        state = decode_state(blob, ruleset)
        assert next_due_ms(ruleset, state) == due_ms
        assert (due_ms <= AT_MS) == (number < found.due)  # the first ten are due, no other
        (journey,) = customer_view(ruleset, state, AT_MS).journeys
        assert journey.stage == "consideration"
    assert min(found.due_ms[found.due :]) >= AT_MS + HOUR_MS


def test_every_variant_runs_as_often_early_as_late() -> None:
    order = list(_orders(2))
    assert order == ["off", "idle", "busy", "busy", "idle", "off"]
    assert sorted(order) == sorted(VARIANTS * 2)


# --- the quick run -------------------------------------------------------------------------------


@pytest.mark.service
def test_every_due_timer_fires_once_and_no_other(figures: TimerFigures) -> None:
    plan = QUICK.redis
    rate, alone = figures["rate"], figures["rate_alone"]
    assert (rate["pending"], alone["pending"]) == (plan.customers, plan.due)
    for run in (rate, alone):
        assert run["fired"] == run["due"] == plan.due
        assert run["pending_after"] == run["pending"] - plan.due
        assert run["conflicts"] == 0
        assert all(run["checks"].values()), run["checks"]
        assert run["fired_per_s"] > 0 and run["loop_cpu_us_per_timer"] > 0


@pytest.mark.service
def test_a_pending_timer_costs_more_than_its_member_and_less_than_its_state(
    figures: TimerFigures,
) -> None:
    memory = figures["memory"]
    assert memory["customers"] == QUICK.redis.customers
    assert memory["index_encodings"] == {"skiplist": memory["shards"]}  # as at a million
    for per_timer in (memory["index_bytes_per_timer"], memory["index_memory_usage_per_timer"]):
        # The member's own bytes and a score, a skiplist node and a dict entry; far below 1 KiB.
        assert memory["member_chars"] + 8 < per_timer < 1024
    assert memory["index_bytes_per_timer"] < memory["state_bytes_per_customer"]
    assert memory["state_blob_bytes_mean"] < memory["state_memory_usage_mean"]


@pytest.mark.service
def test_only_the_busy_turns_fire_and_each_turn_answered_calls(figures: TimerFigures) -> None:
    turns = figures["load"]
    assert [turn["variant"] for turn in turns] == list(_orders(QUICK.rounds))
    for turn in turns:
        assert turn["decide"]["calls"] > 0 and turn["lockstep"]["calls"] > 0
        if turn["variant"] == "busy":
            assert 0 < turn["fired"] <= turn["scheduled"]
            assert turn["lateness_s_mean"] is not None and turn["lateness_s_mean"] >= 0
        else:
            assert turn["fired"] == turn["scheduled"] == 0


@pytest.mark.service
def test_section_12_shows_every_figure_beside_its_ceiling(figures: TimerFigures) -> None:
    section = timers_section(Runs({"timers": figures}))
    assert section.errors == []
    for figure in section.figures:
        assert figure.measured is not None, figure.name
        if figure.ceiling is not None:
            assert figure.ratio is not None and figure.ratio > 0, figure.name
    judged = {f.name: f.verdict for f in section.figures if f.target is not None}
    assert judged["timers fired in the idle and off turns"] == "met"
    assert next(v for n, v in judged.items() if n.startswith("checks failed")) == "met"
    assert "## 12. Timers" in section_markdown(12, section)
