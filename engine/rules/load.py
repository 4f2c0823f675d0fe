"""Rules text → validated `Journey`, or every mistake in the file at once with `file:line:column`.

Reading files is the caller's job (`server.rules.rulesource`); this module only sees text.
Mistakes of shape (unknown keys, missing keys, wrong kinds of values) are explained by
`engine.rules.explain`, those of meaning (unknown stages, empty conditions) by
`engine.rules.check`; a file's problems are all reported together.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pydantic import ValidationError

from engine.errors import RuleProblem, RulesError
from engine.rules.check import check_journey
from engine.rules.explain import problems_from_validation
from engine.rules.lint import lint_journey
from engine.rules.model import Journey
from engine.rules.yaml_tree import YamlTree, parse_yaml


@dataclass(frozen=True, slots=True)
class LoadedJourney:
    """A journey that passed every check, with what compilation and explanations need."""

    model: Journey
    source: str
    digest: str  # sha256 of the text
    transition_lines: tuple[int, ...]
    name_line: int = 1  # where `journey:` is written, for problems across files
    warnings: tuple[RuleProblem, ...] = ()  # `engine.rules.lint`: valid, but probably unmeant


def _not_a_journey(tree: YamlTree) -> RuleProblem:
    example = "see rules/README.md for a complete example"
    if tree.data is None:
        return tree.problem(
            (),
            "this file has no journey in it",
            f"start it with `journey: <name>`, `version:` and `stages:`; {example}",
        )
    if isinstance(tree.data, list):
        return tree.problem(
            (),
            "a journey file is `key: value` lines, not a list",
            "remove the `- ` before `journey:` and the indentation after it",
        )
    return tree.problem(
        (),
        "a journey file is `key: value` lines, starting with `journey: <name>`",
        f"start the file with `journey: <name>`; {example}",
    )


def _once(problems: list[RuleProblem]) -> list[RuleProblem]:
    """Each problem once, even if two checks found the very same mistake at the same place."""
    return list(dict.fromkeys(problems))


def parse_journey(text: str, source: str) -> LoadedJourney:
    """Validate one journey file's text. Raises `RulesError` listing every problem found."""
    tree = parse_yaml(text, source)
    problems = list(tree.problems)
    if not isinstance(tree.data, dict):
        raise RulesError([*problems, _not_a_journey(tree)])
    try:
        journey = Journey.model_validate(tree.data)
    except ValidationError as error:
        problems.extend(problems_from_validation(error, tree, Journey, condition_shapes=False))
        problems.extend(check_journey(tree))
        if not problems:  # a condition rule of the model that check.py does not know yet
            problems = problems_from_validation(error, tree, Journey)
        raise RulesError(_once(problems)) from error
    problems.extend(check_journey(tree))
    if problems:
        raise RulesError(_once(problems))
    return LoadedJourney(
        model=journey,
        source=source,
        digest=hashlib.sha256(text.encode()).hexdigest(),
        transition_lines=tuple(
            tree.position(("transitions", i))[0] for i in range(len(journey.transitions))
        ),
        name_line=tree.position(("journey",))[0],
        warnings=tuple(lint_journey(tree, journey, text)),
    )


def parse_journeys(files: list[tuple[str, str]]) -> list[LoadedJourney]:
    """Validate several `(source, text)` files as one ruleset; every file's problems at once."""
    loaded: list[LoadedJourney] = []
    problems: list[RuleProblem] = []
    for source, text in files:
        try:
            loaded.append(parse_journey(text, source))
        except RulesError as error:
            problems.extend(error.problems)
    seen: dict[str, str] = {}
    for journey in loaded:
        first = seen.setdefault(journey.model.journey, journey.source)
        if first != journey.source:
            problems.append(
                RuleProblem(
                    journey.source,
                    journey.name_line,
                    1,
                    f"journey `{journey.model.journey}` is also defined in {first}",
                    "give each journey file its own `journey:` name",
                )
            )
    if problems:
        raise RulesError(problems)
    return loaded
