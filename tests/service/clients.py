"""What the service tests do as a client: build events, retry ABORTED calls, read a customer."""

from __future__ import annotations

import grpc

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc

CLIENT_RETRIES = 50  # far more than any run needs; a bound so a bug cannot spin forever


def decide_request(
    event_id: str, customer: str, type_: str = "product_view", **properties: float
) -> pb.DecideRequest:
    props = {name: pb.Value(number_value=value) for name, value in properties.items()}
    event = pb.Event(
        event_id=event_id, customer_id=customer, type=type_, channel="web", properties=props
    )
    return pb.DecideRequest(event=event)


async def first_try(
    stub: pb_grpc.JourneyServiceStub, request: pb.DecideRequest
) -> pb.Decision | None:
    """The decision, or None when the call ended ABORTED (any other error fails the test)."""
    try:
        return (await stub.Decide(request, timeout=10)).decision
    except grpc.aio.AioRpcError as error:
        assert error.code() is grpc.StatusCode.ABORTED, error
        return None


async def until_applied(stub: pb_grpc.JourneyServiceStub, request: pb.DecideRequest) -> pb.Decision:
    """Decide, retrying ABORTED answers as the status message asks, and degraded ones (not
    stored: Redis was slow, e.g. on a busy test machine) as a client that needs them applied."""
    for _ in range(CLIENT_RETRIES):
        decision = await first_try(stub, request)
        if decision is not None and not decision.degraded:
            return decision
    raise AssertionError(f"{request.event.event_id} still ABORTED after {CLIENT_RETRIES} tries")


async def customer_journey(stub: pb_grpc.JourneyServiceStub, customer: str) -> pb.CustomerJourney:
    request = pb.GetCustomerRequest(customer_id=customer)
    (journey,) = (await stub.GetCustomer(request)).customer.journeys
    return journey
