"""Which outbox entries a Subscribe call delivers: those that moved the customer in a requested
journey into a requested stage (journeyman.proto, SubscribeRequest)."""

from __future__ import annotations

import pytest

from journeyman.v1 import journeyman_pb2 as pb
from server.api.subscribe import wanted


def _entry(*outcomes: tuple[str, str, bool]) -> pb.OutboxEntry:
    """An entry whose decision has these (journey, stage now, moved) outcomes."""
    journeys = [pb.JourneyStage(journey=j, stage=s, changed=c) for j, s, c in outcomes]
    return pb.OutboxEntry(decision=pb.Decision(journeys=journeys))


# The trial timer moved the customer to `inactive`; retail, in the same decision, did not move.
TRIAL_MOVED = _entry(("retail", "consideration", False), ("trial", "inactive", True))


@pytest.mark.parametrize(
    ("journeys", "stages", "delivered"),
    [
        ((), (), True),
        (("trial",), (), True),
        (("retail",), (), False),  # retail is in the decision, but it did not move
        ((), ("inactive",), True),
        ((), ("consideration",), False),  # where retail stands, unmoved
        (("retail",), ("consideration",), False),
        (("trial",), ("inactive", "paid"), True),
        (("trial",), ("paid",), False),
        (("loan", "trial"), (), True),
    ],
)
def test_an_entry_is_delivered_for_a_journey_it_moved_into_a_stage_asked_for(
    journeys: tuple[str, ...], stages: tuple[str, ...], delivered: bool
) -> None:
    request = pb.SubscribeRequest(journeys=journeys, stages=stages)
    assert wanted(TRIAL_MOVED, request) is delivered
