"""A loaded journey says exactly what its file says: no literal changes kind on the way in.

`tests.reference` evaluates the loaded `Journey` model, so it can only vouch for the engine if the
model is faithful to the file; a `true` that loads as `1.0` would fool both of them alike.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings

from engine.rules.load import parse_journey
from tests.property.strategies import Json, journeys


def comparable(value: Any) -> Any:
    """`value` with every scalar tagged with its kind, so that `true` and `1.0` differ under ==
    while YAML's `3` and `3.0`, the same number, do not."""
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [comparable(item) for item in value]
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    return ("string", value)


@settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(journey=journeys())
def test_every_literal_keeps_its_kind(journey: Json) -> None:
    loaded = parse_journey(json.dumps(journey, indent=2), "j0.json")
    assert comparable(loaded.model.model_dump(by_alias=True, exclude_unset=True)) == comparable(
        journey
    )
