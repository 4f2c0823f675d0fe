"""What a commit writes for timers: the customer's next due time and the outbox entries.

Both go into the commit script's call (`server.store.redis_store.TimerWrite`), so they cost no
round trip of their own: the due time whenever the ruleset has timed transitions, the outbox
entries for the decisions timers make and, when the server publishes them
(`JOURNEYMAN_OUTBOX_STAGE_CHANGES=1`), for every event that changed a stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from engine.compile import Ruleset
from engine.per_object import per_object
from engine.state import CustomerState
from engine.timers import has_timers, next_due_ms
from journeyman.v1 import journeyman_pb2 as pb
from server.store.redis_store import Store, TimerWrite

TIMER_KIND = "timer"
EVENT_KIND = "event"

# `engine.timers.has_timers`, once per ruleset.
ruleset_has_timers: Callable[[Ruleset], bool] = per_object(has_timers)


def decision_id(customer_id: str, event_id: str) -> str:
    """The same for every delivery of one decision: what consumers deduplicate by."""
    return f"{customer_id}/{event_id}"


def outbox_entry(kind: str, answer: pb.Decision) -> tuple[str, bytes]:
    """(kind, `OutboxEntry` bytes) of one decision; the stream gives it its id."""
    entry = pb.OutboxEntry(
        decision_id=decision_id(answer.customer_id, answer.event_id), kind=kind, decision=answer
    )
    return kind, entry.SerializeToString()


def moved(answer: pb.Decision) -> bool:
    """True when the decision moved the customer in some journey."""
    return any(journey.changed for journey in answer.journeys)


def event_timer_write(
    store: Store, ruleset: Ruleset, state: CustomerState, answers: Iterable[pb.Decision]
) -> TimerWrite | None:
    """What an event commit writes for timers: None when nothing (no timed transition, stage
    changes not published, or a Redis Cluster)."""
    timers = ruleset_has_timers(ruleset)
    if not store.timers_supported or not (timers or store.outbox_stage_changes):
        return None
    published = (
        [outbox_entry(EVENT_KIND, a) for a in answers if moved(a)]
        if store.outbox_stage_changes
        else []
    )
    due = next_due_ms(ruleset, state) if timers else None
    return TimerWrite(due, published, index=timers)
