"""The journey map after the real BPIC 2012 replay, against the raw log and in a real browser.

A `journeyman serve` (its own embedded Redis, its HTTP port on) takes the whole loan log (262,200
events, 13,087 applications) over DecideStreams. Then:
- every figure GetJourneyStats gives equals one computed here straight from the raw log by a
  plain reading of what `rules/loan_application.yaml` means (no engine, no service code): the
  customers per stage, each transition's customers per day and from-stage and their share, the
  entries, the time-in-stage median and p90 (through the documented buckets), the stalls and
  the friction signals fired per stage and touchpoint;
- headless Chromium (Debian's `chromium`) loads /map/loan_application from the HTTP port, and
  the rendered SVG shows every stage with its count and every designed transition;
- with tokens configured, the map and its JSON need a `read` token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import grpc
import pytest

from benchmarks.load.replay import as_request, by_case, stream_cases
from benchmarks.load.service import RULES_DIR, Running, journeyman
from benchmarks.ports import free_port
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.tools.event_logs import LoanEvent, bpic2012_csv, loan_event, read_bpic2012

pytestmark = [pytest.mark.service, pytest.mark.slow]

JOURNEY = "loan_application"
RULES = RULES_DIR / "loan_application.yaml"
# What the rules mean, restated from rules/loan_application.yaml: outcomes are final and reached
# from any open stage; otherwise a customer moves forward on these events, from these stages.
OPEN = ("submitted", "pre_accepted", "offer_sent", "offer_signed")
OUTCOMES = {"A_APPROVED": "approved", "A_DECLINED": "declined", "A_CANCELLED": "cancelled"}
FORWARD = {  # event -> (transition, stages it leaves from, stage it leads to)
    "A_PREACCEPTED": ("passed_checks", ("submitted",), "pre_accepted"),
    "O_SENT": ("offer_sent", ("submitted", "pre_accepted"), "offer_sent"),
    "O_SENT_BACK": ("offer_signed", ("submitted", "pre_accepted", "offer_sent"), "offer_signed"),
}
SIGNALS = {  # (activity, lifecycle or None for any) -> friction signal
    ("W_Nabellen incomplete dossiers", "START"): "document_call",
    ("W_Nabellen offertes", "START"): "offer_call",
    ("O_CANCELLED", None): "offer_withdrawn",
}
STALL_AFTER_MS = 7 * 86_400_000  # the default: the file sets no stall_after
SETTLE_S = 20.0


def bound_ms(bucket: int) -> int:
    """rules/README.md: time in stage is counted in buckets up to ceil(1000 * 2^(b/4)) ms."""
    return math.ceil(1000 * 2 ** (bucket / 4))


def bucket_upper_s(duration_ms: int) -> float:
    bucket = 0
    while bound_ms(bucket) < duration_ms:
        bucket += 1
    return bound_ms(bucket) / 1000


def nearest_rank_s(durations: list[int], numerator: int, denominator: int) -> float:
    ordered = sorted(durations)
    return bucket_upper_s(ordered[-(-len(ordered) * numerator // denominator) - 1])


def utc_day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()


@dataclass
class Reference:
    """The figures, computed from the raw log."""

    stage: dict[str, str] = field(default_factory=dict)
    moves: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # transition, from, day
    entries: Counter[str] = field(default_factory=Counter)
    times: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    signals: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # stage, signal, tp
    days: set[str] = field(default_factory=set)


def signal_of(row: LoanEvent) -> str | None:
    return SIGNALS.get((row.activity, row.lifecycle)) or SIGNALS.get((row.activity, None))


def reference(rows: list[LoanEvent]) -> Reference:
    ref = Reference()
    entered: dict[str, int] = {}
    clock: dict[str, int] = {}
    for number, row in enumerate(rows):
        case = row.case_id
        at_ms = max(row.timestamp_ms, clock.get(case, row.timestamp_ms))  # clocks never go back
        clock[case] = at_ms
        ref.days.add(utc_day(at_ms))
        if case not in ref.stage:
            ref.stage[case], entered[case] = "submitted", at_ms
            ref.entries["submitted"] += 1
        now = ref.stage[case]
        signal = signal_of(row)
        if signal is not None:
            ref.signals[now, signal, loan_event(number, row).touchpoint] += 1
        move = None
        if row.activity in OUTCOMES and now in OPEN:
            move = (OUTCOMES[row.activity], OUTCOMES[row.activity])
        elif row.activity in FORWARD and now in FORWARD[row.activity][1]:
            move = (FORWARD[row.activity][0], FORWARD[row.activity][2])
        if move is not None:
            transition, to = move
            ref.moves[transition, now, utc_day(at_ms)] += 1
            ref.entries[to] += 1
            ref.times[now].append(at_ms - entered[case])
            ref.stage[case], entered[case] = to, at_ms
    return ref


@dataclass
class Replayed:
    running: Running
    http_port: int
    ref: Reference
    stats: pb.GetJourneyStatsResponse


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no headless browser: install Debian's `chromium` (.ci/run does)")
    return found


async def settled_stats(
    address: str, request: pb.GetJourneyStatsRequest, customers: int
) -> pb.GetJourneyStatsResponse:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.JourneyServiceStub(channel)
        deadline = time.monotonic() + SETTLE_S
        previous = None
        while True:
            stats = await stub.GetJourneyStats(request, timeout=30)
            # Moves keep the sum, so it is not enough: the figures must also stop moving.
            counted = sum(s.customers for s in stats.stages) == customers
            if counted and _figures(stats) == _figures(previous) or time.monotonic() > deadline:
                return stats
            previous = stats
            await asyncio.sleep(0.3)


def _figures(stats: pb.GetJourneyStatsResponse | None) -> bytes | None:
    if stats is None:
        return None
    without_clock = pb.GetJourneyStatsResponse()
    without_clock.CopyFrom(stats)
    without_clock.as_of_ms = 0
    return without_clock.SerializeToString(deterministic=True)


@pytest.fixture(scope="module")
def replayed() -> Iterator[Replayed]:
    if not bpic2012_csv().is_file():
        pytest.skip(f"the BPIC 2012 log is not at {bpic2012_csv()}")
    rows = list(read_bpic2012())
    ref = reference(rows)
    cases = by_case(rows)
    http_port = free_port()
    with journeyman(RULES, metrics_port=http_port) as running:
        replay = asyncio.run(stream_cases(
            running.address, list(cases.values()), as_request, streams=16, window=4,
        ))  # fmt: skip
        assert replay.answered == len(rows) and not replay.degraded
        request = pb.GetJourneyStatsRequest(
            journey=JOURNEY, since=min(ref.days), until=max(ref.days)
        )
        stats = asyncio.run(settled_stats(running.address, request, len(cases)))
        yield Replayed(running, http_port, ref, stats)


def test_every_figure_equals_the_raw_log(replayed: Replayed) -> None:
    ref, stats = replayed.ref, replayed.stats
    final = Counter(ref.stage.values())
    assert stats.stall_after_ms == STALL_AFTER_MS
    for figures in stats.stages:
        name = figures.stage
        assert figures.customers == final[name], name
        assert figures.stalled == final[name], name  # the log ended in 2012: everyone stalled
        assert figures.entries == ref.entries[name], name
        assert figures.visits == ref.entries[name], name  # nobody was there before the log
        assert figures.time_in_stage_samples == len(ref.times[name]), name
        if ref.times[name]:
            assert figures.time_in_stage_median_s == nearest_rank_s(ref.times[name], 1, 2), name
            assert figures.time_in_stage_p90_s == nearest_rank_s(ref.times[name], 9, 10), name
        signals = {(s.signal, s.touchpoint): s.fired for s in figures.friction_signals}
        assert signals == {(g, t): n for (s, g, t), n in ref.signals.items() if s == name}, name
    assert {(t.transition, t.from_stage) for t in stats.transitions} >= {
        (transition, source) for transition, source, _ in ref.moves
    }  # every move the log makes is a designed edge
    for edge in stats.transitions:
        per_day = {d.day: d.customers for d in edge.per_day if d.customers}
        key = (edge.transition, edge.from_stage)
        expected = {d: n for (t, f, d), n in ref.moves.items() if (t, f) == key}
        assert per_day == expected, (edge.transition, edge.from_stage)
        assert edge.customers == sum(expected.values())
        visits = ref.entries[edge.from_stage]
        assert edge.share == edge.customers / visits, (edge.transition, edge.from_stage)


class _Svg(HTMLParser):
    """The stages and transitions the page rendered, read from its DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.stages: dict[str, dict[str, str]] = {}
        self.transitions: list[dict[str, str]] = []
        self.texts: dict[str, list[str]] = defaultdict(list)
        self._in: tuple[str, str] | None = None  # (stage, text class) being read
        self._stage: str | None = None
        self.rendered = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        classes = values.get("class", "").split()
        if tag == "body":
            self.rendered = values.get("data-rendered", "")
        if tag == "g" and "stage" in classes:
            self._stage = values["data-stage"]
            self.stages[self._stage] = values
        elif tag == "g" and "transition" in classes:
            self._stage = None
            self.transitions.append(values)
        elif tag == "text" and self._stage is not None:
            self._in = (self._stage, classes[0] if classes else "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "text":
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self.texts[f"{self._in[0]}.{self._in[1]}"].append(data)


def rendered(url: str, screenshot: Path | None = None) -> _Svg:
    browser = chromium()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    dom = subprocess.run(
        [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    if screenshot is not None:
        subprocess.run(
            [*flags, f"--screenshot={screenshot}", "--window-size=1500,1000", url],
            capture_output=True, timeout=120, check=True,
        )  # fmt: skip
    page = _Svg()
    page.feed(dom)
    return page


def test_the_browser_shows_every_stage_with_its_count_and_every_transition(
    replayed: Replayed, tmp_path: Path
) -> None:
    days = f"since={replayed.stats.since}&until={replayed.stats.until}"
    url = f"http://127.0.0.1:{replayed.http_port}/map/{JOURNEY}?{days}"
    page = rendered(url, tmp_path / "map.png")
    assert page.rendered == "live"
    stats = replayed.stats
    assert set(page.stages) == {s.stage for s in stats.stages}
    for stage in stats.stages:
        shown = page.texts[f"{stage.stage}.customers"]
        assert shown == [f"{stage.customers:,} customer{'' if stage.customers == 1 else 's'}"]
        assert page.texts[f"{stage.stage}.stalled"] == [f"{stage.stalled:,} stalled"]
        assert page.texts[f"{stage.stage}.stage-label"] == [stage.label]
    drawn = {(t["data-transition"], t["data-from"], t["data-to"], int(t["data-customers"]))
             for t in page.transitions}  # fmt: skip
    assert drawn == {
        (e.transition, e.from_stage, e.to_stage, e.customers) for e in stats.transitions
    }
    never = {(t["data-transition"], t["data-from"]) for t in page.transitions
             if "never-taken" in t.get("class", "")}  # fmt: skip
    assert never == {(e.transition, e.from_stage) for e in stats.transitions if not e.customers}
    assert (tmp_path / "map.png").stat().st_size > 10_000


def _get(url: str, authorization: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"marketer:{token}".encode()).decode()


def test_with_tokens_the_map_and_its_json_need_a_read_token() -> None:
    reader, decider = "r" * 24, "d" * 24
    port = free_port()
    tokens = f"{reader} read,{decider} decide"
    with journeyman(RULES, metrics_port=port, auth_tokens=tokens):
        base = f"http://127.0.0.1:{port}"
        for path in (f"/map/{JOURNEY}", f"/api/journeys/{JOURNEY}/stats"):
            assert _get(base + path)[0] == 401
            assert _get(base + path, _basic(decider))[0] == 403
            assert _get(base + path, "Bearer not-a-token-at-all")[0] == 403
            status, body = _get(base + path, _basic(reader))
            assert status == 200, body
            status, body = _get(base + path, f"Bearer {reader}")
            assert status == 200, body
        stats = json.loads(_get(base + f"/api/journeys/{JOURNEY}/stats", f"Bearer {reader}")[1])
        assert [s["stage"] for s in stats["stages"]][:2] == ["submitted", "pre_accepted"]
        assert _get(base + "/metrics")[0] == 200  # Prometheus scrapes without a token


class _RefusedBox(HTMLParser):
    """The page's box about a refused rules change: whether it shows, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.shown = False
        self.text = ""
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section" and values.get("id") == "refused":
            self.shown = "hidden" not in values
            self._depth = 1
        elif self._depth:
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.text += data


def test_a_refused_rules_change_shows_on_the_map_until_it_is_fixed(tmp_path: Path) -> None:
    rules = tmp_path / "loan_application.yaml"
    good = RULES.read_text()
    rules.write_text(good)
    port = free_port()
    with journeyman(rules, metrics_port=port) as running:
        url = f"http://127.0.0.1:{port}/map/{JOURNEY}"
        box = _RefusedBox()
        box.feed(_dom(url))
        assert not box.shown
        line = good.splitlines().index("    priority: 80") + 1
        rules.write_text(good.replace("    priority: 80", "    priorty: 80", 1))
        reason = _refused_reason(running.address, wanted=True)
        assert f"loan_application.yaml:{line}:5: unknown key `priorty`" in reason
        box = _RefusedBox()
        box.feed(_dom(url))
        assert box.shown
        assert "Your last rules change was refused" in box.text
        assert f"loan_application.yaml:{line}:5: unknown key `priorty`" in box.text
        rules.write_text(good)
        assert _refused_reason(running.address, wanted=False) == ""
        box = _RefusedBox()
        box.feed(_dom(url))
        assert not box.shown


def _refused_reason(address: str, *, wanted: bool) -> str:
    """GetRuleset's refused reason once the service has (`wanted`) or has not a refused
    reload (the rules folder is watched; a save reloads within about a second)."""
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.JourneyServiceStub(channel)
        deadline = time.monotonic() + 20
        while True:
            reason = str(stub.GetRuleset(pb.GetRulesetRequest(), timeout=5).refused_reason)
            if bool(reason) == wanted or time.monotonic() > deadline:
                return reason
            time.sleep(0.2)


def _dom(url: str) -> str:
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu"]
    return subprocess.run(
        [*flags, "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
