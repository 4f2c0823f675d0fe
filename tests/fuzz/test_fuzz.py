"""Each atheris target runs for a bounded time in the suite; any crash it finds fails the run
and becomes a regression test (`tests/unit/engine/rules/test_yaml_tree.py` holds the first)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris (dev dependency) is not installed")
pytestmark = pytest.mark.slow  # a minute or two with atheris' start-up: not in the fast loop

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SECONDS = {"fuzz_rules.py": 15, "fuzz_requests.py": 10}


@pytest.mark.parametrize("target", sorted(SECONDS))
def test_fuzz_target_finds_no_crash_in_its_time(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    if target == "fuzz_rules.py":
        for seed in [*ROOT.glob("rules/*.yaml"), *ROOT.glob("tests/unit/engine/rules/malformed/*")]:
            shutil.copy(seed, corpus / seed.name)
    result = subprocess.run(
        [sys.executable, str(HERE / target), f"-max_total_time={SECONDS[target]}",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True, text=True, cwd=ROOT, timeout=SECONDS[target] + 120, check=False,
    )  # fmt: skip
    crashes = sorted(tmp_path.glob("crash-*"))
    assert result.returncode == 0 and not crashes, (
        f"{target} found a crash ({crashes}); add the input as a regression test:\n"
        + result.stderr[-4000:]
    )
