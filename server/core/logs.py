"""Logging set-up: one JSON object per line for machines, or plain lines for a terminal.

Nothing on the hot path logs at INFO per event. A customer id never appears in a log line as
written: `customer_ref` gives a stable, non-reversible reference to correlate lines instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time

_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def customer_ref(customer_id: str) -> str:
    """A short hash of a customer id, the same in every line and every process."""
    return hashlib.sha256(customer_id.encode()).hexdigest()[:16]


class JsonFormatter(logging.Formatter):
    """`{"ts": ..., "level": ..., "logger": ..., "message": ..., <extra fields>}` per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str, log_format: str) -> None:
    """Root logging at `level`, as `json` lines or `text`, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # it logs every change at INFO
