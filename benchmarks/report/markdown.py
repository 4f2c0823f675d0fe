"""The one renderer: sections of figures (`report.table`) to RESULTS.md.

Every number in the file is shown by `shown`, every figure's line by `figure_cells`, every table
by `markdown_table`: a figure looks the same in its section and in the summary of targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from benchmarks.report.table import Cell, Figure, Section, Table
from benchmarks.report.targets import MET, NONE, NOT_MEASURED, NOT_MET, known

FIGURE_HEADER = ("figure", "measured", "ceiling (same run)", "ratio", "target", "verdict")
SUMMARY_HEADER = ("§", "figure", "judged", "target", "verdict")


def shown(value: object, unit: str = "") -> str:
    """A figure for a table: thousands separated from 100 up, three significant digits below."""
    if not isinstance(value, int | float) or not known(value):
        return NONE
    number = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if unit == "×":
        return f"{number}×"
    return f"{number} {unit}".strip()


def _text(cell: Cell) -> str:
    return cell if isinstance(cell, str) else shown(cell)


def _escaped(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    lines = ["| " + " | ".join(_escaped(c) for c in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_escaped(_text(c)) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def figure_cells(figure: Figure) -> tuple[str, str, str, str, str, str]:
    """A figure's line: name, measured, ceiling (and what it is), ratio, target, verdict."""
    ceiling = shown(figure.ceiling, figure.unit)
    if figure.ceiling_name and ceiling != NONE:
        ceiling = f"{ceiling} ({figure.ceiling_name})"
    target = figure.target.shown if figure.target else NONE
    measured = shown(figure.measured, figure.unit)
    return (figure.name, measured, ceiling, shown(figure.ratio, "×"), target, figure.verdict)


def judged_text(figure: Figure) -> str:
    """The value its target reads, as shown: the ratio or the figure; "—" without a target."""
    if figure.target is None:
        return NONE
    return shown(figure.judged, "×" if figure.on_ratio else figure.unit)


def summary_rows(sections: Sequence[Section]) -> list[tuple[str, str, str, str, str]]:
    """Every judged figure of every section: section number, figure, judged, target, verdict."""
    return [
        (str(number), f.name, judged_text(f), f.target.shown, f.verdict)
        for number, section in enumerate(sections, start=1)
        for f in section.figures
        if f.target is not None
    ]


def tally(sections: Sequence[Section]) -> dict[str, int]:
    """How many targets were met, not met, and not measured."""
    counts = {MET: 0, NOT_MET: 0, NOT_MEASURED: 0}
    for *_, said in summary_rows(sections):
        for kind in counts:
            if said == kind or said.startswith(f"{kind}:"):
                counts[kind] += 1
    return counts


def _block(block: str | Table) -> str:
    if isinstance(block, str):
        return block
    table = markdown_table(block.header, block.rows)
    return f"{block.caption}\n\n{table}" if block.caption else table


def section_markdown(number: int, section: Section) -> str:
    lines = [f"## {number}. {section.title}", ""]
    lines += [f"**Error**: {error}" for error in section.errors]
    if section.errors:
        lines.append("")
    if section.figures:
        lines += [markdown_table(FIGURE_HEADER, [figure_cells(f) for f in section.figures]), ""]
    lines += [f"How: {section.how}", ""]
    for block in section.after:
        lines += [_block(block), ""]
    return "\n".join(lines)


def document(
    title: str, intro: Sequence[str], machine: Mapping[str, str], sections: Sequence[Section]
) -> str:
    """The whole results file: title, intro, the machine, a summary of targets, each section."""
    counts = tally(sections)
    lines = [f"# {title}", "", *intro, ""]
    lines += [f"- **{key}**: {value}" for key, value in machine.items()]
    lines += ["", "## Targets at a glance", ""]
    lines.append(", ".join(f"{n} {kind}" for kind, n in counts.items()) + ".")
    lines += ["", markdown_table(SUMMARY_HEADER, summary_rows(sections)), ""]
    for number, section in enumerate(sections, start=1):
        lines.append(section_markdown(number, section))
    return "\n".join(lines).rstrip() + "\n"
