"""`journeyman rules check|test`: output a marketer can act on, and exit codes CI can use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.tools.cli import EXIT_FAILED, EXIT_INVALID, EXIT_OK, main
from tests.rulesets import RULES_DIR


def test_check_accepts_the_example_journeys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(RULES_DIR)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "retail.yaml: journey retail" in out and "7 stages" in out


def test_check_reports_every_problem_with_file_line_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    text = (RULES_DIR / "retail.yaml").read_text()
    text = text.replace("    cooldown: 1d\n", "    cooldwn: 1d\n", 1).replace(
        "priority: 50", "priority: high"
    )
    bad.write_text(text)
    assert main(["rules", "check", str(bad)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"{bad}:" in err
    assert "unknown key `cooldwn`" in err and "`cooldown`" in err
    assert "`priority` should be a number, found 'high'" in err
    assert "2 problems found" in err


def test_check_suggests_the_stage_a_typo_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text(
        (RULES_DIR / "retail.yaml").read_text().replace("to: consideration", "to: considration")
    )
    assert main(["rules", "check", str(bad)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "unknown stage `considration`" in err and "did you mean `consideration`?" in err


def test_check_names_a_missing_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", "no/such/rules.yaml"]) == EXIT_INVALID
    assert "no/such/rules.yaml: no such file or folder" in capsys.readouterr().err


def test_test_runs_the_scenarios_of_a_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", str(RULES_DIR)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "PASS" in out and "FAIL" not in out and " 0 failed" in out


def test_test_fails_with_expected_and_got(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text(
        f"rules: [{RULES_DIR / 'retail.yaml'}]\nscenarios:\n  - name: wrong\n    steps:\n"
        "      - event: purchase\n        expect: {stage: advocacy}\n"
    )
    assert main(["rules", "test", str(scenario)]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "FAIL  wrong" in out and "expected stage 'advocacy'" in out and "got 'purchase'" in out
    assert "1 failed" in out


def test_the_console_script_is_installed_and_runs() -> None:
    journeyman = Path(sys.executable).with_name("journeyman")
    result = subprocess.run(
        [str(journeyman), "rules", "check", str(RULES_DIR / "retail.yaml")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "journey retail" in result.stdout


def test_check_prints_warnings_and_fails_on_them_only_when_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(
        "journey: shop\nversion: 1\nstages:\n  - id: browsing\n  - id: lounge\n"
        "counters:\n  views_7d:\n    when: {event: view}\n    window: 7d\n"
    )
    assert main(["rules", "check", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "2 warnings" in out
    assert f"{path}:5:5: warning [unreachable-stage]: no customer ever enters stage `lounge`" in out
    assert f"{path}:7:3: warning [unused]: counter `views_7d`" in out
    assert main(["rules", "check", "--strict", str(path)]) == EXIT_FAILED
