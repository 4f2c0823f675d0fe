"""The table of targets as data: each figure beside its ceiling and target, nothing formatted.

`report.sections` fills these from the runs' figures; `report.markdown` is the one renderer that
turns them into RESULTS.md (numbers shown, ratios taken, verdicts said).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.report.targets import NOT_MEASURED, Target, known, ratio, verdict


@dataclass(frozen=True)
class Figure:
    """One line of a section's table: a measured figure, the ceiling measured beside it in the
    same run, and the target it is judged on, if any; None where a value was not measured."""

    name: str
    measured: float | None
    unit: str = ""  # "calls/s", "µs", "B", …; "" for a count
    ceiling: float | None = None
    ceiling_name: str = ""  # what the ceiling is: "echo", "decide()", …
    target: Target | None = None
    on_ratio: bool = False  # the target reads measured ÷ ceiling, not the figure itself
    note: str = ""  # what was measured, said when the target is not met
    missing: str = ""  # why the judged value is not there, said when it is not measured
    unjudged: str = ""  # why a measured figure is not judged all the same

    @property
    def ratio(self) -> float | None:
        return ratio(self.measured, self.ceiling)

    @property
    def judged(self) -> float | None:
        """The value the target reads: the ratio or the figure."""
        return self.ratio if self.on_ratio else self.measured

    @property
    def verdict(self) -> str:
        """met / not met: note / not measured: why; "—" without a target."""
        if self.target is not None and self.unjudged:
            return f"{NOT_MEASURED}: {self.unjudged}"
        value = self.judged
        return verdict(self.target, value, self.note if known(value) else self.missing)


Cell = str | float | int | None  # a number is shown as the figures are; None as "—"


@dataclass(frozen=True)
class Table:
    """A table of detail after a section's figures, with an optional line above it."""

    header: tuple[str, ...]
    rows: Sequence[Sequence[Cell]]
    caption: str = ""


@dataclass(frozen=True)
class Section:
    """A titled table of figures, one line on how they were measured, paragraphs or tables of
    detail after it, and the errors of the runs it reads (the figures still there are kept)."""

    title: str
    how: str
    figures: list[Figure]
    after: list[str | Table] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
