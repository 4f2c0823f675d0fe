"""Domain errors of the service and the one place they become gRPC status codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from engine.errors import JourneymanError, StateFromNewerServer


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


class Busy(JourneymanError):
    """The server could not store the event before the caller's deadline (its own queue, not
    Redis, held it): nothing is answered as if stored; the caller sends it again after
    `retry_after_s`, with the same event id (a copy that was stored after all is answered as a
    duplicate)."""

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            f"server busy: the event was not stored before the deadline; send it again (same"
            f" event_id) in {retry_after_s * 1000:.0f} ms or give it a longer deadline"
        )


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


def retry_status(message: str, retry_after_s: float) -> grpc.Status:
    """RESOURCE_EXHAUSTED with a google.rpc.RetryInfo saying when to try again."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(retry_after_s * 1e9))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(
        code=code_pb2.RESOURCE_EXHAUSTED, message=message[:1000], details=[detail]
    )
    return rpc_status.to_status(status)


# How long a shed caller waits before trying again (admission has no queue to measure).
SHED_RETRY_AFTER_S = 0.1


def status_code(error: JourneymanError) -> grpc.StatusCode:
    """The status code `error` stands for (what `abort` ends a call with)."""
    if isinstance(error, EventInvalid):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, Busy):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(error, Conflicted):
        return grpc.StatusCode.ABORTED
    if isinstance(error, EventIdReused):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(error, StateFromNewerServer):
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.UNAVAILABLE


async def abort(
    context: grpc.aio.ServicerContext[object, object], error: JourneymanError
) -> NoReturn:
    """End the call with the status code that `error` stands for. Never returns."""
    if isinstance(error, EventInvalid):
        await context.abort_with_status(bad_request_status(error))
    elif isinstance(error, Busy):
        await context.abort_with_status(retry_status(str(error), error.retry_after_s))
    elif isinstance(error, Conflicted):
        await context.abort(grpc.StatusCode.ABORTED, f"{error}; retry the call")
    elif isinstance(error, (EventIdReused, StateFromNewerServer)):
        await context.abort(status_code(error), str(error))
    else:
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"{error}; retry the call")
    raise AssertionError("context.abort returned")  # it raises, always
