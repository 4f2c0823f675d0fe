"""atheris target: any bytes as a journey file give a journey or a RulesError, nothing else.

Run longer by hand, seeded with the examples and the malformed corpus:
`.venv/bin/python tests/fuzz/fuzz_rules.py -max_total_time=60 rules/`
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from engine.errors import RulesError
    from engine.rules.load import parse_journey


def one_input(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    try:
        parse_journey(text, "fuzz.yaml")
    except RulesError as error:
        assert error.problems, "a RulesError without problems"
        for problem in error.problems:
            assert problem.line >= 1 and problem.column >= 1 and problem.message


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
