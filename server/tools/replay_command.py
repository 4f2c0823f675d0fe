"""The command line of `journeyman replay` (the work is in `server.tools.replay`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import JourneymanError

if TYPE_CHECKING:  # the engine and numba load when a replay runs, not at every command's start
    from engine.compile import Ruleset

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def add_replay_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "replay",
        help="replay recorded events through new rules (and a baseline): what would change",
        description="Decide recorded events in-process (no Redis, no server) under --rules and, "
        "with --baseline, under the rules in force; report final stages, transitions, actions "
        "offered and held out, friction and goal conversions side by side, and explain a few "
        "customers who would be treated differently. JSON Lines (the format of `journeyman "
        "events export`), CSV and XES logs (with --map), optionally gzipped.",
    )
    command.add_argument("--rules", nargs="+", required=True, metavar="PATH", help="new rules")
    command.add_argument("--baseline", nargs="+", metavar="PATH", help="the rules to compare with")
    command.add_argument("--events", nargs="+", required=True, metavar="FILE", help="event files")
    command.add_argument(
        "--map", dest="columns", metavar="FIELD=COLUMN,...",
        help="CSV/XES columns: type=activity,customer=case_id,time=timestamp[,name=column...]",
    )  # fmt: skip
    command.add_argument("--json", action="store_true", help="print every figure as JSON")
    command.add_argument("--html", metavar="FILE", help="also write the report as an HTML page")
    command.add_argument(
        "--fail-if", action="append", default=[], metavar="GUARD",
        help="exit 1 when e.g. 'stage:approved changes by more than 2%%' (repeatable)",
    )  # fmt: skip
    command.add_argument("--workers", type=int, default=1, help="processes (customers split)")
    command.add_argument("--examples", type=int, default=3, help="explained customers per kind")
    command.add_argument(
        "--customers-out", metavar="FILE",
        help="write each customer's final stage and counters under --rules (JSON Lines)",
    )  # fmt: skip
    command.set_defaults(handler=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    from server.rules.rulesource import load_ruleset
    from server.tools.event_files import ColumnMap
    from server.tools.replay import explanations, progress, read_all, replay
    from server.tools.replay_report import Guard, GuardError, check_guards, report_data

    try:
        guards = [Guard.parse(text) for text in args.fail_if]
        if guards and not args.baseline:
            raise GuardError("--fail-if compares with the baseline: add --baseline OLD")
        columns = ColumnMap.parse(args.columns) if args.columns else None
        new = load_ruleset(args.rules)
        old = load_ruleset(args.baseline) if args.baseline else None
        progress(f"reading {', '.join(args.events)}")
        events = read_all([Path(p) for p in args.events], columns)
    except (JourneymanError, GuardError, OSError) as error:
        print(f"journeyman replay: {error}", file=sys.stderr)
        return EXIT_INVALID
    progress(f"deciding {len(events):,} events")
    start = time.perf_counter()
    replayed = replay(new, old, events, max(1, args.workers))
    seconds = time.perf_counter() - start
    explained = explanations(new, old, events, replayed.divergences, args.examples) if old else {}
    meta = {
        "rules_version": new.version,
        "baseline_version": old.version if old else None,
        "seconds": seconds,
        "workers": args.workers,
    }
    data = report_data(replayed, explained, meta, check_guards(guards, replayed))
    if args.customers_out:
        from server.tools.replay import write_customers

        with open(args.customers_out, "w", encoding="utf-8") as out:
            write_customers(out, new, events)
    _output(args, data, new, old)
    return EXIT_FAILED if any(g["tripped"] for g in data["guards"]) else EXIT_OK


def _output(
    args: argparse.Namespace, data: dict[str, Any], new: Ruleset, old: Ruleset | None
) -> None:
    from server.tools.replay_report import table_lines

    if args.html:
        _write_html(Path(args.html), data, new, old)
    if args.json:
        print(json.dumps(_finite(data), indent=2))
    else:
        print("\n".join(table_lines(data)))


def _finite(value: Any) -> Any:
    """`data` with infinite changes (from a count the baseline has at 0) as the string "inf":
    JSON has no infinity."""
    if isinstance(value, float) and value == float("inf"):
        return "inf"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _write_html(path: Path, data: dict[str, Any], new: Ruleset, old: Ruleset | None) -> None:
    """The page, and beside it the designed map of each journey of each version."""
    from server.analytics.journey_map import map_page, stats_json
    from server.analytics.journey_report import designed_journey
    from server.tools.replay_report import html_page

    maps: dict[str, str] = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    versions = [("new", new)] + ([("baseline", old)] if old is not None else [])
    for label, ruleset in versions:
        for journey in ruleset.journeys:
            name = f"{path.stem}.{label}.{journey.name}.map.html"
            page = map_page(
                data=stats_json(designed_journey(journey, ruleset.version)),
                note=f"The {label} rules' designed journey, written by journeyman replay.",
            )
            (path.parent / name).write_text(page, encoding="utf-8")
            maps[f"{label} map: {journey.name}"] = name
    path.write_text(html_page(data, maps), encoding="utf-8")
