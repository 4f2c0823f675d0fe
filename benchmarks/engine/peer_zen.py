"""decide() beside zen-engine, the decision engine a user would pick instead, on the same rules.

`python -m benchmarks.engine.peer_zen` (`--quick` for a short run) replays the simulated
shoppers' events of `rules/retail.yaml` (`benchmarks.traffic`) through `decide()` and through the
same journey written as a zen-engine decision graph (JDM, built from the loaded rules by
`benchmarks.engine.zen.jdm`; `benchmarks/engine/zen/retail.json` is that graph), one event at a
time as a service would call either, each customer's state kept between their events.

**What zen-engine evaluates.** The per-event rules: which counters and friction signals this
event feeds, the friction level, the transition table (stage and condition → next stage, first
hit, in file order) and the action table (stage, segment, condition, not blocked → eligible
action and its score, collect).

**What is fed to it, and why.** zen-engine keeps nothing between calls, so what depends on a
customer's past is kept by a Python harness (`benchmarks.engine.zen.harness`) and handed to the
graph as input on every call: the current `stage`; `idle_ms` and `in_stage_ms` from the customer's
clock; `counters_before`, each windowed counter's total before this event (its time buckets
live in the harness, with the engine's bucket widths); `friction_decayed`, the friction signals'
scores decayed to now (half-life decay is arithmetic on a stored time); `blocked`, per action,
whether a cooldown or cap stops it now (it needs the times it was offered). The graph answers
what this event adds to each counter (`counted`), which signals it is (`fired`), the transition
and the eligible actions with scores; the harness writes those back, ranks (score, then file
order), keeps the top `top_k`, applies the holdout draws and remembers the offers, by the
engine's rules. decide() does all of this itself, in its kernels, on its own state arrays; the
harness is what a zen-engine user would have to write, so its time counts on zen's side
(`zen_evaluate_us_per_event` shows zen's call alone). The stream has no repeated event ids, so
the harness does not deduplicate.

**Checked to agree.** A first, untimed replay runs both side by side and counts the events where
they give the same stage, the same eligible set (decide's: every action not excluded by stage,
segment, condition, cooldown or cap, from `explain=True`) and the same offered and held-out
actions. Any disagreement is reported with its event, never dropped. Decimal arithmetic in zen
(it adds amounts and friction weights as decimals, the engine as binary floats) could tip a
comparison that lands exactly on a threshold; no such case has been seen on this traffic.

**Timings.** µs per event, median of `repeats` replays from fresh states after a warm-up replay,
the collector paused: wall time, and the process's CPU time (all its threads). zen-engine is
called as `ZenEngine.evaluate(key, input)` with the graph in a static loader, its fastest
per-event call here; `create_decision(graph).evaluate(input)`, the first example of its README,
is timed too: it is several times slower, and its wall time runs well above its CPU time, as if
each call waited for another thread (so on a busy machine it suffers most). On the inputs the first
replay recorded, these are timed too: zen's call alone, `evaluate_batch` (every event in one
call, on zen's own threads; a service could not batch one customer's consecutive events, since
each needs the state the previous one left) and `async_evaluate` (64 in flight, in a child
process: see `benchmarks.engine.zen.async_probe`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from benchmarks import ROOT
from benchmarks.engine.tables import text_table
from benchmarks.engine.timing import samples_us
from benchmarks.engine.workload import Workload, load_workload
from benchmarks.engine.zen.harness import GRAPH_KEY, ZenJourney, ZenOutcome
from benchmarks.engine.zen.jdm import RETAIL_RULES
from benchmarks.report.machine import load_average
from benchmarks.report.run_figures import ZenFigures
from engine.decide import decide
from engine.state import new_state

if TYPE_CHECKING:
    from benchmarks.traffic import TimedEvent
    from engine.compile import Ruleset
    from engine.decision import Decision
    from engine.event import PropertyValue
    from engine.state import CustomerState

TARGET_RATIO = 50.0  # decide() at least this many times faster than zen-engine
EVENTS_PER_SHOPPER = 20
ASYNC_IN_FLIGHT = 64
_EXCLUDED = {"stage", "segment", "condition", "cooldown", "cap"}  # not "rank", not "holdout"
_SHOWN_DISAGREEMENTS = 5
_PROBE_TIMEOUT_S = 120


@dataclass(frozen=True)  # no slots: the defaults are read from the class, as `Plan.events`
class Plan:
    events: int = 1_000
    repeats: int = 3


QUICK = Plan(events=300, repeats=2)


@dataclass(slots=True)
class Agreement:
    """How often decide() and the zen-engine twin gave the same answer, event by event."""

    events: int = 0
    same_stage: int = 0
    same_eligible: int = 0
    same_offers: int = 0  # offered and held-out actions, in rank order
    disagreements: list[str] = field(default_factory=list)  # the first few, described
    transitions: set[str] = field(default_factory=set)  # every transition that fired
    offered: set[str] = field(default_factory=set)  # every action offered at least once
    contexts: list[dict[str, Any]] = field(default_factory=list)  # zen's inputs, in event order

    @property
    def complete(self) -> bool:
        return self.events == self.same_stage == self.same_eligible == self.same_offers


def eligible_actions(ruleset: Ruleset, decision: Decision) -> frozenset[str]:
    """The actions decide() found eligible (before ranking and holdout): every action of the
    journey that `explain=True` does not list as excluded by stage, segment, condition,
    cooldown or cap."""
    excluded = {e.action for e in decision.excluded if e.reason in _EXCLUDED}
    return frozenset(a for a in ruleset.journeys[0].action_ids if a not in excluded)


def _describe(
    timed: TimedEvent, decision: Decision, eligible: frozenset[str], zen: ZenOutcome
) -> str:
    event = timed.event
    return (
        f"{event.event_id} ({event.type} at {timed.now_ms}): decide() stage {decision.stage}, "
        f"eligible {sorted(eligible)}, offered {list(decision.action_ids)}, held out "
        f"{list(decision.held_out)}; zen stage {zen.stage}, eligible {sorted(zen.eligible)}, "
        f"offered {list(zen.offered)}, held out {list(zen.held_out)}"
    )


def compare(
    ruleset: Ruleset,
    twin: ZenJourney,
    events: list[TimedEvent],
    traits: Mapping[str, Mapping[str, PropertyValue]],
) -> Agreement:
    """Replay `events` through decide() and the zen twin side by side, from new customers
    with `traits`, and count where they agree; zen's inputs are recorded for replays."""
    states: dict[str, CustomerState] = {}
    memories = {customer: twin.new_memory() for customer in traits}
    agreement = Agreement()
    for timed in events:
        event, customer = timed.event, timed.event.customer_id
        state = states.get(customer) or _new_state(ruleset, traits[customer])
        decision, states[customer] = decide(ruleset, state, event, timed.now_ms, explain=True)
        eligible = eligible_actions(ruleset, decision)
        context, clock_ms = twin.prepare(memories[customer], event, traits[customer], timed.now_ms)
        agreement.contexts.append(context)
        zen = twin.apply(memories[customer], customer, clock_ms, twin.evaluate(context))
        same = (
            decision.stage == zen.stage,
            eligible == zen.eligible,
            (decision.action_ids, decision.held_out) == (zen.offered, zen.held_out),
        )
        agreement.events += 1
        agreement.same_stage += same[0]
        agreement.same_eligible += same[1]
        agreement.same_offers += same[2]
        if not all(same) and len(agreement.disagreements) < _SHOWN_DISAGREEMENTS:
            agreement.disagreements.append(_describe(timed, decision, eligible, zen))
        if decision.outcome.transition is not None:
            agreement.transitions.add(decision.outcome.transition)
        agreement.offered.update(decision.action_ids)
    return agreement


def _new_state(ruleset: Ruleset, traits: Mapping[str, PropertyValue]) -> CustomerState:
    return new_state(ruleset).with_traits(traits)


def _wall_and_cpu_us(
    run: Callable[[Any], int], setup: Callable[[], Any], repeats: int
) -> tuple[float, float]:
    """Median wall and CPU (every thread of the process) µs per call of `samples_us` replays."""
    cpu_us: list[float] = []

    def counted(prepared: Any) -> int:
        start_ns = time.process_time_ns()
        calls = run(prepared)
        cpu_us.append((time.process_time_ns() - start_ns) / 1_000 / calls)
        return calls

    wall_us = samples_us(counted, setup, repeats)
    return statistics.median(wall_us), statistics.median(cpu_us[1:])  # [0]: the warm-up


def _decide_us(workload: Workload, repeats: int) -> tuple[float, float]:
    return _wall_and_cpu_us(
        lambda states: workload.replay(decide, states), workload.fresh_states, repeats
    )


def _zen_us(workload: Workload, twin: ZenJourney, repeats: int) -> tuple[float, float]:
    traits = workload.traits

    def run(memories: dict[str, Any]) -> int:
        for timed in workload.events:
            customer = timed.event.customer_id
            twin.step(memories[customer], timed.event, traits[customer], timed.now_ms)
        return len(workload.events)

    return _wall_and_cpu_us(run, lambda: {c: twin.new_memory() for c in traits}, repeats)


def _zen_evaluate_us(
    twin: ZenJourney, contexts: list[dict[str, Any]], repeats: int
) -> tuple[float, float]:
    """zen's call alone, as the harness makes it: `ZenEngine.evaluate(key, input)`."""

    def run(recorded: list[dict[str, Any]]) -> int:
        for context in recorded:
            twin.evaluate(context)
        return len(recorded)

    return _wall_and_cpu_us(run, lambda: contexts, repeats)


def _zen_decision_us(
    twin: ZenJourney, contexts: list[dict[str, Any]], repeats: int
) -> tuple[float, float]:
    """The README's first example instead: `create_decision(graph).evaluate(input)`."""
    decision = twin.engine.create_decision(json.dumps(twin.graph))

    def run(recorded: list[dict[str, Any]]) -> int:
        for context in recorded:
            decision.evaluate(context)
        return len(recorded)

    return _wall_and_cpu_us(run, lambda: contexts, repeats)


def _zen_batch_us(
    twin: ZenJourney, contexts: list[dict[str, Any]], repeats: int
) -> tuple[float, float]:
    """`evaluate_batch`: every input in one call, spread over zen's own threads."""
    requests: list[Any] = [{"key": GRAPH_KEY, "context": context} for context in contexts]

    def run(batch: list[Any]) -> int:
        answers = twin.engine.evaluate_batch(batch)
        failed = [answer.get("error") for answer in answers if not answer.get("success")]
        if failed:
            raise RuntimeError(f"zen-engine evaluate_batch failed {len(failed)}: {failed[0]}")
        return len(batch)

    return _wall_and_cpu_us(run, lambda: requests, repeats)


def _zen_async_us(
    twin: ZenJourney, contexts: list[dict[str, Any]], repeats: int
) -> tuple[float | None, float | None, str]:
    """`async_evaluate`, `ASYNC_IN_FLIGHT` at a time, timed in a child process (see
    `benchmarks.engine.zen.async_probe` for why); also a note on how the child ended."""
    with tempfile.TemporaryDirectory(prefix="peer_zen_") as folder:
        graph, inputs = Path(folder, "graph.json"), Path(folder, "inputs.json")
        graph.write_text(json.dumps(twin.graph))
        inputs.write_text(json.dumps(contexts))
        command = [
            sys.executable, "-m", "benchmarks.engine.zen.async_probe", str(graph), str(inputs),
            "--in-flight", str(ASYNC_IN_FLIGHT), "--repeats", str(repeats),
        ]  # fmt: skip
        child = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S
        )
    lines = child.stdout.strip().splitlines()
    if not lines:
        return (
            None,
            None,
            f"the async probe failed (exit {child.returncode}): {child.stderr[-300:]}",
        )
    figures = json.loads(lines[-1])
    note = "" if child.returncode == 0 else f"the probe then exited with {child.returncode}"
    return figures["wall_us"], figures["cpu_us"], note


def retail_workload(events: int) -> Workload:
    """The retail journey and about `events` events of simulated shoppers."""
    shoppers = max(1, round(events / EVENTS_PER_SHOPPER))
    text = RETAIL_RULES.read_text(encoding="utf-8")
    return load_workload(str(RETAIL_RULES), text, shoppers, EVENTS_PER_SHOPPER)


def measure(events: int = Plan.events, repeats: int = Plan.repeats) -> ZenFigures:
    """decide() and zen-engine on about `events` retail events: agreement, µs per event, ratio."""
    workload = retail_workload(events)
    (journey,) = workload.loaded
    twin = ZenJourney(journey.model, workload.ruleset.top_k)
    agreement = compare(workload.ruleset, twin, workload.events, workload.traits)
    contexts = agreement.contexts
    decide_wall, decide_cpu = _decide_us(workload, repeats)
    zen_wall, zen_cpu = _zen_us(workload, twin, repeats)
    evaluate_wall, evaluate_cpu = _zen_evaluate_us(twin, contexts, repeats)
    decision_wall, decision_cpu = _zen_decision_us(twin, contexts, repeats)
    batch_wall, batch_cpu = _zen_batch_us(twin, contexts, repeats)
    async_wall, async_cpu, async_note = _zen_async_us(twin, contexts, repeats)
    return {
        "rules": "rules/retail.yaml",
        "zen_engine_version": importlib.metadata.version("zen-engine"),
        "events": agreement.events,
        "shoppers": len(workload.traits),
        "repeats": repeats,
        "load_average": load_average(),
        "agree_stage_events": agreement.same_stage,
        "agree_eligible_events": agreement.same_eligible,
        "agree_offers_events": agreement.same_offers,
        "disagreements": agreement.disagreements,
        "transitions_fired": sorted(agreement.transitions),
        "actions_offered": sorted(agreement.offered),
        "decide_us_per_event": decide_wall,
        "decide_cpu_us_per_event": decide_cpu,
        "zen_us_per_event": zen_wall,
        "zen_cpu_us_per_event": zen_cpu,
        "zen_evaluate_us_per_event": evaluate_wall,
        "zen_evaluate_cpu_us_per_event": evaluate_cpu,
        "zen_create_decision_us_per_event": decision_wall,
        "zen_create_decision_cpu_us_per_event": decision_cpu,
        "zen_batch_us_per_event": batch_wall,
        "zen_batch_cpu_us_per_event": batch_cpu,
        "zen_async_us_per_event": async_wall,
        "zen_async_cpu_us_per_event": async_cpu,
        "zen_async_note": async_note,
        "zen_to_decide_ratio": zen_wall / decide_wall,
        "zen_to_decide_cpu_ratio": zen_cpu / decide_cpu,
        "target_ratio": TARGET_RATIO,
    }


_LABELS = (
    ("decide()", "decide"),
    ("zen-engine, per event as a service calls it: harness + evaluate", "zen"),
    ("  of which ZenEngine.evaluate(key, input) alone", "zen_evaluate"),
    ("ZenDecision.evaluate(input) instead (create_decision)", "zen_create_decision"),
    ("ZenEngine.evaluate_batch, every event in one call", "zen_batch"),
    (f"ZenEngine.async_evaluate, {ASYNC_IN_FLIGHT} in flight", "zen_async"),
)


def _cell(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _rows(figures: ZenFigures) -> list[list[str]]:
    decide_wall, decide_cpu = figures["decide_us_per_event"], figures["decide_cpu_us_per_event"]
    rows = [["per event", "wall µs", "CPU µs", "wall × decide()", "CPU × decide()"]]
    times = cast(Mapping[str, float | None], figures)  # the `*_us_per_event` figures, by name
    for label, key in _LABELS:
        wall, cpu = times[f"{key}_us_per_event"], times[f"{key}_cpu_us_per_event"]
        rows.append(
            [
                label,
                _cell(wall),
                _cell(cpu),
                _cell(None if wall is None else wall / decide_wall),
                _cell(None if cpu is None else cpu / decide_cpu),
            ]
        )
    return rows


def _print(figures: ZenFigures) -> None:
    events = figures["events"]
    print(
        f"retail rules, {events:,} events of {figures['shoppers']} shoppers, zen-engine "
        f"{figures['zen_engine_version']}, median of {figures['repeats']} replays; "
        f"load average {figures['load_average']}"
    )
    print(
        f"agreement: stage {figures['agree_stage_events']}/{events}, eligible actions "
        f"{figures['agree_eligible_events']}/{events}, offered and held out "
        f"{figures['agree_offers_events']}/{events}"
    )
    for disagreement in figures["disagreements"]:
        print(f"  DISAGREE {disagreement}")
    print(f"transitions fired: {', '.join(figures['transitions_fired']) or 'none'}")
    print(text_table(_rows(figures)))
    print("zen's calls alone, batch and async are timed on the inputs the first replay recorded.")
    if figures["zen_async_note"]:
        print(f"async: {figures['zen_async_note']}")
    ratio = figures["zen_to_decide_ratio"]
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(
        f"zen µs / decide µs = {ratio:,.1f} (CPU: {figures['zen_to_decide_cpu_ratio']:,.1f}); "
        f"target ≥ {TARGET_RATIO:g}: {verdict}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.engine.peer_zen", description=__doc__
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run to check it works")
    parser.add_argument(
        "--events", type=int, help=f"about this many events (default {Plan.events})"
    )
    parser.add_argument("--repeats", type=int, help=f"timed replays (default {Plan.repeats})")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    _print(measure(args.events or plan.events, args.repeats or plan.repeats))


if __name__ == "__main__":
    main()
