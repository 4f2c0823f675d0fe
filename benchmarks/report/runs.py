"""A benchmark session's runs as the sections read them: each run's figures (absent when it
failed or did not run) and the errors of those that failed, read with `Reader`, which gives None
where a run or, in a results.json of an older version, a key is missing.

Apart from `report.sections` so that a section may live in a module of its own
(`report.parts`) and still be listed among the others without an import circle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from benchmarks.report.run_figures import RedisPyRun, RunFigures
from benchmarks.report.targets import known

if TYPE_CHECKING:
    from benchmarks.load.drive import Result

F = TypeVar("F")
V = TypeVar("V")


class Reader(Generic[F]):
    """Typed reads from one run's figures, None where the run or a key is missing:
    `Reader(runs.figures.get("transport"))(lambda f: f["decide_unary"]["rate"])`."""

    def __init__(self, figures: F | None) -> None:
        self._figures = figures

    def __call__(self, pick: Callable[[F], V]) -> V | None:
        if self._figures is None:
            return None
        try:
            return pick(self._figures)
        except (KeyError, TypeError, IndexError):  # an older results.json, or a None on the way
            return None


@dataclass(frozen=True)
class Runs:
    """The figures of every run of one benchmark session, and the errors of those that failed."""

    figures: RunFigures
    errors: Mapping[str, str] = field(default_factory=dict)

    def missing(self, *runs: str) -> str:
        """Why a figure of these runs is absent: the first that failed or did not run."""
        for run in runs:
            if run in self.errors:
                return f"the `{run}` run failed (see its error)"
            if run not in self.figures:
                return f"the `{run}` run did not run"
        return "the run did not report it"

    def errors_of(self, *runs: str) -> list[str]:
        return [f"`{run}`: {self.errors[run]}" for run in runs if run in self.errors]


def per_event_cpu(result: Result | None, cpu_per_call: float | None) -> float | None:
    """A drive result's CPU µs per call, per event instead (a DecideBatch call has many)."""
    if result is None or cpu_per_call is None or not known(cpu_per_call) or not result["events"]:
        return None
    return cpu_per_call * result["calls"] / result["events"]


# The redis-py run of `benchmarks.redis.ceiling` that is Redis's ceiling for the service's work: a
# load and a commit per event, 64 events a pipeline, over the unix socket.
REDIS_PIPELINED = "unix pipelined N=64"


def redis_py_figure(runs: Runs, prefix: str, pick: Callable[[RedisPyRun], float]) -> float | None:
    """A figure of the first redis-py run of `benchmarks.redis.ceiling` named `prefix`…"""
    by_run = Reader(runs.figures.get("redis"))(lambda f: f["redis_py"]) or {}
    return Reader(next((v for k, v in by_run.items() if k.startswith(prefix)), None))(pick)
