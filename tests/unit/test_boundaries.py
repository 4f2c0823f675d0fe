"""engine/ stays pure: it imports no transport, store or server code and no I/O module.

Read from the source with `ast` (nothing is imported): every `import` and `from ... import`
anywhere in a module (inside functions and under `if TYPE_CHECKING:` too), every
`importlib.import_module("...")` or `__import__("...")` with a literal name, and every call of the
I/O builtins. `DESIGN.md`: "`engine/` never imports `server/`, grpc or redis. `server/` owns all
I/O."
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import engine

ENGINE = Path(__file__).resolve().parents[2] / "engine"

# Outside the standard library, engine/ may use only these (STYLE.md, "Do / don't" 1; pydantic
# and ruamel for the rules model and its YAML reader).
THIRD_PARTY = frozenset({"numpy", "numba", "msgpack", "pydantic", "pydantic_core", "ruamel"})
# Standard-library modules that talk to files, processes or the network: the caller's job.
IO_MODULES = frozenset(
    {
        "asyncio", "fileinput", "ftplib", "glob", "http", "io", "mmap", "multiprocessing", "os",
        "pathlib", "select", "selectors", "shutil", "signal", "smtplib", "socket",
        "socketserver", "sqlite3", "ssl", "subprocess", "tempfile", "urllib", "webbrowser",
    }
)  # fmt: skip
IO_BUILTINS = frozenset({"open", "input", "print"})


def _modules() -> list[Path]:
    return sorted(ENGINE.rglob("*.py"))


def _imported_names(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in `tree`, relative ones skipped."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in {"__import__", "import_module"}
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _refusal(module: str) -> str | None:
    """Why engine/ may not import `module`, or None when it may."""
    top = module.split(".")[0]
    if top in {"engine", "__future__"}:
        return None
    if top in IO_MODULES:
        return "does I/O: hand engine/ the data instead (server/ owns all I/O)"
    if top in sys.stdlib_module_names:
        return None
    if top not in THIRD_PARTY:
        return f"is neither the standard library nor one of {sorted(THIRD_PARTY)}"
    return None


def _violations(path: Path, root: Path = ENGINE) -> list[str]:
    """Every refused import or I/O call in `path`, a module under `root`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    where = path.relative_to(root.parent)
    found = [
        f"{where}:{line}: imports {module}, which {reason}"
        for line, module in _imported_names(tree)
        if (reason := _refusal(module)) is not None
    ]
    found += [
        f"{where}:{node.lineno}: calls {node.func.id}(): return the data to the caller instead"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in IO_BUILTINS
    ]
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ENGINE.parent)))
def test_engine_modules_import_nothing_that_does_io(path: Path) -> None:
    assert _violations(path) == []


def test_the_public_surface_names_only_engine_modules() -> None:
    outside = {name: module for name, module in engine._EXPORTS.items() if _refusal(module)}
    assert outside == {}


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("import grpc", "grpc, which is neither"),
        ("from redis.asyncio import Redis", "redis.asyncio, which is neither"),
        ("from server.store import keys", "server.store, which is neither"),
        ("from journeyman.v1 import journeyman_pb2", "journeyman.v1, which is neither"),
        ("def f():\n    import socket", "socket, which does I/O"),
        ("import importlib\nimportlib.import_module('redis')", "redis, which is neither"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import grpc", "grpc"),
        ("def f(p):\n    return open(p).read()", "calls open()"),
    ],
)
def test_the_check_catches(tmp_path: Path, source: str, needle: str) -> None:
    """The guard itself: each of these, written in an engine module, is refused."""
    module = tmp_path / "engine" / "bad.py"
    module.parent.mkdir()
    module.write_text(source, encoding="utf-8")
    (violation,) = _violations(module, module.parent)
    assert needle in violation


def test_the_check_lets_the_engine_s_own_kind_of_imports_through() -> None:
    for module in ("numpy", "numba.core", "msgpack", "hashlib", "engine.kernels.codes"):
        assert _refusal(module) is None, module
