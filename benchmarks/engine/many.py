"""`decide_many()` against one `decide()` per event, on one core.

Two workloads: the simulated retail shoppers of `benchmarks.traffic` through `rules/retail.yaml`,
and the whole BPI Challenge 2012 log (262,200 events, 13,087 applications) through
`rules/loan_application.yaml`. For each: events per second of `decide_many()` on events already
in columns (`encode_events` done), of `encode_events` + `decide_many()` from `Event` objects, and
of the loop of `decide()`; the BPIC log also from its file (read, parse, encode, decide), as
`journeyman replay` does it. Wall time, the collector paused, median of the repeats, each from
fresh states after one untimed warm-up run.

    .venv/bin/python -m benchmarks.engine.many [--shoppers N] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.engine.timing import gc_paused
from benchmarks.engine.workload import load_workload
from engine.compile import Ruleset, compile_ruleset
from engine.decide import decide
from engine.event import Event
from engine.many import decide_many, encode_events
from engine.rules.load import parse_journeys
from engine.state import CustomerState, new_state
from server.tools.event_logs import bpic2012_csv, loan_event, read_bpic2012

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ManyFigures:
    """Events per second, one core."""

    retail_events: int
    retail_many_per_s: float  # decide_many() on encoded events
    retail_encode_and_many_per_s: float  # encode_events + decide_many() from Event objects
    retail_decide_per_s: float  # one decide() per event
    bpic_events: int | None = None
    bpic_many_s: float | None = None  # decide_many() on the encoded log
    bpic_encode_and_many_s: float | None = None
    bpic_from_file_s: float | None = None  # read + parse + encode + decide_many()
    bpic_decide_s: float | None = None  # one decide() per event


def best_of(run: Callable[[], Any], repeats: int) -> float:
    """Median seconds of `run()` over `repeats` runs after one untimed warm-up run."""
    run()
    samples = []
    for _ in range(repeats):
        with gc_paused():
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def loop_of_decide(
    ruleset: Ruleset,
    events: Sequence[Event],
    times_ms: Sequence[int],
    states: dict[str, CustomerState],
) -> None:
    initial = new_state(ruleset)
    for event, now_ms in zip(events, times_ms, strict=True):
        customer = event.customer_id
        _, states[customer] = decide(ruleset, states.get(customer) or initial, event, now_ms)


def measure_retail(shoppers: int, per_shopper: int, repeats: int) -> dict[str, float]:
    path = ROOT / "rules" / "retail.yaml"
    workload = load_workload(str(path), path.read_text(encoding="utf-8"), shoppers, per_shopper)
    ruleset = workload.ruleset
    events = [timed.event for timed in workload.events]
    times = [timed.now_ms for timed in workload.events]
    states = workload.fresh_states()
    batch = encode_events(ruleset, events, times)
    n = len(events)
    many_s = best_of(lambda: decide_many(ruleset, batch, states=states), repeats)
    both_s = best_of(lambda: decide_many(ruleset, events, times, states), repeats)
    loop_s = best_of(lambda: loop_of_decide(ruleset, events, times, dict(states)), repeats)
    return {
        "retail_events": n,
        "retail_many_per_s": n / many_s,
        "retail_encode_and_many_per_s": n / both_s,
        "retail_decide_per_s": n / loop_s,
    }


def bpic_events() -> tuple[list[Event], list[int]]:
    events, times = [], []
    for row_number, row in enumerate(read_bpic2012()):
        events.append(loan_event(row_number, row))
        times.append(row.timestamp_ms)
    return events, times


def measure_bpic(repeats: int) -> dict[str, float]:
    path = ROOT / "rules" / "loan_application.yaml"
    ruleset = compile_ruleset(parse_journeys([(str(path), path.read_text(encoding="utf-8"))]))
    events, times = bpic_events()
    batch = encode_events(ruleset, events, times)

    def from_file() -> None:
        read, read_times = bpic_events()
        decide_many(ruleset, read, read_times)

    return {
        "bpic_events": len(events),
        "bpic_many_s": best_of(lambda: decide_many(ruleset, batch), repeats),
        "bpic_encode_and_many_s": best_of(lambda: decide_many(ruleset, events, times), repeats),
        "bpic_from_file_s": best_of(from_file, max(1, repeats // 2)),
        "bpic_decide_s": best_of(lambda: loop_of_decide(ruleset, events, times, {}), 1),
    }


def measure(shoppers: int = 2000, per_shopper: int = 50, repeats: int = 3) -> ManyFigures:
    figures: dict[str, Any] = measure_retail(shoppers, per_shopper, repeats)
    if bpic2012_csv().is_file():
        figures |= measure_bpic(repeats)
    return ManyFigures(**figures)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shoppers", type=int, default=2000)
    parser.add_argument("--per-shopper", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(asdict(measure(args.shoppers, args.per_shopper, args.repeats)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
