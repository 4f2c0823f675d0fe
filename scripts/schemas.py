"""Writes the JSON Schemas of journey and scenario files (`make schema`)."""

from __future__ import annotations

import sys
from pathlib import Path

from engine.rules.schema import scenario_schema_text, schema_text

DEFAULT_RULES = Path("rules")


def write_schemas(rules_dir: Path) -> list[Path]:
    """Write both schemas under `rules_dir`; return the paths written."""
    written = []
    for path, text in (
        (rules_dir / "journey.schema.json", schema_text()),
        (rules_dir / "tests" / "scenario.schema.json", scenario_schema_text()),
    ):
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    for path in write_schemas(Path(argv[0]) if argv else DEFAULT_RULES):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
