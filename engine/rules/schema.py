"""JSON Schemas of journey files and scenario files, generated from their models, for editors.

`make schema` (`scripts/schemas.py`) rewrites `rules/journey.schema.json` and
`rules/tests/scenario.schema.json`; a test keeps them current.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from engine.rules.model import Journey

SCHEMA_BASE = "https://journeyman.dev/schemas"


def _schema(model: type[BaseModel], name: str, title: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {
        **schema,
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE}/{name}-v1.json",
        "title": title,
    }


def journey_schema() -> dict[str, Any]:
    return _schema(Journey, "journey", "journeyman journey (rules language v1)")


def scenario_schema() -> dict[str, Any]:
    from engine.scenarios import ScenarioFile  # the scenario runner imports the whole engine

    return _schema(ScenarioFile, "scenario", "journeyman scenario tests (v1)")


def _text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def schema_text() -> str:
    """The journey schema as written to `rules/journey.schema.json`."""
    return _text(journey_schema())


def scenario_schema_text() -> str:
    """The scenario schema as written to `rules/tests/scenario.schema.json`."""
    return _text(scenario_schema())
