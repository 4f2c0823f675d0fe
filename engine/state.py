"""A customer's journey state: plain arrays per journey, plus traits and recent event ids.

The arrays' layout belongs to the compiled journey (`CompiledRules.n_ints`, `n_floats` and the
offsets in it); `engine.codec` turns them into names for storage, so a state written under one
ruleset can be read under another.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from engine.compile import CompiledJourney, Ruleset
from engine.event import PropertyValue
from engine.kernels import codes
from engine.kernels.compiled import Features

_INT64 = np.dtype(np.int64)
_FLOAT64 = np.dtype(np.float64)

# How many recent event ids a customer's state remembers to recognise a repeated event.
DEDUPE_WINDOW = 16


@dataclass(frozen=True, slots=True)
class JourneyState:
    """One journey's state: `ints` (stage, times, counter heads, offer history), `floats`
    (counter buckets, friction signal scores). See `engine.kernels.codes.INT_*`."""

    ints: npt.NDArray[np.int64]
    floats: npt.NDArray[np.float64]

    @classmethod
    def initial(cls, journey: CompiledJourney) -> JourneyState:
        ints, floats = journey.initial_state()
        return cls(ints, floats)

    def fits(self, journey: CompiledJourney) -> bool:
        """True when the arrays have the layout `journey` was compiled with."""
        ints, floats = self.ints, self.floats
        return (
            ints.shape[0] == journey.rules.n_ints
            and floats.shape[0] == journey.rules.n_floats
            and (ints.dtype is _INT64 or ints.dtype == _INT64)  # `is`: the common, fast case
            and (floats.dtype is _FLOAT64 or floats.dtype == _FLOAT64)
            and ints.ndim == floats.ndim == 1
        )


@dataclass(frozen=True, slots=True)
class CustomerState:
    journeys: Mapping[str, JourneyState] = field(default_factory=dict)
    traits: Mapping[str, PropertyValue] = field(default_factory=dict)
    recent_event_ids: tuple[int, ...] = ()  # `event_id_hash` values, oldest first
    # `traits` as the kernels read them under the ruleset of that version (a content hash), made
    # by the decision that made this state: traits change far less often than events come, and
    # made anew each event they cost ~1.5 us of a ~24 us decide(). Not part of the state: never
    # stored or compared, and dropped with the traits it was made from (`with_traits`).
    trait_view: tuple[str, Features] | None = field(default=None, compare=False, repr=False)

    def journey(self, compiled: CompiledJourney) -> JourneyState:
        """This customer's state in `compiled`, initial if the journey has not seen them."""
        found = self.journeys.get(compiled.name)
        return found if found is not None else JourneyState.initial(compiled)

    def applied_at_ms(self, timestamp_ms: int) -> int:
        """When an event stamped `timestamp_ms` takes effect: at its own time, or at this
        customer's last event's if that is later (a customer's clock never runs backwards)."""
        latest = timestamp_ms
        for journey in self.journeys.values():
            latest = max(latest, int(journey.ints[codes.INT_LAST_EVENT_MS]))
        return latest

    def has_seen(self, event_id: str) -> bool:
        return event_id_hash(event_id) in self.recent_event_ids

    def with_traits(self, traits: Mapping[str, PropertyValue]) -> CustomerState:
        """A copy with `traits` merged over the current ones."""
        return replace(self, traits={**self.traits, **traits}, trait_view=None)


def new_state(ruleset: Ruleset) -> CustomerState:
    """The state of a customer no journey has seen."""
    return CustomerState(journeys={j.name: JourneyState.initial(j) for j in ruleset.journeys})


@functools.lru_cache(maxsize=4096)  # ~0.6 µs a hash; the store and the engine ask 3 times an event
def event_id_hash(event_id: str) -> int:
    """A 64-bit hash of an event id; 16 of them cost 128 bytes where the ids could cost 1 KiB."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


@functools.lru_cache(maxsize=65_536)  # a customer sends many events; hashing costs ~0.6 µs
def customer_hash(customer_id: str) -> int:
    """A stable 64-bit hash of a customer id: the seed of every holdout draw."""
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8, person=b"holdout").digest()
    return int.from_bytes(digest, "little")
