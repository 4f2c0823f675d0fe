"""Settings: flags over JOURNEYMAN_* environment over defaults; errors say key, value, expected."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from server.core.config import SERVE_FLAGS, ConfigError, Settings
from server.tools.cli import build_parser


def test_defaults_serve_the_retail_example_on_50051_with_an_embedded_redis() -> None:
    settings = Settings()
    assert (settings.port, settings.redis_url, settings.rules) == (
        50051,
        None,
        ("rules/retail.yaml",),
    )


def test_environment_overrides_defaults_with_typed_values() -> None:
    settings = Settings.from_env(
        {
            "JOURNEYMAN_PORT": "6000",
            "JOURNEYMAN_RULES": "rules/retail.yaml, rules/loan_application.yaml",
            "JOURNEYMAN_DATA_DIR": "/tmp/jm",
            "JOURNEYMAN_GRACE_PERIOD_S": "2.5",
            "UNRELATED": "ignored",
        }
    )
    assert settings.port == 6000 and settings.grace_period_s == 2.5
    assert settings.rules == ("rules/retail.yaml", "rules/loan_application.yaml")
    assert settings.data_dir == Path("/tmp/jm")


def test_flags_override_the_environment_and_none_means_not_given() -> None:
    settings = Settings.from_env({"JOURNEYMAN_PORT": "6000"}).with_overrides(port=7000, host=None)
    assert (settings.port, settings.host) == (7000, "0.0.0.0")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"JOURNEYMAN_PORT": "fifty"},
            "JOURNEYMAN_PORT='fifty' is not valid: expected a whole number",
        ),
        ({"JOURNEYMAN_PORT": "70000"}, "--port / JOURNEYMAN_PORT=70000 is not valid"),
        (
            {"JOURNEYMAN_MAX_BATCH": "0"},
            "JOURNEYMAN_MAX_BATCH=0 is not valid: expected a number above 0",
        ),
        ({"JOURNEYMAN_LOG_LEVEL": "LOUD"}, "expected one of DEBUG, INFO, WARNING, ERROR"),
        ({"JOURNEYMAN_EVENT_LOOP": "trio"}, "expected auto, uvloop or asyncio"),
        ({"JOURNEYMAN_DEDUPE_WINDOW": "0"}, "expected a number above 0"),
        ({"JOURNEYMAN_DEDUPE_WINDOW": "17"}, "expected at most 16 (the event ids a customer's"),
        (
            {"JOURNEYMAN_DEDUPE_WINDOW": "4", "JOURNEYMAN_DECISIONS_KEPT": "8"},
            "JOURNEYMAN_DECISIONS_KEPT=8 is not valid: expected at most the dedupe window,"
            " JOURNEYMAN_DEDUPE_WINDOW=4",
        ),
        ({"JOURNEYMAN_DECISIONS_KEPT": "-1"}, "expected 0 or more"),
    ],
)
def test_a_bad_value_names_the_key_the_value_and_what_is_expected(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(environ)


def test_a_setting_serve_has_no_flag_for_is_named_by_its_variable_alone() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"JOURNEYMAN_SPIN_US": "-1"})
    assert str(raised.value).startswith("setting JOURNEYMAN_SPIN_US=-1 is not valid")


def test_the_settings_named_with_a_flag_are_those_serve_takes() -> None:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    serve = commands.choices["serve"]
    flags = {a.dest for a in serve._actions if a.option_strings and a.dest != "help"}
    assert flags == SERVE_FLAGS


def test_the_http_port_keeps_its_old_name() -> None:
    """JOURNEYMAN_METRICS_PORT (and --metrics-port) named the HTTP port before it served the map."""
    assert Settings.from_env({"JOURNEYMAN_METRICS_PORT": "9200"}).http_port == 9200
    both = {"JOURNEYMAN_METRICS_PORT": "9200", "JOURNEYMAN_HTTP_PORT": "9300"}
    assert Settings.from_env(both).http_port == 9300
    assert Settings(http_port=9400).metrics_port == 9400
    with pytest.raises(ConfigError, match="JOURNEYMAN_METRICS_PORT='x'"):
        Settings.from_env({"JOURNEYMAN_METRICS_PORT": "x"})
