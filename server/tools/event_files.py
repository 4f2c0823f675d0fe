"""Recorded events read from files, for `journeyman replay`: JSON Lines (the format `journeyman
events export` writes), CSV and XES event logs, each optionally gzipped (`.gz`).

JSON Lines: one event per line, `{"event_id", "customer_id", "type", "channel", "touchpoint",
"timestamp_ms", "properties": {...}}`, the fields of `Decide`'s Event (`channel`, `touchpoint`,
`properties` optional).

CSV and XES carry a process mining log's own names; a column map says which column is what:
`type=activity,customer=case_id,time=timestamp`. `type`, `customer` and `time` are required;
`event_id`, `channel` and `touchpoint` may be mapped too, and any other `name=column` reads the
column as the event property `name`. Columns not mapped are kept as properties under their own
names. A time is ISO-8601 (with an offset; without one it is read as UTC), or a number: ms since
the epoch, or seconds when below 10^11. An event without an id is `<file name>-<row>`. In XES, a
trace's attributes are columns `case:<key>` (as pm4py names them), so the BPIC 2012 XES maps as
`type=concept:name,customer=case:concept:name,time=time:timestamp`.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from engine.errors import JourneymanError
from engine.event import Event, PropertyValue
from server.store.capture import event_line

__all__ = ["ColumnMap", "EventFileError", "event_line", "read_events", "timestamp_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_SECONDS_BELOW = 100_000_000_000  # a time in seconds is below this; in ms, above
REQUIRED = ("type", "customer", "time")
FIELDS = (*REQUIRED, "event_id", "channel", "touchpoint")


class EventFileError(JourneymanError):
    """A file of events that cannot be read: where and why, and what to give instead."""


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Which column holds each field of an event (`FIELDS`), and which hold named properties."""

    fields: Mapping[str, str]
    properties: Mapping[str, str]  # property name -> column

    @classmethod
    def parse(cls, text: str) -> ColumnMap:
        """`type=activity,customer=case_id,time=timestamp[,name=column...]`."""
        fields: dict[str, str] = {}
        properties: dict[str, str] = {}
        for part in (p.strip() for p in text.split(",") if p.strip()):
            name, equals, column = part.partition("=")
            if not equals or not name.strip() or not column.strip():
                raise EventFileError(
                    f"--map: {part!r} is not name=column; write e.g. "
                    "type=activity,customer=case_id,time=timestamp"
                )
            into = fields if name.strip() in FIELDS else properties
            into[name.strip()] = column.strip()
        missing = [name for name in REQUIRED if name not in fields]
        if missing:
            raise EventFileError(
                f"--map names no column for {', '.join(missing)}; add e.g. "
                "type=activity,customer=case_id,time=timestamp"
            )
        return cls(fields, properties)


def timestamp_ms(value: str) -> int:
    """ISO-8601 (an offset, else UTC) or a number (ms, or seconds below 10^11) to ms."""
    try:
        number = float(value)
    except ValueError:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - _EPOCH) // _ONE_MS
    return int(number * 1000) if number < _SECONDS_BELOW else int(number)


@functools.lru_cache(maxsize=65_536)  # logs repeat their values; a failed float() costs ~1 µs
def _value(text: str) -> PropertyValue:
    """A CSV or XES value as a property: a number when it reads as one, else the text."""
    try:
        return float(text)
    except ValueError:
        return text


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def file_format(path: Path) -> str:
    """`jsonl`, `csv` or `xes`, from the name (`.gz` aside)."""
    name = path.name.removesuffix(".gz")
    for suffix, kind in ((".jsonl", "jsonl"), (".json", "jsonl"), (".csv", "csv"), (".xes", "xes")):
        if name.endswith(suffix):
            return kind
    raise EventFileError(
        f"{path}: cannot tell the format from the name; name it .jsonl, .csv or .xes "
        "(optionally .gz)"
    )


def read_events(path: Path, columns: ColumnMap | None = None) -> Iterator[tuple[Event, int]]:
    """Every event in `path` with its time (ms since the epoch), in file order."""
    kind = file_format(path)
    if kind == "jsonl":
        yield from _read_jsonl(path)
        return
    if columns is None:
        raise EventFileError(
            f"{path}: a {kind.upper()} log needs --map to say which column is what, e.g. "
            "--map type=activity,customer=case_id,time=timestamp"
        )
    rows = _csv_rows(path) if kind == "csv" else _xes_rows(path)
    yield from _mapped(path, rows, columns)


def _read_jsonl(path: Path) -> Iterator[tuple[Event, int]]:
    with _open(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                event = Event(
                    event_id=item["event_id"],
                    customer_id=item["customer_id"],
                    type=item["type"],
                    channel=item.get("channel", ""),
                    touchpoint=item.get("touchpoint", ""),
                    properties=item.get("properties") or {},
                )
                yield event, int(item["timestamp_ms"])
            except (ValueError, KeyError, TypeError) as e:
                raise EventFileError(
                    f"{path}:{number}: not an event ({e!r}); each line is a JSON object with "
                    "event_id, customer_id, type and timestamp_ms"
                ) from e


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    with _open(path) as lines:
        rows = csv.reader(lines)
        header = next(rows, [])
        for row in rows:  # csv.DictReader does the same at twice the cost
            yield dict(zip(header, row, strict=False))


def _xes_rows(path: Path) -> Iterator[dict[str, str]]:
    """Each XES event as a row: its attributes, and its trace's as `case:<key>`."""
    source: Any = gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")
    with source:
        trace: dict[str, str] = {}
        depth = 0
        event: dict[str, str] | None = None
        for action, element in ET.iterparse(source, events=("start", "end")):
            tag = element.tag.rsplit("}", 1)[-1]
            if action == "start":
                depth += 1
                if tag == "trace":
                    trace = {}
                elif tag == "event":
                    event = {}
                continue
            depth -= 1
            key, value = element.get("key"), element.get("value")
            if tag == "event" and event is not None:
                yield {**trace, **event}
                event = None
                element.clear()
            elif tag == "trace":
                element.clear()
            elif key is not None and value is not None and depth in (2, 3):
                if event is not None:
                    event[key] = value
                elif depth == 2:
                    trace[f"case:{key}"] = value


def _mapped(
    path: Path, rows: Iterator[dict[str, str]], columns: ColumnMap
) -> Iterator[tuple[Event, int]]:
    fields = columns.fields
    taken = set(fields.values())
    renamed = {column: name for name, column in columns.properties.items()}
    stem = path.name.split(".")[0]
    for number, row in enumerate(rows, start=1):
        try:
            at_ms = timestamp_ms(row[fields["time"]])
            customer, type_ = row[fields["customer"]], row[fields["type"]]
        except KeyError as e:
            raise EventFileError(
                f"{path}: row {number} has no column {e.args[0]!r} (its columns: "
                f"{', '.join(row)}); fix --map"
            ) from e
        except ValueError as e:
            raise EventFileError(f"{path}: row {number}: {e}; times are ISO-8601 or ms") from e
        properties = {
            renamed.get(column, column): _value(text)
            for column, text in row.items()
            if column not in taken and text != ""
        }
        event_id = row.get(fields["event_id"], "") if "event_id" in fields else ""
        yield (
            Event(
                event_id=event_id or f"{stem}-{number}",
                customer_id=customer,
                type=type_,
                channel=row.get(fields.get("channel", ""), ""),
                touchpoint=row.get(fields.get("touchpoint", ""), ""),
                properties=properties,
            ),
            at_ms,
        )
