"""The `journeyman` console command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import RulesError
from engine.rules.diff import diff_rulesets
from engine.rules.load import parse_journeys
from engine.scenarios import ScenarioResult, parse_scenarios, run_scenario
from server.core.config import ConfigError, Settings
from server.tools.export import add_events_command
from server.tools.replay_command import add_replay_command

if TYPE_CHECKING:  # status pulls in grpc: imported where a client command runs, not at start
    from server.tools.status import Access
from server.rules.rulesource import (
    RulesNotFound,
    load_ruleset,
    read_texts,
    rule_files,
    scenario_files,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
DEFAULT_RULES = "rules"


def _check(paths: list[str], *, strict: bool = False) -> int:
    """Validate journey files; print every problem with file:line:column, then the warnings
    (exit 1 for warnings too with `strict`)."""
    try:
        loaded = parse_journeys(read_texts(rule_files(paths)))
    except RulesNotFound as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    except RulesError as error:
        print(error, file=sys.stderr)
        count = len(error.problems)
        print(f"\n{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return EXIT_FAILED
    for journey in loaded:
        model = journey.model
        warned = f", {len(journey.warnings)} warning{'s' if len(journey.warnings) != 1 else ''}"
        print(
            f"ok  {journey.source}: journey {model.journey} {model.version}: "
            f"{len(model.stages)} stages, {len(model.transitions)} transitions, "
            f"{len(model.actions)} actions" + (warned if journey.warnings else "")
        )
        for warning in journey.warnings:
            print(f"    {warning}".replace("\n", "\n    "))
    warned_any = any(journey.warnings for journey in loaded)
    return EXIT_FAILED if strict and warned_any else EXIT_OK


def _print_result(result: ScenarioResult) -> None:
    mark = "PASS" if result.passed else "FAIL"
    print(f"  {mark}  {result.name} ({result.steps_run} steps)")
    for failure in result.failures:
        print(f"        {failure}")


def _invalid_rules_exit(command: Callable[[], int]) -> int:
    """Run `command`; files that are missing or invalid print their problems and exit 2."""
    try:
        return command()
    except RulesNotFound as error:
        print(f"error: {error}", file=sys.stderr)
    except RulesError as error:
        print(error, file=sys.stderr)
    return EXIT_INVALID


def _test(paths: list[str]) -> int:
    """Run scenario files; print pass/fail per scenario and expected-vs-got per failure."""
    results: list[ScenarioResult] = []
    for path in scenario_files(paths):
        loaded = parse_scenarios(path.read_text(encoding="utf-8"), str(path))
        ruleset = load_ruleset([str(path.parent / rules) for rules in loaded.spec.rules])
        print(path)
        for index in range(len(loaded.spec.scenarios)):
            result = run_scenario(loaded, index, ruleset)
            _print_result(result)
            results.append(result)
    failed = sum(not r.passed for r in results)
    print(f"\n{len(results)} scenarios: {len(results) - failed} passed, {failed} failed")
    return EXIT_FAILED if failed else EXIT_OK


def _diff(old_paths: list[str], new_paths: list[str]) -> int:
    """Print what NEW adds, removes or alters compared with OLD; exit 1 when they differ."""
    old = [j.model for j in parse_journeys(read_texts(rule_files(old_paths)))]
    new = [j.model for j in parse_journeys(read_texts(rule_files(new_paths)))]
    diffs = diff_rulesets(old, new)
    for diff in diffs:
        print("\n".join(diff.lines()))
    changed = any(d.changes or d.old_version is None or d.new_version is None for d in diffs)
    return EXIT_FAILED if changed else EXIT_OK


def _status(args: argparse.Namespace) -> int:
    """Print health, the ruleset in force and key counters; exit 0 only when SERVING, 2 when
    the server cannot be asked (the message says what to pass instead)."""
    from server.tools.status import StatusError, status_lines

    try:
        serving, lines = status_lines(args.address, args.metrics_url, args.timeout, _access(args))
    except StatusError as error:
        print(f"journeyman: {error}", file=sys.stderr)
        return EXIT_INVALID
    print("\n".join(lines))
    return EXIT_OK if serving else EXIT_FAILED


def _access(args: argparse.Namespace) -> Access:
    """How a client command reaches the server, from its connection flags (`_client_flags`)."""
    from server.tools.status import Access, read_token

    token, token_source = read_token(_path(args.token_file))
    return Access(
        tls=args.tls, tls_ca=_path(args.tls_ca), tls_cert=_path(args.tls_cert),
        tls_key=_path(args.tls_key), tls_server_name=args.tls_server_name,
        token=token, token_source=token_source,
    )  # fmt: skip


def _report(args: argparse.Namespace) -> int:
    """Print the action report; exit 2 when the server cannot be asked."""
    from journeyman.v1 import journeyman_pb2 as pb
    from server.tools.report import fetch_report, report_json, report_table
    from server.tools.status import StatusError

    request = pb.GetActionReportRequest(journey=args.journey, since=args.since, until=args.until)
    try:
        report = fetch_report(args.address, _access(args), request, args.timeout)
    except StatusError as error:
        print(f"journeyman: {error}", file=sys.stderr)
        return EXIT_INVALID
    print(report_json(report) if args.json else "\n".join(report_table(report)))
    return EXIT_OK


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _serve(args: argparse.Namespace) -> int:
    """Start the service; configuration errors and a taken port are one clear line, exit 2."""
    try:
        settings = Settings.from_env().with_overrides(
            workers=args.workers, host=args.host, port=args.port, http_port=args.http_port,
            redis_url=args.redis_url, rules=tuple(args.rules) if args.rules else None,
            data_dir=Path(args.data_dir) if args.data_dir else None, log_level=args.log_level,
            log_format=args.log_format, event_loop=args.event_loop, tls_cert=_path(args.tls_cert),
            tls_key=_path(args.tls_key), tls_client_ca=_path(args.tls_client_ca),
            auth_tokens_file=_path(args.auth_tokens_file),
        )  # fmt: skip
    except ConfigError as error:
        print(f"journeyman: {error}", file=sys.stderr)
        return EXIT_INVALID
    settings.prepare_worker_metrics()  # before anything imports prometheus_client
    from server.api.auth import TokensInvalid
    from server.runtime.app import PortInUse
    from server.runtime.embedded_redis import EmbeddedRedisError
    from server.runtime.serve import run
    from server.store.errors import StoreRefused

    try:
        run(settings)
    except (
        RulesNotFound, PortInUse, EmbeddedRedisError, TokensInvalid, StoreRefused, OSError,
    ) as error:  # fmt: skip
        print(f"journeyman: {error}", file=sys.stderr)
        return EXIT_INVALID
    except RulesError as error:
        print(error, file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK


def _client_flags(command: argparse.ArgumentParser) -> None:
    """How a client command reaches a server: address, TLS, token, timeout."""
    command.add_argument("--address", default="localhost:50051", help="host:port of the server")
    command.add_argument("--tls-ca", metavar="PEM", help="speak TLS; trust this CA's certificates")
    command.add_argument(
        "--tls", action="store_true", help="speak TLS; trust public CAs (no --tls-ca needed)"
    )
    command.add_argument("--tls-cert", metavar="PEM", help="client certificate, for mTLS")
    command.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    command.add_argument(
        "--tls-server-name", metavar="NAME",
        help="the name to expect in the server's certificate (default: the --address host)",
    )  # fmt: skip
    command.add_argument(
        "--token-file", metavar="FILE",
        help="file holding a bearer token (default: JOURNEYMAN_STATUS_TOKEN, if set)",
    )  # fmt: skip
    command.add_argument(
        "--timeout", type=float, default=2.0, metavar="SECONDS", help="per call (default 2)"
    )


def _stats(args: argparse.Namespace) -> int:
    """Print a journey's figures; exit 2 when the server cannot be asked."""
    from journeyman.v1 import journeyman_pb2 as pb
    from server.tools.journey import fetch_stats, stats_table, stats_text_json
    from server.tools.status import StatusError

    request = pb.GetJourneyStatsRequest(journey=args.journey, since=args.since, until=args.until)
    try:
        stats = fetch_stats(args.address, _access(args), request, args.timeout)
    except StatusError as error:
        print(f"journeyman: {error}", file=sys.stderr)
        return EXIT_INVALID
    print(stats_text_json(stats) if args.json else "\n".join(stats_table(stats)))
    return EXIT_OK


def _map(args: argparse.Namespace) -> int:
    """Write the journey map: the designed journey, or with a server's figures (`--from`)."""
    from journeyman.v1 import journeyman_pb2 as pb
    from server.protocol.errors import EventInvalid
    from server.tools.journey import checked_output, fetch_stats, write_map
    from server.tools.status import StatusError

    try:
        output = checked_output(args.output)
        ruleset = load_ruleset(args.paths)
        stats = None
        if args.source is not None:
            request = pb.GetJourneyStatsRequest(
                journey=args.journey or ruleset.journeys[0].name, since=args.since,
                until=args.until,
            )  # fmt: skip
            stats = fetch_stats(args.source, _access(args), request, args.timeout)
        name = write_map(output, ruleset, args.journey, stats)
    except EventInvalid as error:
        problems = "; ".join(f"{v.field}: {v.description}" for v in error.violations)
        print(f"journeyman: {problems}", file=sys.stderr)
        return EXIT_INVALID
    except (StatusError, OSError) as error:
        print(f"journeyman: {error}", file=sys.stderr)
        return EXIT_INVALID
    print(f"wrote the map of journey {name} to {output}")
    return EXIT_OK


def _journey_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument("--journey", default="", help="journey name (default: the first loaded)")
    command.add_argument("--since", default="", metavar="YYYY-MM-DD", help="first UTC day")
    command.add_argument(
        "--until", default="", metavar="YYYY-MM-DD", help="last UTC day (default today)"
    )


def _add_journey_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = commands.add_parser(
        "stats",
        help="a journey's figures: customers per stage, transitions, time in stage, stalls",
        description="A journey's figures from a running server: customers and stalled customers "
        "per stage now; over the days, entries, exits, time in stage, friction and actions per "
        "stage, and each transition's customers and share of its from-stage. Needs the `read` "
        "scope when tokens are on.",
    )
    _journey_flags(stats)
    stats.add_argument("--json", action="store_true", help="print every figure as JSON")
    _client_flags(stats)
    journey_map = commands.add_parser(
        "map",
        help="write the journey map (HTML) of the rules, or of a running server",
        description="Write the journey map of a journey file to one HTML file that opens "
        "anywhere (nothing is loaded from the internet): the designed journey, or with --from "
        "the figures of a running server baked in (connection flags as for `status`).",
    )
    journey_map.add_argument("paths", nargs="+", metavar="PATH", help="journey file or folder")
    journey_map.add_argument("-o", "--output", default="map.html", help="file to write")
    journey_map.add_argument(
        "--from", dest="source", metavar="HOST:PORT", help="bake in this server's figures"
    )
    _journey_flags(journey_map)
    _client_flags(journey_map)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="journeyman", description="Real-time customer-journey decisions from YAML rules."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    rules = commands.add_parser("rules", help="check and test journey rules files")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_commands.add_parser(
        "check", help="validate journey files (file:line:column errors)"
    )
    check.add_argument("paths", nargs="*", default=[DEFAULT_RULES], metavar="PATH")
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too (for CI)")
    test = rules_commands.add_parser("test", help="run scenario tests (a folder runs its tests/)")
    test.add_argument("paths", nargs="*", default=[DEFAULT_RULES], metavar="PATH")
    diff = rules_commands.add_parser(
        "diff", help="what a change adds, removes or alters (exit 1 when anything differs)"
    )
    diff.add_argument("old", metavar="OLD", help="journey file or folder before the change")
    diff.add_argument("new", metavar="NEW", help="journey file or folder after the change")
    status = commands.add_parser(
        "status",
        help="health, ruleset and counters of a server",
        description="Health, the ruleset in force and key counters of a running server; exit 0 "
        "only when SERVING. TLS when --tls-ca, --tls or --tls-cert is given; the token (needs "
        "the `read` scope) from --token-file, else JOURNEYMAN_STATUS_TOKEN.",
    )
    _client_flags(status)
    status.add_argument(
        "--metrics-url", default="http://localhost:9100/metrics", help="its Prometheus page"
    )
    report = commands.add_parser(
        "report",
        help="actions against their holdout, per goal",
        description="The action report of a running server: per action and goal, customers "
        "offered the action against those held out, conversions, uplift with its 95 % interval "
        "and a verdict. Needs the `read` scope when tokens are on.",
    )
    report.add_argument("--journey", default="", help="journey name (default: the first loaded)")
    report.add_argument("--since", default="", metavar="YYYY-MM-DD", help="first UTC day")
    report.add_argument(
        "--until", default="", metavar="YYYY-MM-DD", help="last UTC day (default today)"
    )
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    _client_flags(report)
    _add_journey_commands(commands)
    add_replay_command(commands)
    add_events_command(commands)
    serve = commands.add_parser(
        "serve",
        help="run the gRPC service",
        description="Run the gRPC service. Flags override JOURNEYMAN_* environment variables.",
    )
    serve.add_argument("--host", help="interface to listen on (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port to listen on (default 50051)")
    serve.add_argument(
        "--http-port", "--metrics-port", dest="http_port", type=int,
        help="HTTP port: Prometheus /metrics and the journey map /map (default 9100; 0: off)",
    )  # fmt: skip
    serve.add_argument("--workers", type=int, help="server processes sharing the port (default 1)")
    serve.add_argument("--redis-url", help="a Redis to use (default: an embedded one)")
    serve.add_argument(
        "--rules", action="append", metavar="PATH",
        help="journey file or folder; repeat for several (default rules/retail.yaml)",
    )  # fmt: skip
    serve.add_argument("--data-dir", help="where the embedded Redis keeps its data")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    serve.add_argument("--tls-cert", help="PEM certificate: serve TLS")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.add_argument("--tls-client-ca", help="PEM CA: require client certificates (mTLS)")
    serve.add_argument(
        "--auth-tokens-file", help="bearer tokens, one `<token> [scope ...]` per line"
    )
    serve.add_argument("--log-format", choices=("text", "json"), help="log lines (default text)")
    serve.add_argument(
        "--event-loop", choices=("auto", "uvloop", "asyncio"),
        help="auto (default): uvloop when installed, else asyncio",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # The reader left (`journeyman rules diff ... | head`): nothing to say, and nothing
        # more to print; point stdout at /dev/null so that Python's own flush at exit is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    handler = getattr(args, "handler", None)
    if handler is not None:  # commands that bring their own (replay, events export)
        return int(handler(args))
    if args.command == "rules" and args.rules_command == "check":
        return _check(args.paths, strict=args.strict)
    if args.command == "rules" and args.rules_command == "test":
        return _invalid_rules_exit(lambda: _test(args.paths))
    if args.command == "rules" and args.rules_command == "diff":
        return _invalid_rules_exit(lambda: _diff([args.old], [args.new]))
    if args.command == "status":
        return _status(args)
    if args.command == "report":
        return _report(args)
    if args.command == "stats":
        return _stats(args)
    if args.command == "map":
        return _invalid_rules_exit(lambda: _map(args))
    if args.command == "serve":
        return _serve(args)
    return EXIT_INVALID  # argparse already refused anything else


if __name__ == "__main__":
    sys.exit(main())
