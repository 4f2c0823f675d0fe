"""The JSON Schema editors read (`rules/journey.schema.json`) is the model's, and every journey
file points its editor at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.rules.schema import schema_text

RULES = Path(__file__).resolve().parents[4] / "rules"
MODELINE = "# yaml-language-server: $schema=./journey.schema.json"
JOURNEY_FILES = sorted(RULES.glob("*.yaml"))


def test_the_schema_file_is_generated_from_the_model() -> None:
    written = (RULES / "journey.schema.json").read_text(encoding="utf-8")
    assert written == schema_text(), (
        "rules/journey.schema.json is out of date with engine/rules/model.py: "
        "run `make schema` and commit the result"
    )


def test_there_are_journey_files_to_check() -> None:
    assert JOURNEY_FILES, f"no journey files in {RULES}"


@pytest.mark.parametrize("path", JOURNEY_FILES, ids=lambda p: p.name)
def test_every_journey_file_starts_with_the_schema_modeline(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == MODELINE, (
        f"{path.name} must start with `{MODELINE}` so that editors autocomplete and check it"
    )
