"""`rules diff`: every stage, transition and action a change adds, removes or alters."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.rules.diff import diff_rulesets
from engine.rules.load import parse_journey
from engine.rules.model import Journey
from server.tools.cli import EXIT_FAILED, EXIT_OK, main
from tests.rulesets import RULES_DIR

RETAIL = (RULES_DIR / "retail.yaml").read_text()


def _journey(text: str) -> Journey:
    return parse_journey(text, "x.yaml").model


def test_added_removed_and_altered_entries_are_named_with_their_fields() -> None:
    edited = (
        RETAIL.replace("version: 2026.11.23", "version: 2026.12.01")
        .replace("    priority: 50\n", "    priority: 60\n")
        .replace("      gte: 60d\n", "      gte: 90d\n")
        .replace(
            "  - id: churn_risk\n    label: Churn risk\n", "  - id: lapsed\n    label: Lapsed\n"
        )
        .replace("to: churn_risk", "to: lapsed")
        .replace("from: [purchase, churn_risk]", "from: [purchase, lapsed]")
        .replace("stages: [churn_risk]", "stages: [lapsed]")
        .replace("top_k: 3", "top_k: 2")
    )
    (diff,) = diff_rulesets([_journey(RETAIL)], [_journey(edited)])
    text = "\n".join(diff.lines())
    assert text.startswith("journey retail: 2026.11.23 → 2026.12.01")
    assert "- stage `churn_risk`" in text and "+ stage `lapsed`" in text
    assert "~ action `free_shipping`: priority: 50 → 60" in text
    assert "~ action `win_back`: stages: [churn_risk] → [lapsed]" in text
    assert "~ setting `top_k`: 3 → 2" in text
    # A changed condition reads as the YAML a marketer wrote, old and new, never cut off.
    assert (
        "  ~ transition `went_quiet`:\n"
        "      to: churn_risk → lapsed\n"
        "      when was:\n        time: idle\n        gte: 60d\n"
        "      when now:\n        time: idle\n        gte: 90d"
    ) in text


def test_a_journey_added_or_removed_is_said_so() -> None:
    other = RETAIL.replace("journey: retail", "journey: outlet")
    diffs = diff_rulesets([_journey(RETAIL)], [_journey(other)])
    assert [d.lines()[0] for d in diffs] == [
        "journey retail: 2026.11.23 → (removed): no change",
        "journey outlet: (none) → 2026.11.23: no change",
    ]


def test_the_command_exits_1_on_differences_and_0_without(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = tmp_path / "retail.yaml"
    new.write_text(RETAIL.replace("    cooldown: 12h\n", "    cooldown: 1d\n"))
    assert main(["rules", "diff", str(RULES_DIR / "retail.yaml"), str(new)]) == EXIT_FAILED
    assert "~ action `free_shipping`: cooldown: 12h → 1d" in capsys.readouterr().out
    same = RULES_DIR / "retail.yaml"
    assert main(["rules", "diff", str(same), str(same)]) == EXIT_OK


def test_diff_piped_into_a_reader_that_leaves_is_quiet(tmp_path: Path) -> None:
    """`journeyman rules diff OLD NEW | head`: head closes the pipe before the diff is printed;
    the command must end without a traceback."""
    import subprocess
    import sys

    edited = tmp_path / "retail.yaml"
    edited.write_text(RETAIL.replace("    priority: 50\n", "    priority: 60\n"))
    command = [sys.executable, "-m", "server.tools.cli", "rules", "diff",
               str(RULES_DIR / "retail.yaml"), str(edited)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is written
    with process.stderr:
        errors = process.stderr.read().decode()
    assert process.wait(timeout=60) in (EXIT_OK, EXIT_FAILED)
    assert "Traceback" not in errors and "BrokenPipe" not in errors
