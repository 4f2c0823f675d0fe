"""The key layout: which customer ids are accepted, and the keys built from them (no Redis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.store.keys import (
    DEFAULT_PREFIX,
    Keyspace,
    OutcomeField,
    conversion_field,
    exposure_field,
    outcome_field,
    utc_day,
    validate_customer_id,
    value_field,
)


@pytest.mark.parametrize("value", ["a", "cust-42@example.com", "crm:42", "x+y_z.1", "A" * 128])
def test_customer_ids_in_the_alphabet_are_accepted(value: str) -> None:
    assert validate_customer_id(value) is None


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("", "empty"),
        ("A" * 129, "129 characters"),
        ("a{b}", "'{'"),
        ("a b", "' '"),
        ("a\nb", "'\\n'"),
        ("café", "'é'; use only ASCII letters"),
    ],
)
def test_customer_ids_outside_the_alphabet_are_named(value: str, said: str) -> None:
    problem = validate_customer_id(value)
    assert problem is not None and said in problem


def test_keys_refuse_ids_and_prefixes_that_would_escape_the_hash_tag() -> None:
    with pytest.raises(ValueError, match="'}'"):
        Keyspace().customer("a}b")
    with pytest.raises(ValueError, match="hash tag"):
        Keyspace("jm{x}:")


def test_key_shapes() -> None:
    keys = Keyspace().customer("crm:42")
    assert keys.all() == ("jm:{c:crm:42}:state", "jm:{c:crm:42}:decisions")
    assert Keyspace().customer("v1", anonymous=True).state == "jm:{a:v1}:state"
    assert Keyspace().stage_counts("retail") == "jm:stats:stages:retail"
    assert (
        Keyspace().transitions("retail", "2024-05-01") == "jm:stats:transitions:retail:2024-05-01"
    )
    assert utc_day(1_714_521_599_999) == "2024-04-30"
    assert utc_day(1_714_521_600_000) == "2024-05-01"
    assert DEFAULT_PREFIX == "jm:"


@given(
    action=st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
    goal=st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
    stage=st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
    treated=st.booleans(),
)
def test_an_outcome_field_reads_back_as_written(
    action: str, goal: str, stage: str, treated: bool
) -> None:
    assert outcome_field(exposure_field(action, stage, treated=treated)) == OutcomeField(
        "x", action, "", stage, treated
    )
    for kind, build in (("c", conversion_field), ("v", value_field)):
        field = outcome_field(build(action, goal, stage, treated=treated))
        assert field == OutcomeField(kind, action, goal, stage, treated)


def test_a_field_of_another_version_is_skipped_not_misread() -> None:
    assert outcome_field("x|welcome|t") is None  # the layout before stages were counted
    assert outcome_field("c|welcome|order|awareness|maybe") is None
    assert outcome_field("c|welcome|order|awareness|") is None
