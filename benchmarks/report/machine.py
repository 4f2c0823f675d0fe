"""What the figures were measured on: the machine, its load, the commit."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numba
import numpy as np

from benchmarks.report.other_work import BUSY, OTHER_WORK, MachineCpu, others_share


def machine(repo: Path) -> dict[str, str]:
    """What the figures were measured on, and the commit `repo` was at."""
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    usable = len(os.sched_getaffinity(0))
    return {
        "CPU": names[0] if names else cpu,
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "Python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "load average (1, 5, 15 min) at the start": load_average(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(repo),
    }


def load_average(*, judged: bool = True) -> str:
    """The load averages, with a warning when other work shared the cores the run used.
    `judged` false: only shown; read at the end of a run, they hold the run's own load, which
    `others_share` tells apart."""
    averages = os.getloadavg()
    shown = ", ".join(f"{value:.2f}" for value in averages)
    usable = len(os.sched_getaffinity(0))
    if judged and averages[0] > usable / 2:
        return f"{shown}: {BUSY}"
    return shown


def at_the_end(started: MachineCpu) -> dict[str, str]:
    """The header's lines read when runs end: the load average (shown, not judged: it holds the
    runs' own load) and what other work took of the machine since `started`."""
    return {
        "load average (1, 5, 15 min) at the end": load_average(judged=False),
        OTHER_WORK: others_share(started, MachineCpu.now()),
    }


def _commit(repo: Path) -> str:
    try:
        head = _git(repo, "rev-parse", "--short", "HEAD")
        dirty = _git(repo, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (with uncommitted changes)" if dirty else head


def _git(repo: Path, *arguments: str) -> str:
    run = subprocess.run(["git", *arguments], cwd=repo, capture_output=True, text=True, check=True)
    return run.stdout.strip()
