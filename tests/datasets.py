"""Readers for the real event logs the tests replay, standard library only.

The data lives outside the repository, in `shared/data` next to it (`../shared/data` from the
repository root), or next to a folder further up (a clone made inside the workspace, such as CI's,
finds the workspace's); set `JOURNEYMAN_EVENT_DATA_DIR` to read it from elsewhere. Tests that need
a log check `path.is_file()` and skip with the path in the reason when it is missing.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

DATA_DIR_VARIABLE = "JOURNEYMAN_EVENT_DATA_DIR"
_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
_ONE_MS = timedelta(milliseconds=1)
_COLUMNS = ("case_id", "activity", "lifecycle", "timestamp", "amount_req", "resource")


def data_dir() -> Path:
    """The folder holding the datasets: `$JOURNEYMAN_EVENT_DATA_DIR`, else the nearest
    `shared/data` beside the repository or one of the folders above it, else (missing)
    `../shared/data`."""
    override = os.environ.get(DATA_DIR_VARIABLE)
    if override:
        return Path(override)
    repository = Path(__file__).resolve().parents[1]
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
