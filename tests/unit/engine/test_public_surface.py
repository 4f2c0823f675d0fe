"""`engine`'s public surface: the README's Python example runs on it; importing stays cheap."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Using the engine from Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "README: no python block under 'Using the engine from Python'"
    return match.group(1)


def test_the_readme_example_runs_on_the_public_surface(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    example = _readme_example()
    assert "from engine import" in example
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    decision = namespace["decision"]
    assert decision.ruleset_version.startswith("retail@")  # type: ignore[attr-defined]


def test_every_exported_name_is_there_and_decide_is_the_function() -> None:
    import engine.decide  # the submodule must not hide the function

    assert sorted(engine.__all__) == sorted(engine._EXPORTS)
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name
    from engine import decide

    assert callable(decide) and decide.__module__ == "engine.decide"
    assert "decide" in dir(engine)


def test_importing_the_errors_does_not_load_numba_and_decide_stays_the_function() -> None:
    code = (
        "import sys, engine.errors; print('numba' in sys.modules)\n"
        "import engine.decide\n"  # binding the submodule must not hide the function
        "from engine import decide; print(decide.__module__, callable(decide))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "engine.decide", "True"]
