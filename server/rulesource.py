"""Finding and reading rules files and scenario files on disk (the engine only sees text)."""

from __future__ import annotations

from pathlib import Path

from engine.compile import Ruleset, compile_ruleset
from engine.errors import JourneymanError
from engine.rules.load import parse_journeys

RULE_SUFFIXES = (".yaml", ".yml")
SCENARIO_FOLDER = "tests"


class RulesNotFound(JourneymanError):
    """A rules or scenario path does not exist or holds no YAML file."""


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in RULE_SUFFIXES)


def rule_files(paths: list[str]) -> list[Path]:
    """The journey files named by `paths`: files as given, folders' own YAML files (not tests/)."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files = _yaml_files(path)
            if not files:
                raise RulesNotFound(f"{name}: no .yaml journey files in this folder")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise RulesNotFound(f"{name}: no such file or folder")
    return found


def scenario_files(paths: list[str]) -> list[Path]:
    """Scenario files named by `paths`: files as given; for a folder, its `tests/` YAML files."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            folder = path / SCENARIO_FOLDER if (path / SCENARIO_FOLDER).is_dir() else path
            files = _yaml_files(folder)
            if not files:
                raise RulesNotFound(f"{name}: no scenario files in {folder}")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise RulesNotFound(f"{name}: no such file or folder")
    return found


def read_texts(files: list[Path]) -> list[tuple[str, str]]:
    """(source, text) pairs, the source being the path as the user will recognise it."""
    return [(str(path), path.read_text(encoding="utf-8")) for path in files]


def load_ruleset(paths: list[str]) -> Ruleset:
    """Read, validate and compile the journeys at `paths`. Raises RulesError or RulesNotFound."""
    return compile_ruleset(parse_journeys(read_texts(rule_files(paths))))
