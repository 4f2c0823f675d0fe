"""The kernel benchmarks' tables: for the terminal and for `benchmarks/results/kernels.md`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmarks.engine.figures import Figure


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([lines[0], "|" + "---|" * len(rows[0]), *lines[1:]])


def figure_rows(figures: list[Figure]) -> list[list[str]]:
    header = ["figure", "measured", "target", "verdict", "ratio / note"]
    return [
        header,
        *([f.name, f.shown(), f.target or "—", f.verdict or "—", f.note] for f in figures),
    ]


def breakdown_rows(parts: list[tuple[str, float, float]], decide_us: float) -> list[list[str]]:
    """One row per step, their sum, then decide() timed without instruments."""
    total_us = sum(us for name, _, us in parts if not name.startswith(" "))  # indented: included
    header = ["step of decide()", "calls/event", "own µs/event", "share"]
    rows = [
        [name, f"{calls:.2f}", _small_us(us), f"{us / total_us:.0%}"] for name, calls, us in parts
    ]
    rows.append(["sum of the steps (instrumented replay)", "", f"{total_us:.2f}", "100%"])
    rows.append(["decide() without instruments", "", f"{decide_us:.2f}", ""])
    return [header, *rows]


def _small_us(us: float) -> str:
    """Steps under 0.1 µs are within the instruments' error, which can push them below zero."""
    return f"{us:.2f}" if us >= 0.1 else "< 0.1"


def write_results(
    path: Path, info: dict[str, str], tables: list[tuple[str, str]], notes: Sequence[str] = ()
) -> None:
    """The results file: the machine, each titled table, then any notes on what was skipped."""
    intro = (
        "Written by `python -m benchmarks.engine.kernels`; `benchmarks/README.md` explains each "
        "figure."
    )
    lines = ["# Kernel benchmarks", "", intro, ""]
    lines += [f"- **{key}**: {value}" for key, value in info.items()]
    for title, table in tables:
        lines += ["", f"## {title}", "", table]
    if notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
