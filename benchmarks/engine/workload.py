"""A ruleset and its simulated shoppers' events, replayed through `decide` as the service would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmarks.engine.timing import samples_us
from benchmarks.traffic import TimedEvent, shopper_stream
from engine.compile import compile_ruleset
from engine.rules.load import parse_journeys
from engine.state import new_state

if TYPE_CHECKING:
    # Types only: at run time the benchmarks rely on the engine's public functions alone.
    from engine.compile import Ruleset
    from engine.event import Event, PropertyValue
    from engine.rules.load import LoadedJourney
    from engine.state import CustomerState

Traits = dict[str, dict[str, "PropertyValue"]]
Decider = Callable[["Ruleset", "CustomerState", "Event", int], tuple[Any, "CustomerState"]]


@dataclass(frozen=True, slots=True)
class Workload:
    """A ruleset and a stream of events from simulated shoppers, replayed as a service would."""

    loaded: list[LoadedJourney]
    ruleset: Ruleset
    events: list[TimedEvent]
    traits: Traits

    def fresh_states(self) -> dict[str, CustomerState]:
        """Each shopper as the store would first hold them: no journey yet, their traits set."""
        initial = new_state(self.ruleset)
        return {customer: initial.with_traits(t) for customer, t in self.traits.items()}

    def replay(self, step: Decider, states: dict[str, CustomerState]) -> int:
        """Run every event through `step`, keeping each shopper's state between their events."""
        ruleset = self.ruleset
        for timed in self.events:
            event = timed.event
            customer = event.customer_id
            _, states[customer] = step(ruleset, states[customer], event, timed.now_ms)
        return len(self.events)

    def per_event_us(self, step: Decider, repeats: int) -> list[float]:
        """µs per event of `step` in each of `repeats` replays from fresh states."""
        return samples_us(lambda states: self.replay(step, states), self.fresh_states, repeats)


def load_workload(source: str, text: str, shoppers: int, per_shopper: int) -> Workload:
    """The journey in `text` and the events of `shoppers` simulated shoppers."""
    loaded = parse_journeys([(source, text)])
    events, traits = shopper_stream(shoppers, per_shopper)
    return Workload(loaded, compile_ruleset(loaded), events, traits)
