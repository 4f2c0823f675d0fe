"""The JSON Schema of journey files, generated from `engine.rules.model` for editors.

`python -m engine.rules.schema rules/journey.schema.json` rewrites it; a test keeps it current.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from engine.rules.model import Journey

SCHEMA_ID = "https://journeyman.dev/schemas/journey-v1.json"


def journey_schema() -> dict[str, Any]:
    schema = Journey.model_json_schema(by_alias=True, mode="validation")
    return {
        **schema,
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "journeyman journey (rules language v1)",
    }


def schema_text() -> str:
    return json.dumps(journey_schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m engine.rules.schema OUTPUT.json", file=sys.stderr)
        return 2
    with open(argv[0], "w", encoding="utf-8") as out:
        out.write(schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
