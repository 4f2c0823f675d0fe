"""The locust load (`benchmarks/load/locustfile.py`), run headless as a subprocess and read back.

    python -m benchmarks.load.run_locust --quick                  # its own `journeyman serve`, 5 s
    python -m benchmarks.load.run_locust --target 127.0.0.1:50051 --users 50 --duration 20 --json

`measure()` runs `locust --headless` with `--csv`, bounded in time (killed by pid when it
overruns), and returns what its CSV files say: requests, failures, requests per second and the
latency percentiles of every request name, plus the stages the simulated customers reached.

All times are **µs**: the locustfile fires them in µs so that locust's histogram, which keeps
whole units below 100, does not round sub-millisecond calls to 0 or 1. Locust still keeps
percentiles to two significant figures (870 µs, 1,200 µs, 15,000 µs), so read them to that.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from benchmarks import ROOT
from benchmarks.load.service import BIN, journeyman
from benchmarks.report.run_figures import LocustFigures, LocustRequest

LOCUSTFILE = ROOT / "benchmarks" / "load" / "locustfile.py"
MAX_DURATION_S = 120.0
STARTUP_ALLOWANCE_S = 30.0  # locust's imports and its users' channels, before the clock runs
STOP_TIMEOUT_S = 2  # locust's --stop-timeout: calls in flight at the end may finish
TOTAL_ROW = "Aggregated"
PERCENTILES: tuple[Literal["p50_us", "p90_us", "p99_us", "p99_9_us"], ...] = (
    "p50_us", "p90_us", "p99_us", "p99_9_us",
)  # fmt: skip


def measure(
    target: str,
    users: int,
    spawn_rate: float,
    duration_s: float,
    *,
    think_ms: float = 0.0,
    user_classes: Sequence[str] = (),
    run_id: str = "",
    reset_stats: bool = True,
    customer_events: int = 0,
    customers_per_user: int = 0,
) -> LocustFigures:
    """Run the locust load against the JourneyService at `target` (``host:port``).

    `users` simulated users, started `spawn_rate` per second, for `duration_s` seconds (at most
    `MAX_DURATION_S`), each waiting about `think_ms` between calls. `user_classes` names the
    locustfile's classes to run (default: every one whose data is there). With `reset_stats`,
    the figures count from the moment every user has started. `customer_events` and
    `customers_per_user` are the locustfile's options of the same names (0: its defaults): with
    `customers_per_user`, the run ends when every shopper has made its customers, `duration_s`
    at the latest. Raises RuntimeError, with locust's output, when locust fails or overruns.
    """
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"duration_s is {duration_s}; give 0 < duration_s <= {MAX_DURATION_S:g}")
    if users < 1 or spawn_rate <= 0:
        raise ValueError(f"users={users}, spawn_rate={spawn_rate}; give users >= 1, spawn_rate > 0")
    run_id = run_id or f"{int(time.time() * 1000):x}"
    with tempfile.TemporaryDirectory(prefix="journeyman-locust-") as tmp:
        folder = Path(tmp)
        command = _command(target, users, spawn_rate, duration_s, think_ms, run_id, folder)
        if reset_stats:
            command.append("--reset-stats")
        command += ["--customer-events", str(customer_events)]
        command += ["--customers-per-user", str(customers_per_user)]
        command.extend(user_classes)
        budget_s = duration_s + users / spawn_rate + STARTUP_ALLOWANCE_S + STOP_TIMEOUT_S
        _run_bounded(command, folder / "locust.log", budget_s)
        figures = _read_stats(folder / "locust_stats.csv")
        summary = json.loads((folder / "journeys.json").read_text())
        failures = _read_rows(folder / "locust_failures.csv")
        exceptions = _read_rows(folder / "locust_exceptions.csv")
    total = figures.pop(TOTAL_ROW, _figures({}))
    return {
        "tool": "locust",
        "locust_version": importlib.metadata.version("locust"),
        "time_unit": "µs",
        "target": target,
        "users": users,
        "spawn_rate_per_s": spawn_rate,
        "duration_s": duration_s,
        "think_ms": think_ms,
        "run_id": summary["run_id"],
        **total,
        "by_request": figures,
        "failure_messages": [
            f"{row['Name']}: {row['Error']} (x{row['Occurrences']})" for row in failures
        ],
        "user_errors": [f"{row['Message']} (x{row['Count']})" for row in exceptions],
        "journeys": summary["by_user_class"],
        "skipped": summary["skipped"],
    }


def _command(
    target: str, users: int, spawn_rate: float, duration_s: float, think_ms: float,
    run_id: str, folder: Path,
) -> list[str]:  # fmt: skip
    return [
        str(BIN / "locust"), "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "--host", target, "--users", str(users), "--spawn-rate", f"{spawn_rate:g}",
        "--run-time", f"{max(1, math.ceil(duration_s))}s", "--stop-timeout", str(STOP_TIMEOUT_S),
        "--csv", str(folder / "locust"), "--exit-code-on-error", "0", "--loglevel", "WARNING",
        "--think-ms", f"{think_ms:g}", "--run-id", run_id,
        "--journey-summary", str(folder / "journeys.json"),
    ]  # fmt: skip


def _run_bounded(command: list[str], log: Path, budget_s: float) -> None:
    """Run locust with its output in `log`; kill it by pid when it is still running after
    `budget_s`."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
        try:
            returncode = process.wait(budget_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(
                f"locust still ran after {budget_s:.0f} s and was killed:\n{_tail(log)}"
            ) from None
    if returncode != 0:
        raise RuntimeError(f"locust exited {returncode}:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as rows:
        return list(csv.DictReader(rows))


def _read_stats(path: Path) -> dict[str, LocustRequest]:
    """Figures per request name (and the total, as "Aggregated") from locust's stats CSV."""
    if not path.exists():
        raise RuntimeError(f"locust wrote no stats file at {path}")
    return {row["Name"]: _figures(row) for row in _read_rows(path)}


def _figures(row: dict[str, str]) -> LocustRequest:
    """One stats row as figures with units. Response-time columns hold µs (see grpc_user)."""

    def number(column: str) -> float | None:
        text = row.get(column, "N/A")
        return None if text in ("", "N/A") else float(text)

    return {
        "requests": int(number("Request Count") or 0),
        "failures": int(number("Failure Count") or 0),
        "requests_per_s": number("Requests/s") or 0.0,
        "avg_us": number("Average Response Time"),
        "min_us": number("Min Response Time"),
        "max_us": number("Max Response Time"),
        "p50_us": number("50%"),
        "p90_us": number("90%"),
        "p99_us": number("99%"),
        "p99_9_us": number("99.9%"),
    }


# --- the command line ----------------------------------------------------------------------------


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load.run_locust",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--target", help="host:port of a running server; default: start one")
    parser.add_argument("--users", type=int, default=50, help="simulated users (default 50)")
    parser.add_argument("--spawn-rate", type=float, default=25.0, help="users started per s")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument(
        "--think-ms", type=float, default=0.0,
        help="ms between one user's calls, ±50 %% (default 0: push load)",
    )  # fmt: skip
    parser.add_argument(
        "--user-class", action="append", default=[], dest="user_classes",
        help="run only this locustfile class (repeatable)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="20 users for 5 s, to check it works")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.users, arguments.spawn_rate, arguments.duration = 20, 20.0, 5.0
    return arguments


def _run(arguments: argparse.Namespace, target: str) -> LocustFigures:
    return measure(
        target, arguments.users, arguments.spawn_rate, arguments.duration,
        think_ms=arguments.think_ms, user_classes=arguments.user_classes,
    )  # fmt: skip


def _format(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table(result: LocustFigures) -> str:
    """The figures as a small text table, then the stages the customers reached."""
    header = f"{'request (times in µs)':<28} {'requests':>9} {'fails':>6} {'req/s':>8}"
    header += "".join(f" {key.removesuffix('_us'):>8}" for key in PERCENTILES)
    lines = [
        f"locust, {result['users']} users, {result['duration_s']:g} s, "
        f"think {result['think_ms']:g} ms, against {result['target']}",
        header,
    ]
    rows = [*result["by_request"].items(), ("all", result)]
    for name, figures in rows:
        line = f"{name:<28} {figures['requests']:>9,} {figures['failures']:>6,} "
        line += f"{_format(figures['requests_per_s'], 1):>8}"
        line += "".join(f" {_format(figures[key]):>8}" for key in PERCENTILES)
        lines.append(line)
    for label, tally in result["journeys"].items():
        for journey, seen in tally["journeys"].items():
            stages = ", ".join(
                f"{s} {n}" for s, n in sorted(seen["customers_by_last_stage"].items())
            )
            lines.append(
                f"{label}: {seen['customers']} customers in {journey}, last stages: {stages}"
            )
    lines += [f"skipped {name}: {why}" for name, why in result["skipped"].items()]
    lines += [f"failure: {message}" for message in result["failure_messages"][:5]]
    lines += [f"user error: {message}" for message in result["user_errors"][:5]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _arguments(argv)
    if arguments.target:
        result = _run(arguments, arguments.target)
    else:
        with journeyman() as running:
            result = _run(arguments, running.address)
    print(json.dumps(result, indent=2, ensure_ascii=False) if arguments.json else table(result))
    return 0 if result["failures"] == 0 and not result["user_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
