"""Who may import whom among the product, the benchmarks and the tests.

The benchmarks never import `tests` (what both need lives in the product, such as
`server/tools/event_logs.py`), and the product (`engine/`, `server/`) imports neither. Read from
the source with `ast`, as `test_boundaries.py` does: nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.unit.test_boundaries import _imported_names

REPOSITORY = Path(__file__).resolve().parents[2]
REFUSED = {
    "benchmarks": frozenset({"tests"}),
    "engine": frozenset({"tests", "benchmarks"}),
    "server": frozenset({"tests", "benchmarks"}),
}


def _modules() -> list[Path]:
    return sorted(path for top in REFUSED for path in (REPOSITORY / top).rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPOSITORY)))
def test_imports_go_only_from_tests_to_benchmarks_to_the_product(path: Path) -> None:
    refused = REFUSED[path.relative_to(REPOSITORY).parts[0]]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = [
        f"line {line}: {module}"
        for line, module in _imported_names(tree)
        if module.split(".")[0] in refused
    ]
    assert found == []
