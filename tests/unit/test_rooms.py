"""server/'s rooms keep their order and no module imports itself round a circle.

Read from the source with `ast` (nothing is imported): every `import` and `from ... import` of
a server module, at module level or inside a function, except under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"
# Lowest first: a room may import the rooms before it in this list, and itself.
ROOMS = (
    "core", "store", "protocol", "decisions", "rules", "analytics", "api", "runtime", "tools",
)  # fmt: skip


def _modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(SERVER.parent).with_suffix("").parts): path
        for path in SERVER.rglob("*.py")
        if path.name != "__init__.py"
    }


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path, known: set[str]) -> set[str]:
    """The server modules `path` imports (run-time imports only)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if name in known}


def _room(module: str) -> str:
    return module.split(".")[1]


GRAPH = {name: _imports(path, set(_modules())) for name, path in _modules().items()}


def test_every_server_module_lives_in_a_room() -> None:
    homeless = [name for name in GRAPH if _room(name) not in ROOMS]
    assert homeless == [], f"put these in one of {ROOMS} (server/__init__.py says which)"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_a_module_imports_no_room_above_its_own(module: str) -> None:
    rank = ROOMS.index(_room(module))
    upward = sorted(name for name in GRAPH[module] if ROOMS.index(_room(name)) > rank)
    assert upward == [], f"{module} ({_room(module)}) reaches up to {upward}"


def test_no_import_circles() -> None:
    circles = []
    visiting: list[str] = []
    done: set[str] = set()

    def walk(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            circles.append(visiting[visiting.index(module) :] + [module])
            return
        visiting.append(module)
        for imported in sorted(GRAPH[module]):
            walk(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(GRAPH):
        walk(module)
    assert circles == [], " ; ".join(" -> ".join(circle) for circle in circles)


def test_the_checks_see_an_upward_import() -> None:
    # The graph is read, not assumed: the server's app does import the servicer (api).
    assert "server.api.service" in GRAPH["server.runtime.app"]
    assert ROOMS.index("api") < ROOMS.index("runtime")
