"""The error family every part of journeyman raises."""

from __future__ import annotations

from dataclasses import dataclass


class JourneymanError(Exception):
    """Root of every error journeyman raises on purpose."""


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One mistake in a rules file: where it is, what is wrong, and what to write instead. A
    `warning` (from `engine.rules.lint`, with its `code`) does not stop the rules loading."""

    path: str
    line: int
    column: int
    message: str
    hint: str = ""
    severity: str = "error"  # or "warning"
    code: str = ""  # a warning's name, for `# allow: <code>`

    def __str__(self) -> str:
        label = f"warning [{self.code}]: " if self.severity == "warning" else ""
        text = f"{self.path}:{self.line}:{self.column}: {label}{self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class RulesError(JourneymanError):
    """A rules file is invalid. Carries every problem found in it, in file order."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.path, p.line, p.column))
        super().__init__("\n".join(str(p) for p in self.problems))


class StateDecodeError(JourneymanError):
    """Stored customer state could not be decoded at all (not msgpack, or not a state)."""


class StateFromNewerServer(JourneymanError):
    """Stored customer state was written by a newer journeyman, under a schema this build cannot
    read. Never read as a new customer: writing over it would lose what the newer server kept
    (during a rolling upgrade, older servers meet the new servers' states)."""

    def __init__(self, version: int, readable: int, what: str = "state schema") -> None:
        self.version = version
        self.readable = readable
        super().__init__(
            f"the customer's state was written by a newer journeyman ({what} {version}; this"
            f" server reads up to {readable}); nothing was changed: send the call to an upgraded"
            " server, and upgrade this one"
        )
