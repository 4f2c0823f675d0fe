"""`journeyman report`: the action report of a running server, as a table or as JSON.

Per action and goal: customers offered the action (treated) and held out of it (control), their
conversions and rates, the uplift with its interval, and the verdict. It reaches the server as
`journeyman status` does (TLS, tokens: `server.tools.status.Access`); GetActionReport needs the
`read` scope.
"""

from __future__ import annotations

import json

import grpc
from google.protobuf.json_format import MessageToDict

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.tools.status import Access, call_failed

_COLUMNS = ("action", "goal", "treated", "control", "uplift", "interval", "verdict")


def fetch_report(
    address: str, access: Access, request: pb.GetActionReportRequest, timeout_s: float
) -> pb.GetActionReportResponse:
    """The report from the server at `address`; StatusError saying what to do when refused."""
    with access.channel(address) as channel:
        try:
            report: pb.GetActionReportResponse = pb_grpc.JourneyServiceStub(
                channel
            ).GetActionReport(request, timeout=timeout_s, metadata=access.metadata)
        except grpc.RpcError as error:
            raise call_failed(error, address, access, "GetActionReport") from error
    return report


def report_json(report: pb.GetActionReportResponse) -> str:
    return json.dumps(MessageToDict(report, preserving_proto_field_name=True), indent=2)


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _group(customers: int, conversions: int, rate: float | None) -> str:
    return f"{conversions}/{customers} {_rate(rate)}"


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def _cells(row: pb.ActionGoalReport) -> tuple[str, ...]:
    treated = row.treated_rate if row.HasField("treated_rate") else None
    control = row.control_rate if row.HasField("control_rate") else None
    uplift = f"{_points(row.uplift)} pts" if row.HasField("uplift") else "-"
    chosen = row.uplift_fixed if row.verdict_interval == "fixed" else row.uplift_sequential
    has_interval = row.HasField("uplift_sequential")
    interval = f"[{_points(chosen.low)}, {_points(chosen.high)}]" if has_interval else "-"
    return (
        f"{row.action} [{row.variant}]" if row.variant else row.action, row.goal,
        _group(row.treated_customers, row.treated_conversions, treated),
        _group(row.control_customers, row.control_conversions, control),
        uplift, interval, row.verdict,
    )  # fmt: skip


def report_table(report: pb.GetActionReportResponse) -> list[str]:
    """The report as aligned lines for a terminal."""
    heading = f"journey {report.journey}, {report.since} to {report.until} (UTC days)"
    if not report.rows:
        return [heading, "no goals: declare `goals:` in the journey to measure its actions"]
    rows = [_COLUMNS, *(_cells(r) for r in report.rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
    lines = [heading, ""]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]))
    intervals = {r.verdict_interval for r in report.rows if r.verdict_interval}
    lines += ["", "treated/control: conversions/customers and rate; uplift in percentage points"]
    for kind in sorted(intervals):
        lines.append(f"interval: 95 % {kind}" + (
            " (valid however often the report is read)" if kind == "sequential" else
            " (valid when read once, at a planned end)"
        ))  # fmt: skip
    lines += [
        f"warning: {r.action}/{r.goal}: {r.sample_ratio_message}"
        for r in report.rows
        if r.sample_ratio_mismatch
    ]
    return lines
