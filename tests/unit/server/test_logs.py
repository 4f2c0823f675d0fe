"""JSON log lines carry the fields a collector indexes; customer ids appear only hashed."""

from __future__ import annotations

import json
import logging

from server.core.logs import JsonFormatter, customer_ref


def test_a_json_line_has_time_level_logger_message_and_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "server.rules.reload", "levelname": "ERROR", "levelno": 40, "msg": "refused %s",
         "args": ("x.yaml",), "customer": customer_ref("alice@example.com")}
    )  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["message"]) == (
        "ERROR",
        "server.rules.reload",
        "refused x.yaml",
    )
    assert line["ts"].endswith("Z") and line["customer"] == customer_ref("alice@example.com")
    assert "alice" not in json.dumps(line)


def test_customer_refs_are_stable_and_distinct() -> None:
    assert customer_ref("a") == customer_ref("a") != customer_ref("b")
    assert len(customer_ref("a")) == 16
