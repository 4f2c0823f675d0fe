"""Start-up: how long a fresh interpreter takes to its first `decide()`, cold and warm."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs in a fresh interpreter: how long imports, rules loading and the first decide() take.
_STARTUP_PROBE = """
import json, sys, time
started = time.perf_counter()
from engine.compile import compile_ruleset
from engine.decide import decide
from engine.event import Event
from engine.rules.load import parse_journeys
from engine.state import new_state
imported = time.perf_counter()
path = sys.argv[1]
with open(path, encoding="utf-8") as file:
    ruleset = compile_ruleset(parse_journeys([(path, file.read())]))
loaded = time.perf_counter()
event = Event("e1", "c1", "page_view", "web", "home", {"load_ms": 900.0})
decide(ruleset, new_state(ruleset), event, 1_767_225_600_000)
decided = time.perf_counter()
print(json.dumps({"import_s": imported - started, "load_s": loaded - imported,
                  "first_decide_s": decided - loaded}))
"""


def _probe_startup(repo: Path, rules: Path, cache_dir: str) -> dict[str, float]:
    """One fresh interpreter in `repo`, its numba disk cache in `cache_dir`, deciding one event on
    `rules`: the probe's figures plus `process_s`, the whole process from launch to exit."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    started = time.perf_counter()
    command = [sys.executable, "-c", _STARTUP_PROBE, str(rules)]
    try:
        completed = subprocess.run(
            command, cwd=repo, env=env, capture_output=True, text=True, check=True, timeout=120
        )
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"the start-up probe failed:\n{error.stderr}") from error
    figures: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures | {"process_s": time.perf_counter() - started}


def measure_startup(
    repo: Path, rules: Path, warm_starts: int
) -> tuple[dict[str, float], dict[str, float]]:
    """(cold, warm): the first start compiles every kernel into an empty cache directory; the
    next starts load them from it (median of `warm_starts`)."""
    with tempfile.TemporaryDirectory(prefix="journeyman-numba-") as cache_dir:
        cold = _probe_startup(repo, rules, cache_dir)
        warm_runs = [_probe_startup(repo, rules, cache_dir) for _ in range(warm_starts)]
    warm = {key: statistics.median(run[key] for run in warm_runs) for key in cold}
    return cold, warm
