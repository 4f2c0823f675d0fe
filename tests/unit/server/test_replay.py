"""`journeyman replay`: event files, the column map, guards, workers and the report's exit code."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from engine.backtest import partition_of
from engine.event import Event
from server.tools.cli import main
from server.tools.event_files import (
    ColumnMap,
    EventFileError,
    event_line,
    read_events,
    timestamp_ms,
)
from server.tools.event_logs import data_dir
from server.tools.replay import replay
from server.tools.replay_report import Guard, GuardError
from tests.rulesets import retail

ROOT = Path(__file__).resolve().parents[3]
BPIC = data_dir() / "bpic2012"
DAY_MS = 86_400_000
START_MS = 1_767_600_000_000


def shoppers(n: int) -> list[tuple[Event, int]]:
    """`n` customers, each viewing, adding to cart and starting checkout, interleaved."""
    steps = ("product_view", "product_view", "add_to_cart", "checkout_started", "purchase")
    return [
        (Event(f"e{c}-{s}", f"c{c}", step, "web", "shop", {"amount": 40.0}), START_MS + s * DAY_MS)
        for s, step in enumerate(steps)
        for c in range(n)
    ]


def write_jsonl(path: Path, events: list[tuple[Event, int]]) -> Path:
    path.write_text("".join(event_line(e, t) + "\n" for e, t in events), encoding="utf-8")
    return path


def test_the_column_map_names_what_is_missing() -> None:
    assert ColumnMap.parse("type=a,customer=b,time=c,x=y").properties == {"x": "y"}
    with pytest.raises(EventFileError, match="time"):
        ColumnMap.parse("type=a,customer=b")
    with pytest.raises(EventFileError, match="name=column"):
        ColumnMap.parse("type=a,customer")


def test_times_in_iso_ms_or_seconds() -> None:
    assert timestamp_ms("2011-10-01T00:38:44.546+02:00") == 1_317_422_324_546
    assert timestamp_ms("1317422324546") == timestamp_ms("1317422324.546") == 1_317_422_324_546


def test_jsonl_round_trips(tmp_path: Path) -> None:
    events = shoppers(2)
    assert list(read_events(write_jsonl(tmp_path / "e.jsonl", events))) == events


@pytest.mark.skipif(not BPIC.is_dir(), reason=f"the BPIC 2012 log is not at {BPIC}")
def test_xes_and_csv_give_the_same_events() -> None:
    xes = read_events(
        BPIC / "BPI_Challenge_2012.xes.gz",
        ColumnMap.parse(
            "type=concept:name,customer=case:concept:name,time=time:timestamp,"
            "lifecycle=lifecycle:transition,amount_req=case:AMOUNT_REQ"
        ),
    )
    csv = read_events(BPIC / "events.csv.gz", ColumnMap.parse("type=activity,customer=case_id,"
                                                              "time=timestamp"))  # fmt: skip
    for (x, x_ms), (c, c_ms) in itertools.islice(zip(xes, csv, strict=False), 500):
        assert (x.customer_id, x.type, x_ms) == (c.customer_id, c.type, c_ms)
        assert x.properties["lifecycle"] == c.properties["lifecycle"]
        assert x.properties["amount_req"] == c.properties["amount_req"]


def test_guards_parse_or_say_how() -> None:
    assert Guard.parse("stage:approved changes by more than 2%").limit_pct == 2.0
    assert Guard.parse("customers changing stage more than 5 %").kind == "customers_stage"
    with pytest.raises(GuardError, match="stage:approved"):
        Guard.parse("approved up 2%")


def test_workers_add_up_to_one_process() -> None:
    events = shoppers(40)
    one, four = replay(retail(), retail(), events), replay(retail(), retail(), events, workers=4)
    assert one.new == four.new and one.old == four.old
    assert one.final_stage == four.final_stage
    assert {partition_of(f"c{c}", 4) for c in range(40)} == {0, 1, 2, 3}


def test_a_change_is_reported_explained_and_guarded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_jsonl(tmp_path / "events.jsonl", shoppers(20))
    old = ROOT / "rules" / "retail.yaml"
    new = tmp_path / "retail.yaml"
    text = old.read_text(encoding="utf-8")
    new.write_text(text.replace("event: checkout_started", "event: purchase", 1), encoding="utf-8")
    command = ["replay", "--rules", str(new), "--baseline", str(old), "--events", str(events)]
    assert main([*command, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["changed"]["customers"] == 20
    example = report["examples"]["path"][0] if report["examples"]["path"] else None
    example = example or report["examples"]["stage"][0]
    assert any("line" in line for line in example["old"] + example["new"])
    assert main([*command, "--fail-if", "stage:purchase changes by more than 0%"]) == 0
    assert main([*command, "--fail-if", "held_out:welcome_discount changes by more than 10%"]) == 1
    assert main([*command, "--html", str(tmp_path / "r" / "report.html")]) == 0
    assert (tmp_path / "r" / "report.html").read_text(encoding="utf-8").startswith("<!doctype")
