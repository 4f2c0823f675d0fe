"""`journeyman replay`: recorded events through a rules change, in-process, no Redis.

The events are decided with `decide_many()` under the new rules and, with `--baseline`, under
the old ones; `engine.backtest` counts what each did and finds the customers they treat
differently; `server.tools.replay_report` prints it (table, `--json`, `--html`) and checks the
`--fail-if` guards. `--workers N` splits the customers over N processes by
`engine.backtest.partition_of` (the same function splits a log for Dask or Spark).
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from engine.backtest import (
    Divergence,
    Explanation,
    Summary,
    compare,
    explain,
    final_stages,
    partition_of,
    summarize,
)
from engine.compile import Ruleset
from engine.event import Event
from engine.many import ManyDecisions, decide_many, encode_events
from engine.rules.yaml_tree import read_yaml
from engine.view import customer_view
from server.tools.event_files import ColumnMap, read_events

EXAMPLES = 3  # explained customers per kind of difference


@dataclass
class Replayed:
    """One replay's results (or one partition's, before they are merged)."""

    new: Summary
    old: Summary | None
    divergences: list[Divergence] = field(default_factory=list)  # event: a global index
    final_stage: dict[str, dict[str, str]] = field(default_factory=dict)  # under the new rules

    def merge(self, other: Replayed) -> Replayed:
        old = self.old.merge(other.old) if self.old and other.old else self.old or other.old
        return Replayed(
            self.new.merge(other.new),
            old,
            sorted([*self.divergences, *other.divergences], key=lambda d: d.event),
            {**self.final_stage, **other.final_stage},
        )


def read_all(paths: Sequence[Path], columns: ColumnMap | None) -> list[tuple[Event, int]]:
    """Every event of every file, in file order (files one after another)."""
    return [item for path in paths for item in read_events(path, columns)]


def _decide(ruleset: Ruleset, events: Sequence[tuple[Event, int]]) -> ManyDecisions:
    batch = encode_events(ruleset, [e for e, _ in events], [t for _, t in events])
    return decide_many(ruleset, batch)


def replay_events(
    new: Ruleset,
    old: Ruleset | None,
    events: Sequence[tuple[Event, int]],
    indices: Sequence[int] | None = None,
) -> Replayed:
    """Decide `events` under `new` (and `old`), summarize and compare; `indices` are the
    events' places in the whole log when these are one partition of it."""
    new_many = _decide(new, events)
    old_many = _decide(old, events) if old is not None else None
    divergences = compare(old_many, new_many) if old_many is not None else []
    if indices is not None:
        divergences = [
            Divergence(d.customer_id, indices[d.event], d.final_stage_differs, d.offers_differ)
            for d in divergences
        ]
    return Replayed(
        summarize(new_many),
        summarize(old_many) if old_many is not None else None,
        divergences,
        final_stages(new_many),
    )


# The log and rules a forked worker reads (set before the pool forks, never pickled).
_SHARED: dict[str, Any] = {}


def _replay_partition(partition: int) -> Replayed:
    indices = _SHARED["partitions"][partition]
    events = _SHARED["events"]
    return replay_events(_SHARED["new"], _SHARED["old"], [events[i] for i in indices], indices)


def replay(
    new: Ruleset,
    old: Ruleset | None,
    events: Sequence[tuple[Event, int]],
    workers: int = 1,
) -> Replayed:
    """The replay of `events`, on `workers` processes (customers split by `partition_of`)."""
    if workers <= 1:
        return replay_events(new, old, events)
    partitions: list[list[int]] = [[] for _ in range(workers)]
    for index, (event, _) in enumerate(events):
        partitions[partition_of(event.customer_id, workers)].append(index)
    for ruleset in (new, old) if old is not None else (new,):
        _decide(ruleset, events[:1])  # the kernels loaded once here, inherited by every fork
    _SHARED.update(new=new, old=old, events=events, partitions=partitions)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            results = list(pool.map(_replay_partition, range(workers)))
    finally:
        _SHARED.clear()
    merged = results[0]
    for result in results[1:]:
        merged = merged.merge(result)
    return merged


def action_lines(ruleset: Ruleset) -> dict[tuple[str, str], int]:
    """Where each action of `ruleset` is written: (journey, action) -> line of its `- id:`."""
    found: dict[tuple[str, str], int] = {}
    for journey in ruleset.journeys:
        try:
            text = Path(journey.source).read_text(encoding="utf-8")
        except OSError:
            continue  # a ruleset not read from a file: explanations go without action lines
        tree = read_yaml(text, journey.source)
        for index, action in enumerate(journey.action_ids):
            found[(journey.name, action)] = tree.position(("actions", index))[0]
    return found


def explanations(
    new: Ruleset,
    old: Ruleset,
    events: Sequence[tuple[Event, int]],
    divergences: Sequence[Divergence],
    per_kind: int = EXAMPLES,
) -> dict[str, list[Explanation]]:
    """A few examples of each kind of difference (`stage`: the final stage differs; `offers`:
    not, but the offered actions do; `path`: neither, the stage differs along the way), each
    explained at the first event where they diverge."""
    picked: dict[str, list[Divergence]] = {"stage": [], "offers": [], "path": []}
    for divergence in divergences:
        kind = "stage" if divergence.final_stage_differs else "offers"
        if not (divergence.offers_differ or divergence.final_stage_differs):
            kind = "path"
        if len(picked[kind]) < per_kind:
            picked[kind].append(divergence)
    wanted = {d.customer_id for chosen in picked.values() for d in chosen}
    history: dict[str, list[int]] = {c: [] for c in wanted}
    for index, (event, _) in enumerate(events):
        if event.customer_id in history:
            history[event.customer_id].append(index)
    result: dict[str, list[Explanation]] = {}
    lines = (action_lines(old), action_lines(new))
    for kind, chosen in picked.items():
        result[kind] = []
        for divergence in chosen:
            own = history[divergence.customer_id]
            upto = own[: own.index(divergence.event) + 1]
            result[kind].append(explain(old, new, [events[i] for i in upto], lines))
    return result


def write_customers(out: IO[str], ruleset: Ruleset, events: Sequence[tuple[Event, int]]) -> int:
    """Each customer's final stage and counters under `ruleset` (read as of their last event),
    one JSON object per line; returns how many customers."""
    many = _decide(ruleset, events)
    states = many.states()
    last_ms: dict[str, int] = {}
    for event, at_ms in events:
        last_ms[event.customer_id] = max(at_ms, last_ms.get(event.customer_id, at_ms))
    for customer, state in states.items():
        view = customer_view(ruleset, state, last_ms[customer])
        journeys = {
            j.journey: {"stage": j.stage, "counters": dict(j.counters)} for j in view.journeys
        }
        out.write(json.dumps({"customer_id": customer, "journeys": journeys}) + "\n")
    return len(states)


def progress(message: str) -> None:
    """A line on stderr when it is a terminal (the report itself goes to stdout)."""
    if sys.stderr.isatty():
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr)
