"""Domain errors of the service and the one place they become gRPC status codes."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from engine.errors import JourneymanError


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str  # the path of the field in the request, e.g. `event.properties["price"]`
    description: str  # what is wrong and what to send instead


class EventInvalid(JourneymanError):
    """A request has bad fields; carries every violation found, not only the first."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        fields = ", ".join(v.field for v in violations)
        super().__init__(f"invalid request: {fields}")


class Overloaded(JourneymanError):
    """The server is at its limit of concurrent calls and sheds this one."""


class EventIdReused(JourneymanError):
    """An event id seen before for this customer came with a different event."""


class Conflicted(JourneymanError):
    """Concurrent updates of one customer kept conflicting after every retry."""


def bad_request_status(error: EventInvalid) -> grpc.Status:
    """INVALID_ARGUMENT with a google.rpc.BadRequest naming every bad field."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    message = "; ".join(f"{v.field}: {v.description}" for v in error.violations)
    status = status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT, message=message[:1000], details=[detail]
    )
    return rpc_status.to_status(status)


async def abort(context: grpc.aio.ServicerContext[object, object], error: JourneymanError) -> None:
    """End the call with the status code that `error` stands for. Never returns."""
    if isinstance(error, EventInvalid):
        await context.abort_with_status(bad_request_status(error))
    elif isinstance(error, Overloaded):
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "server busy: retry with backoff")
    elif isinstance(error, Conflicted):
        await context.abort(grpc.StatusCode.ABORTED, f"{error}; retry the call")
    elif isinstance(error, EventIdReused):
        await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(error))
    else:
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"{error}; retry the call")
