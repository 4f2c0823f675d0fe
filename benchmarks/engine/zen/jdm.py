"""A journey as a zen-engine decision graph (JDM), built from the loaded rules.

The graph is what a zen-engine user would draw in the JDM editor for one event:

    request → facts (expressions) → transitions (table, first hit)
            → actions (table, collect) → response

- **facts**: for each counter, what this event adds to it (`counted.<name>`) and its value with
  the event (`counters.<name>`, from `counters_before`); for each friction signal, whether this
  event is one (`fired.<id>`); the friction score with this event (`friction.score`, from
  `friction_decayed`) and the index of its level (`friction.rank`).
- **transitions**: one row per transition, in file order, first hit: the stages it leaves (its
  `from`, less its `to`: a transition into the current stage is skipped) and its `when`; it
  outputs `transition.to` and `transition.id`.
- **actions**: one row per action, collect: the stage after the transition in its `stages`, one
  of its `segments`, its `when`, and not `blocked` (by cooldown or cap); it outputs the action and
  its score (priority plus the boosts that hold) into `eligible`.

Each node reads the request and the outputs of the nodes before it (an edge from each), and the
response holds only what the nodes computed: zen-engine merges the outputs arriving at a node.
(Measured: this costs no more per call than a chain of nodes that pass their input through, and
the answer converted back to Python is smaller.)

`python -m benchmarks.engine.zen.jdm` writes the graph of `rules/retail.yaml` to
`benchmarks/engine/zen/retail.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks import ROOT
from benchmarks.engine.zen.expressions import Scope, expression, literal, member, text
from engine.rules.load import parse_journeys
from engine.rules.model import Action, Journey, Transition

RETAIL_RULES = ROOT / "rules" / "retail.yaml"
RETAIL_GRAPH = Path(__file__).with_name("retail.json")

# Actions and boosts are read after the transition: a customer who just moved has spent no time in
# the new stage yet.
_IN_STAGE_AFTER = "(transition.to != null ? 0 : in_stage_ms)"
_STAGE_AFTER = "transition.to ?? stage"


def _node(
    node_id: str, kind: str, name: str, content: dict[str, Any] | None = None
) -> dict[str, Any]:
    node: dict[str, Any] = {"id": node_id, "type": kind, "name": name}
    if content is not None:
        node["content"] = content
    return node


def _column(column_id: str, name: str, field: str = "") -> dict[str, str]:
    """A table column; an input without `field` holds a whole boolean expression per cell."""
    return {"id": column_id, "name": name, "field": field}


def _stages(listed: str | list[str], journey: Journey, leaving_for: str | None = None) -> str:
    """A stage cell: the stages listed ("*": all), less `leaving_for`; empty matches any."""
    every = [stage.id for stage in journey.stages]
    chosen = every if listed == "*" else [listed] if isinstance(listed, str) else listed
    chosen = [stage for stage in chosen if stage != leaving_for]
    if leaving_for is None and len(chosen) == len(every):
        return ""
    return ", ".join(text(stage) for stage in chosen)


def _facts(journey: Journey) -> dict[str, Any]:
    scope = Scope(journey)
    expressions: list[tuple[str, str]] = []
    for name, counter in journey.counters.items():
        when = expression(counter.when, scope)
        if counter.sum is None:
            amount = "1"
        else:
            value = member("event.properties", counter.sum)
            amount = f"(type({value}) == 'number' ? {value} : 0)"
        expressions.append((f"counted.{name}", f"({when}) ? {amount} : 0"))
        expressions.append((f"counters.{name}", f"counters_before.{name} + $.counted.{name}"))
    friction = journey.friction
    if friction is not None:
        for signal in friction.signals:
            expressions.append((f"fired.{signal.id}", expression(signal.when, scope)))
        weights = [f"($.fired.{s.id} ? {literal(s.weight)} : 0)" for s in friction.signals]
        expressions.append(("friction.score", " + ".join(["friction_decayed", *weights])))
        rank = "0"
        for index, threshold in list(enumerate(friction.levels.values()))[1:]:
            rank = f"($.friction.score >= {literal(threshold)} ? {index} : {rank})"
        expressions.append(("friction.rank", rank))
    return {
        "expressions": [{"id": key, "key": key, "value": value} for key, value in expressions],
    }


def _transition_row(transition: Transition, journey: Journey) -> dict[str, str] | None:
    leaving = _stages(transition.from_, journey, leaving_for=transition.to)
    if not leaving or transition.when is None or transition.is_timed:
        return None  # it only leads into the stage it leaves, or fires on time, not on events
    name = transition.id or f"to_{transition.to}"
    return {
        "_id": name,
        "stage": leaving,
        "when": expression(transition.when, Scope(journey)),
        "to": text(transition.to),
        "transition": text(name),
    }


def _transitions(journey: Journey) -> dict[str, Any]:
    rows = [_transition_row(t, journey) for t in journey.transitions]
    return {
        "hitPolicy": "first",
        "inputs": [_column("stage", "Stage", "stage"), _column("when", "When")],
        "outputs": [_column("to", "To", "to"), _column("transition", "Transition", "id")],
        "rules": [row for row in rows if row is not None],
        "outputPath": "transition",
    }


def _score(action: Action, scope: Scope) -> str:
    boosts = [f"(({expression(b.when, scope)}) ? {literal(b.add)} : 0)" for b in action.boosts]
    return " + ".join([literal(action.priority), *boosts])


def _action_row(action: Action, journey: Journey) -> dict[str, str]:
    scope = Scope(journey, in_stage_ms=_IN_STAGE_AFTER)
    segments = [expression(journey.segments[s].when, scope) for s in action.segments or []]
    return {
        "_id": action.id,
        "stage": _stages(action.stages, journey),
        "segment": " or ".join(f"({segment})" for segment in segments),
        "when": "" if action.when is None else expression(action.when, scope),
        "offerable": f"not blocked.{action.id}",
        "action": text(action.id),
        "score": _score(action, scope),
    }


def _actions(journey: Journey) -> dict[str, Any]:
    return {
        "hitPolicy": "collect",
        "inputs": [
            _column("stage", "Stage after the transition", _STAGE_AFTER),
            _column("segment", "Segment"),
            _column("when", "When"),
            _column("offerable", "Not in cooldown or capped"),
        ],
        "outputs": [_column("action", "Action", "action"), _column("score", "Score", "score")],
        "rules": [_action_row(action, journey) for action in journey.actions],
        "outputPath": "eligible",
    }


def journey_graph(journey: Journey) -> dict[str, Any]:
    """The JDM decision graph of one journey's per-event logic (see the module docstring)."""
    nodes = [
        _node("request", "inputNode", "Request"),
        _node("facts", "expressionNode", "Counters, friction", _facts(journey)),
        _node("transitions", "decisionTableNode", "Transitions", _transitions(journey)),
        _node("actions", "decisionTableNode", "Eligible actions", _actions(journey)),
        _node("response", "outputNode", "Response"),
    ]
    ids = [node["id"] for node in nodes]
    # Every node hears from every node before it, the response from all but the request.
    edges = [
        {"id": f"{source}-{target}", "sourceId": source, "targetId": target}
        for position, target in enumerate(ids)
        for source in ids[:position]
        if not (target == "response" and source == "request")
    ]
    return {"contentType": "application/vnd.gorules.decision", "nodes": nodes, "edges": edges}


def graph_text(graph: dict[str, Any]) -> str:
    """The graph as the JSON file holds it."""
    return json.dumps(graph, indent=2, ensure_ascii=False) + "\n"


def retail_graph() -> dict[str, Any]:
    """The graph of `rules/retail.yaml`."""
    (loaded,) = parse_journeys([(str(RETAIL_RULES), RETAIL_RULES.read_text())])
    return journey_graph(loaded.model)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the zen-engine graph of the retail rules.")
    parser.add_argument("--output", type=Path, default=RETAIL_GRAPH)
    args = parser.parse_args(argv)
    args.output.write_text(graph_text(retail_graph()))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
