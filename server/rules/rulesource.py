"""Finding and reading rules files and scenario files on disk (the engine only sees text)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from engine.compile import Ruleset, compile_ruleset
from engine.errors import JourneymanError
from engine.rules.load import parse_journeys

log = logging.getLogger(__name__)

RULE_SUFFIXES = (".yaml", ".yml")
SCENARIO_FOLDER = "tests"


class RulesNotFound(JourneymanError):
    """A rules or scenario path does not exist or holds no YAML file."""


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in RULE_SUFFIXES)


def _expand(paths: list[str], folder_files: Callable[[Path], list[Path]], what: str) -> list[Path]:
    """Files as given; a folder becomes `folder_files(folder)`, which must not be empty."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files = folder_files(path)
            if not files:
                raise RulesNotFound(f"{name}: no {what} in this folder")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise RulesNotFound(f"{name}: no such file or folder")
    return found


def rule_files(paths: list[str]) -> list[Path]:
    """The journey files named by `paths`: files as given, folders' own YAML files (not tests/)."""
    return _expand(paths, _yaml_files, ".yaml journey files")


def _scenario_folder_files(folder: Path) -> list[Path]:
    tests = folder / SCENARIO_FOLDER
    return _yaml_files(tests if tests.is_dir() else folder)


def scenario_files(paths: list[str]) -> list[Path]:
    """Scenario files named by `paths`: files as given; for a folder, its `tests/` YAML files."""
    return _expand(paths, _scenario_folder_files, "scenario files (nor in its tests/ folder)")


def read_texts(files: list[Path]) -> list[tuple[str, str]]:
    """(source, text) pairs, the source being the path as the user will recognise it."""
    return [(str(path), path.read_text(encoding="utf-8")) for path in files]


def load_ruleset(paths: list[str]) -> Ruleset:
    """Read, validate and compile the journeys at `paths`. Raises RulesError or RulesNotFound.
    Warnings (valid rules that are probably not meant) are logged, not refused."""
    loaded = parse_journeys(read_texts(rule_files(paths)))
    for journey in loaded:
        for warning in journey.warnings:
            log.warning("%s", warning)
    return compile_ruleset(loaded)
