"""Caches derived from a compiled ruleset (`engine.per_object`): computed once per object, and
never what keeps a replaced ruleset alive."""

from __future__ import annotations

import gc
import itertools
import weakref

from engine.codec import decode_state, encode_state
from engine.compile import compile_ruleset
from engine.decide import decide
from engine.per_object import per_object
from engine.state import new_state
from engine.timers import next_due_ms
from server.decisions.outbox import ruleset_has_timers
from tests.rulesets import T0_MS, event, loaded


class Thing:
    """An object that takes weak references, as compiled journeys and rulesets do."""


def test_a_value_is_computed_once_per_object_and_each_object_has_its_own() -> None:
    computed: list[Thing] = []

    def compute(thing: Thing) -> int:
        computed.append(thing)
        return len(computed)

    values = per_object(compute)
    first, second = Thing(), Thing()
    assert (values(first), values(second), values(first), values(second)) == (1, 2, 1, 2)
    assert computed == [first, second]


def test_an_objects_value_goes_with_it_and_does_not_keep_it() -> None:
    counted = itertools.count(1)
    values = per_object(lambda thing: next(counted))
    thing = Thing()
    assert values(thing) == values(thing) == 1
    freed = weakref.ref(thing)
    del thing
    gc.collect()
    assert freed() is None
    # A new object, even one given the freed object's id, is computed anew.
    assert [values(Thing()) for _ in range(3)] == [2, 3, 4]


def test_a_ruleset_replaced_by_a_reload_is_freed_once_nothing_else_holds_it() -> None:
    # Each reload compiles a new ruleset; the codec's layouts, the timers' transitions and the
    # outbox's "has timers" were cached by it. A server reloading all day kept every one.
    ruleset = compile_ruleset([loaded("retail.yaml"), loaded("trial.yaml")])  # its own
    state = new_state(ruleset)
    _, state = decide(ruleset, state, event("page_view"), T0_MS)
    data = encode_state(ruleset, state)
    decode_state(data, ruleset)
    next_due_ms(ruleset, state)
    ruleset_has_timers(ruleset)
    freed = [weakref.ref(ruleset), *(weakref.ref(journey) for journey in ruleset.journeys)]
    del ruleset, state
    gc.collect()
    assert [ref() for ref in freed] == [None] * len(freed)
