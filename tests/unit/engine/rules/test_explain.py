"""pydantic's errors explained for any file: journeys keep their own words (the corpus in
`malformed/` pins them), other files get words made from their keys and field descriptions."""

from __future__ import annotations

import pytest
from pydantic import Field, ValidationError

from engine.errors import RuleProblem
from engine.rules.explain import problems_from_validation
from engine.rules.model import Cap, Condition, Journey, Strict, model_at
from engine.rules.yaml_tree import read_yaml


class Item(Strict):
    sku: str = Field(description="the product code, e.g. `sku: A-100`")
    quantity: int = Field(1, ge=1, le=99)


class Basket(Strict):
    items: list[Item] = Field(min_length=1)


def problems(text: str) -> list[tuple[int, int, str, str]]:
    tree = read_yaml(text, "basket.yaml")
    with pytest.raises(ValidationError) as error:
        Basket.model_validate(tree.data)
    found: list[RuleProblem] = problems_from_validation(error.value, tree, Basket)
    return sorted((p.line, p.column, p.message, p.hint) for p in found)


def test_an_unknown_key_is_placed_by_its_list_and_the_misspelt_key_not_reported_missing() -> None:
    assert problems("items:\n  - skus: A-100\n    quantity: 0\n") == [
        (2, 5, "unknown key `skus` in this item", "did you mean `sku`?"),
        (3, 15, "`quantity` must be from 1 to 99, found 0", "write a whole number from 1 to 99"),
    ]


def test_a_missing_key_is_explained_by_its_field_description() -> None:
    assert problems("items:\n  - quantity: 2\n") == [
        (2, 5, "this item is missing `sku`", "add `sku:`, the product code, e.g. `sku: A-100`"),
    ]


def test_the_whole_file_of_the_wrong_shape_names_the_keys_to_start_with() -> None:
    assert problems("just text\n") == [
        (
            1,
            1,
            "the file should be `key: value` lines, found 'just text'",
            "start it with `items:`; see rules/README.md for an example",
        ),
    ]


@pytest.mark.parametrize(
    ("path", "model"),
    [
        (("actions", 0, "cap"), Cap),
        (("segments", "vip", "when", "all", 0, "not"), Condition),
        (("transitions", 2, "when", "any", 1), Condition),
        (("version",), None),
        (("nowhere", 0), None),
    ],
)
def test_the_model_behind_a_path_follows_lists_mappings_and_optional_values(
    path: tuple[str | int, ...], model: type | None
) -> None:
    assert model_at(Journey, path) is model
