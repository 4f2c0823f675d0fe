"""Recorded event logs, read and decided offline: where they live, the BPI Challenge 2012 loan log
read row by row, each row as the event a bank's systems would send, and the log replayed through
`decide()` one case at a time. Standard library and the engine only.

The data lives outside the repository, in `shared/data` next to it (`../shared/data` from the
repository root), or next to a folder further up (a clone made inside the workspace, such as CI's,
finds the workspace's); set `JOURNEYMAN_EVENT_DATA_DIR` to read it from elsewhere. A reader of a
log that may be missing checks `path.is_file()` first and names the path when it is not there.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from engine.event import Event, PropertyValue

if TYPE_CHECKING:
    from engine.compile import Ruleset
    from engine.decision import Decision
    from engine.state import CustomerState

DATA_DIR_VARIABLE = "JOURNEYMAN_EVENT_DATA_DIR"
_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
_ONE_MS = timedelta(milliseconds=1)
_COLUMNS = ("case_id", "activity", "lifecycle", "timestamp", "amount_req", "resource")

# How a website would report the bank's activities: calls come from the call centre, other work
# items from the back office, the form from the web, and status changes from the loan system.
BPIC2012_TOUCHPOINTS = {
    "W_Afhandelen leads": "lead_follow_up",
    "W_Beoordelen fraude": "fraud_check",
    "W_Completeren aanvraag": "application_completion",
    "W_Nabellen incomplete dossiers": "missing_documents_call",
    "W_Nabellen offertes": "offer_follow_up_call",
    "W_Valideren aanvraag": "application_validation",
    "W_Wijzigen contractgegevens": "contract_change",
}
BPIC2012_WEB_ACTIVITIES = frozenset({"A_SUBMITTED", "A_PARTLYSUBMITTED"})


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder holding the event logs: `$JOURNEYMAN_EVENT_DATA_DIR` in `environ`
    (os.environ), else the nearest `shared/data` beside the repository or one of the folders
    above it, else (missing) `../shared/data`. Where the logs are is not a server setting, so it
    is read here rather than in `Settings`."""
    override = (os.environ if environ is None else environ).get(DATA_DIR_VARIABLE)
    if override:
        return Path(override)
    repository = Path(__file__).resolve().parents[2]
    for folder in repository.parents:
        if (folder / "shared" / "data").is_dir():
            return folder / "shared" / "data"
    return repository.parent / "shared" / "data"


def bpic2012_csv() -> Path:
    """The BPI Challenge 2012 loan-application log, flattened to CSV (may not exist)."""
    return data_dir() / "bpic2012" / "events.csv.gz"


class LoanEvent(NamedTuple):
    """One row of the BPIC 2012 log."""

    case_id: str  # one loan application, i.e. one customer journey
    activity: str  # A_*, O_* or W_* (the bank's own names)
    lifecycle: str  # SCHEDULE, START or COMPLETE
    timestamp_ms: int  # ms since the epoch (UTC)
    amount_req: float  # euros asked for; the same on every row of a case
    resource: str  # employee or system id; "" for automatic events


def timestamp_ms(text: str) -> int:
    """ISO-8601 with an offset (`2011-10-01T00:38:44.546+02:00`) to ms since the epoch."""
    # Integer timedelta division: a float `timestamp() * 1000` can land one ms off.
    return (datetime.fromisoformat(text) - _EPOCH) // _ONE_MS


def read_bpic2012(path: Path | None = None) -> Iterator[LoanEvent]:
    """Every event of the BPIC 2012 log in file order, which is chronological within a case."""
    with gzip.open(path or bpic2012_csv(), "rt", encoding="utf-8", newline="") as lines:
        rows = csv.reader(lines)
        header = next(rows)
        case_id, activity, lifecycle, timestamp, amount_req, resource = (
            header.index(name) for name in _COLUMNS
        )
        for row in rows:
            yield LoanEvent(
                row[case_id],
                row[activity],
                row[lifecycle],
                timestamp_ms(row[timestamp]),
                float(row[amount_req]),
                row[resource],
            )


def loan_event(row_number: int, row: LoanEvent) -> Event:
    """One log row as the event a bank's systems would send to `Decide`; its id is
    `bpic2012-<row_number>`, the row's place in the replayed log."""
    activity = row.activity
    if activity.startswith("W_"):
        channel = "call_center" if activity.startswith("W_Nabellen") else "back_office"
        touchpoint = BPIC2012_TOUCHPOINTS.get(activity, "back_office")
    else:
        channel = "web" if activity in BPIC2012_WEB_ACTIVITIES else "system"
        touchpoint = "offer" if activity.startswith("O_") else "application"
    properties: dict[str, PropertyValue] = {
        "amount_req": row.amount_req,
        "lifecycle": row.lifecycle,
    }
    return Event(f"bpic2012-{row_number}", row.case_id, activity, channel, touchpoint, properties)


def decide_log(ruleset: Ruleset, rows: Iterable[LoanEvent]) -> Iterator[tuple[LoanEvent, Decision]]:
    """Each row decided in log order, at its own time, against its case's state after the case's
    previous row (one customer per case), as the service would with the state it stored."""
    # Imported here: they load numba, which a reader of the logs alone (locust) does not need.
    from engine.decide import decide
    from engine.state import new_state

    states: dict[str, CustomerState] = {}
    for row_number, row in enumerate(rows):
        case = row.case_id
        state = states.get(case) or new_state(ruleset)
        event = loan_event(row_number, row)
        decision, states[case] = decide(ruleset, state, event, row.timestamp_ms)
        yield row, decision
