"""What the journey map's statistics cost (issue 13), on the real BPIC 2012 loan log.

- **CPU per event, in-process**: `decide()` over the log's events with and without what it now
  adds for statistics (time entered, previous event, friction signals fired), interleaved runs,
  median µs per event of each; and `journey_moves.decision_increments` alone (what the server
  adds up per event before its 50 ms flush).
- **Redis**: a `journeyman serve` (its own embedded Redis) takes the log over DecideStreams; then
  the commands its Redis ran for the statistics (HINCRBY and EXPIRE, from `INFO commandstats`) per
  event, and `MEMORY USAGE` of the statistics keys by kind, per day and in all.

    python -m benchmarks.journey_stats_cost [--cases N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any
from unittest import mock

import redis

from benchmarks.load.replay import as_request, by_case, first_cases, stream_cases
from benchmarks.load.service import RULES_DIR, journeyman
from engine.compile import compile_ruleset
from engine.decide import decide
from engine.rules.load import parse_journeys
from engine.state import new_state
from server.decisions.journey_moves import decision_increments
from server.store.keys import Keyspace, utc_day
from server.tools.event_logs import LoanEvent, loan_event, read_bpic2012

RULES = RULES_DIR / "loan_application.yaml"
# The module, not the function `engine` exports under the same name.
DECIDE_MODULE = importlib.import_module("engine.decide")
ROUNDS = 6


def _replay_us(rows: Sequence[LoanEvent], *, with_extras: bool) -> float:
    """µs per event of decide() over `rows`, one state per case."""
    ruleset = compile_ruleset(parse_journeys([(str(RULES), RULES.read_text(encoding="utf-8"))]))
    states: dict[str, Any] = {}
    events = [loan_event(n, row) for n, row in enumerate(rows)]
    without = mock.patch.object(DECIDE_MODULE, "_fired_signals", lambda *_: ())
    with contextlib.nullcontext() if with_extras else without:
        start = time.perf_counter()
        for row, event in zip(rows, events, strict=True):
            state = states.get(row.case_id) or new_state(ruleset)
            _, states[row.case_id] = decide(ruleset, state, event, row.timestamp_ms)
        return (time.perf_counter() - start) * 1e6 / len(rows)


def _increments_us(rows: Sequence[LoanEvent]) -> float:
    ruleset = compile_ruleset(parse_journeys([(str(RULES), RULES.read_text(encoding="utf-8"))]))
    states: dict[str, Any] = {}
    decided = []
    for number, row in enumerate(rows):
        is_new = row.case_id not in states
        state = states.get(row.case_id) or new_state(ruleset)
        event = loan_event(number, row)
        decision, states[row.case_id] = decide(ruleset, state, event, row.timestamp_ms)
        decided.append((decision.journeys, row.timestamp_ms, is_new))
    keys, counted = Keyspace(), Counter[tuple[str, str]]()
    start = time.perf_counter()
    for outcomes, at_ms, is_new in decided:
        decision_increments(
            keys, outcomes, utc_day(at_ms), at_ms, "web", is_new=is_new, into=counted
        )
    return (time.perf_counter() - start) * 1e6 / len(decided)


def engine_figures(rows: Sequence[LoanEvent]) -> dict[str, float]:
    with_us: list[float] = []
    without_us: list[float] = []
    for round_number in range(ROUNDS):  # alternate which goes first, so drift weighs on both
        for with_extras in (True, False) if round_number % 2 else (False, True):
            gc.collect()
            (with_us if with_extras else without_us).append(
                _replay_us(rows, with_extras=with_extras)
            )
    return {
        "decide_us_with_statistics": statistics.median(with_us),
        "decide_us_without_signals_fired": statistics.median(without_us),
        "increments_us": _increments_us(rows),
    }


def redis_figures(rows: Sequence[LoanEvent]) -> dict[str, Any]:
    cases = by_case(rows)
    with journeyman(RULES) as running:
        client = redis.Redis.from_url(running.embedded_redis_url())
        client.config_resetstat()
        asyncio.run(
            stream_cases(running.address, list(cases.values()), as_request, streams=16, window=4)
        )
        time.sleep(1.0)  # the last flush
        calls = client.info("commandstats")
        stats_commands = sum(
            calls.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("hincrby", "expire")
        )
        bytes_by_kind: Counter[str] = Counter()
        keys_by_kind: Counter[str] = Counter()
        for key in client.scan_iter(match="jm:stats:*", count=1000):
            kind = key.decode().split(":")[2]
            bytes_by_kind[kind] += client.memory_usage(key) or 0
            keys_by_kind[kind] += 1
        client.close()
    return {
        "events": len(rows),
        "stats_commands_per_event": stats_commands / len(rows),
        "bytes_by_kind": dict(bytes_by_kind),
        "keys_by_kind": dict(keys_by_kind),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=None, help="the first N cases (default all)")
    parser.add_argument("--engine-cases", type=int, default=2_000, help="cases timed in-process")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    every = list(read_bpic2012())
    figures = {
        "engine": engine_figures(first_cases(every, args.engine_cases)),
        "redis": redis_figures(first_cases(every, args.cases)),
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
