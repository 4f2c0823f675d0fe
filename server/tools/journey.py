"""`journeyman stats` and `journeyman map`: a journey's figures from a running server, as a
table or JSON, and the journey map written to an HTML file (from the rules alone, or with the
figures of a running server baked in). A server is reached as `journeyman status` reaches it
(TLS, tokens: `server.tools.status.Access`); GetJourneyStats needs the `read` scope.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc

from engine.compile import Ruleset
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.analytics.action_report import report_journey
from server.analytics.journey_map import map_page, stats_json
from server.analytics.journey_report import designed_journey
from server.tools.status import Access, StatusError, call_failed


def fetch_stats(
    address: str, access: Access, request: pb.GetJourneyStatsRequest, timeout_s: float
) -> pb.GetJourneyStatsResponse:
    """The journey's figures from the server at `address`; StatusError saying what to do."""
    with access.channel(address) as channel:
        try:
            stats: pb.GetJourneyStatsResponse = pb_grpc.JourneyServiceStub(channel).GetJourneyStats(
                request, timeout=timeout_s, metadata=access.metadata
            )
        except grpc.RpcError as error:
            raise call_failed(error, address, access, "GetJourneyStats") from error
    return stats


def stats_text_json(stats: pb.GetJourneyStatsResponse) -> str:
    return json.dumps(stats_json(stats), indent=2)


def _duration(seconds: float) -> str:
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _stage_row(stage: pb.StageStats) -> tuple[str, ...]:
    time = "-"
    if stage.HasField("time_in_stage_median_s"):
        median, p90 = stage.time_in_stage_median_s, stage.time_in_stage_p90_s
        time = f"{_duration(median)} / {_duration(p90)}"
    top = max(stage.friction_levels, key=lambda c: c.events, default=None)
    friction = f"{top.level} ({top.events})" if top is not None and top.events else "-"
    actions = ", ".join(f"{a.action} {a.offered}/{a.held_out}" for a in stage.actions[:2])
    return (
        stage.stage, str(stage.customers), str(stage.stalled), str(stage.entries),
        str(stage.exits), time, friction, actions or "-",
    )  # fmt: skip


def _edge_row(edge: pb.TransitionStats) -> tuple[str, ...]:
    share = f"{edge.share:.1%}" if edge.HasField("share") else "-"
    taken = str(edge.customers) if edge.customers else "never taken"
    busiest = max(edge.per_day, key=lambda d: d.customers, default=None)
    peak = f"{busiest.customers} on {busiest.day}" if busiest and busiest.customers else "-"
    return (edge.transition, f"{edge.from_stage} -> {edge.to_stage}", taken, share, peak)


def stats_table(stats: pb.GetJourneyStatsResponse) -> list[str]:
    """The figures as aligned lines for a terminal."""
    stall = _duration(stats.stall_after_ms / 1000)
    lines = [
        f"journey {stats.journey}, {stats.since} to {stats.until} (UTC days); "
        f"stalled: no event for {stall}",
        "",
    ]
    lines += _table([
        ("stage", "now", "stalled", "entered", "left", "time in stage (median / p90)",
         "most events at", "actions offered/held out"),
        *(_stage_row(stage) for stage in stats.stages),
    ])  # fmt: skip
    lines.append("")
    lines += _table([
        ("transition", "from -> to", "customers", "share", "busiest day"),
        *(_edge_row(edge) for edge in stats.transitions),
    ])  # fmt: skip
    return lines


def write_map(
    output: Path, ruleset: Ruleset, journey: str, stats: pb.GetJourneyStatsResponse | None
) -> str:
    """Write the map of `journey` (the first of `ruleset` when empty): the figures of `stats`
    when given, else the designed journey alone. Returns the journey's name."""
    if stats is None:
        chosen = report_journey(ruleset, journey)
        data, note = designed_journey(chosen, ruleset.version), "Written by journeyman map."
    else:
        data = stats
        note = f"Figures baked in by journeyman map, as of the server's {stats.ruleset_version}."
    output.write_text(map_page(data=stats_json(data), note=note), encoding="utf-8")
    return data.journey


def checked_output(output: str) -> Path:
    path = Path(output)
    if path.is_dir():
        raise StatusError(f"{output} is a folder; name the file to write, e.g. {output}/map.html")
    return path
