"""zen-engine's `async_evaluate`, timed in a child process of its own.

zen-engine 2.1.3 sometimes crashes the interpreter with a segmentation fault as it exits after
`async_evaluate` has been used (seen about one run in three, the tokio runtime behind it being torn
down with the interpreter), so `benchmarks.engine.peer_zen` runs this measurement here, where
such a crash cannot take the caller with it:

    python -m benchmarks.engine.zen.async_probe GRAPH.json INPUTS.json --in-flight 64 --repeats 3

It prints one JSON line, `{"wall_us": …, "cpu_us": …}`: the median µs per evaluation over
`repeats` passes over the inputs (after one warm-up pass), `in_flight` evaluations awaited
together at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import zen

_KEY = "journey"


async def _evaluate_all(engine: Any, inputs: list[dict[str, Any]], in_flight: int) -> None:
    for start in range(0, len(inputs), in_flight):
        window = inputs[start : start + in_flight]
        await asyncio.gather(*(engine.async_evaluate(_KEY, context) for context in window))


def probe(
    graph: dict[str, Any], inputs: list[dict[str, Any]], in_flight: int, repeats: int
) -> dict[str, float]:
    """Median wall and CPU µs per evaluation of `inputs` through `graph`, `in_flight` at a time."""
    engine = zen.ZenEngine({"loader": {"type": "static", "content": {_KEY: graph}}})
    asyncio.run(_evaluate_all(engine, inputs, in_flight))
    wall_us, cpu_us = [], []
    for _ in range(repeats):
        start_ns, cpu_start_ns = time.perf_counter_ns(), time.process_time_ns()
        asyncio.run(_evaluate_all(engine, inputs, in_flight))
        wall_us.append((time.perf_counter_ns() - start_ns) / 1_000 / len(inputs))
        cpu_us.append((time.process_time_ns() - cpu_start_ns) / 1_000 / len(inputs))
    return {"wall_us": statistics.median(wall_us), "cpu_us": statistics.median(cpu_us)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine.zen.async_probe")
    parser.add_argument("graph", type=Path, help="the JDM graph, a JSON file")
    parser.add_argument("inputs", type=Path, help="a JSON list of the graph's inputs")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    graph = json.loads(args.graph.read_text())
    inputs = json.loads(args.inputs.read_text())
    print(json.dumps(probe(graph, inputs, args.in_flight, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
