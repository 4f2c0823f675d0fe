"""`engine.backtest`: counts of a replay, where two rulesets diverge, and why."""

from __future__ import annotations

from pathlib import Path

from engine.backtest import compare, explain, final_stages, partition_of, summarize
from engine.compile import Ruleset, compile_ruleset
from engine.event import Event
from engine.many import ManyDecisions, decide_many
from engine.rules.load import parse_journeys

RETAIL = Path(__file__).resolve().parents[3] / "rules" / "retail.yaml"
DAY_MS = 86_400_000
START_MS = 1_767_600_000_000
STEPS = ("product_view", "product_view", "add_to_cart", "checkout_started", "purchase")


def ruleset(edit: tuple[str, str] | None = None) -> Ruleset:
    text = RETAIL.read_text(encoding="utf-8")
    if edit is not None:
        text = text.replace(*edit, 1)
    return compile_ruleset(parse_journeys([(str(RETAIL), text)]))


def shoppers(n: int) -> list[tuple[Event, int]]:
    return [
        (Event(f"e{c}-{s}", f"c{c}", step, "web", "shop", {"amount": 40.0}), START_MS + s * DAY_MS)
        for s, step in enumerate(STEPS)
        for c in range(n)
    ]


def decided(rules: Ruleset, events: list[tuple[Event, int]]) -> ManyDecisions:
    return decide_many(rules, [e for e, _ in events], [t for _, t in events])


def test_a_summary_counts_what_was_decided_and_partitions_add_up() -> None:
    rules, events = ruleset(), shoppers(30)
    summary = summarize(decided(rules, events))
    assert (summary.events, summary.customers, summary.duplicates) == (150, 30, 0)
    assert summary.final_stage[("retail", "purchase")] == 30
    assert summary.transitions[("retail", "checkout_started")] == 30
    assert sum(summary.offered.values()) + sum(summary.held_out.values()) > 0
    assert sum(summary.friction_reached.values()) == 30
    assert summary.conversions
    halves = [
        summarize(decided(rules, [x for x in events if partition_of(x[0].customer_id, 2) == p]))
        for p in (0, 1)
    ]
    assert halves[0].merge(halves[1]) == summary
    assert set(final_stages(decided(rules, events))) == {f"c{c}" for c in range(30)}


def test_the_same_rules_never_diverge_and_a_change_is_found_and_explained() -> None:
    old, events = ruleset(), shoppers(10)
    assert compare(decided(old, events), decided(old, events)) == []
    new = ruleset(("event: checkout_started", "event: purchase"))
    divergences = compare(decided(old, events), decided(new, events))
    assert {d.customer_id for d in divergences} == {f"c{c}" for c in range(10)}
    first = divergences[0]
    assert events[first.event][0].type == "checkout_started"
    own = [x for x in events if x[0].customer_id == first.customer_id]
    upto = [x for x in own if x[1] <= events[first.event][1]]
    why = explain(old, new, upto)
    assert any("checkout_started" in line and "line" in line for line in why.old)
    assert any("did not fire" in line for line in why.new)
