"""Admission and timing of every journeyman call: a cap on calls in flight, sheds beyond it.

A shed call gets RESOURCE_EXHAUSTED at once, so an overloaded server keeps serving its capacity
instead of queueing everyone into a timeout. Health and reflection are never shed or counted.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import grpc
from google.protobuf.message import DecodeError
from prometheus_client import Histogram

from server.core.metrics import BATCHES, CALL_SECONDS, SHED
from server.protocol.errors import SHED_RETRY_AFTER_S, retry_status

log = logging.getLogger(__name__)

SERVICE_PREFIX = "/journeyman.v1."

if TYPE_CHECKING:  # grpc's stubs make the handler generic; at run time it is not
    Handler = grpc.RpcMethodHandler[Any, Any]
# grpc's stubs type handlers for the sync server; under grpc.aio they are coroutines and async
# generators.
Unary = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
Streaming = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]


def rewrapped(
    handler: Handler,
    *,
    unary: Callable[[Unary], Unary],
    streaming: Callable[[Streaming], Streaming],
    request_deserializer: Callable[[bytes], Any] | None = None,
    server_streaming: Callable[[Streaming], Streaming] | None = None,
) -> Handler:
    """`handler` with its behaviour replaced by `unary(behaviour)` or `streaming(behaviour)`
    (a server-streaming one, one request in: `server_streaming`, by default `streaming`),
    keeping its kind and (de)serializers (or the `request_deserializer` given): what every
    journeyman interceptor needs."""
    serializers = {
        "request_deserializer": request_deserializer or handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        one = unary(cast(Unary, handler.unary_unary))
        return grpc.unary_unary_rpc_method_handler(one, **serializers)
    if handler.stream_stream is not None:
        many = streaming(cast(Streaming, handler.stream_stream))
        return grpc.stream_stream_rpc_method_handler(many, **serializers)
    if handler.unary_stream is not None:
        follow = (server_streaming or streaming)(cast(Streaming, handler.unary_stream))
        return grpc.unary_stream_rpc_method_handler(follow, **serializers)
    return handler


class CallGate(grpc.aio.ServerInterceptor):
    """Lets at most `limit` journeyman calls run at once and times each one.

    The count needs no lock: grpc.aio runs every handler on the one event loop thread.
    """

    def __init__(self, limit: int, activity: Callable[[], None] = lambda: None) -> None:
        """`activity()` is told of every call's start and end and every stream message (the
        event loop's spinner, `server.core.spinner`)."""
        self._limit = limit
        self._activity = activity
        self.in_flight = 0
        # A method's handler never changes while the server runs: wrap it once, not per call.
        self._wrapped: dict[str, Handler] = {}
        self._undecodable_said_at = -math.inf
        self._undecodable_unsaid = 0

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method: str = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        name = method.rsplit("/", 1)[-1]
        deserialize = handler.request_deserializer
        wrapped = self._wrapped[method] = rewrapped(
            handler,
            unary=lambda behaviour: self._unary(behaviour, name),
            streaming=lambda behaviour: self._streaming(behaviour, name),
            request_deserializer=None if deserialize is None else _tolerant(deserialize),
            server_streaming=lambda behaviour: self._following(behaviour, name),
        )
        return wrapped

    async def _admit(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self.in_flight >= self._limit:
            SHED.inc()
            await context.abort_with_status(
                retry_status(
                    f"server busy: {self._limit} calls in flight; retry with backoff",
                    SHED_RETRY_AFTER_S,
                )
            )
        self.in_flight += 1

    def _unary(self, behavior: Unary, name: str) -> Unary:
        timer = _CallTimer(name)

        async def admitted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await self._admit(context)
            self._activity()
            start = time.perf_counter()
            ended = False
            try:
                if isinstance(request, Undecodable):
                    await self._refuse_undecodable(request, name, context)
                response = await behavior(request, context)
                ended = True
                return response
            finally:
                self.in_flight -= 1
                self._activity()
                timer.observe(context, ended, time.perf_counter() - start)

        return admitted

    def _streaming(self, behavior: Streaming, name: str) -> Streaming:
        timer = _CallTimer(name)

        async def admitted(
            requests: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await self._admit(context)
            start = time.perf_counter()
            ended = False
            try:
                async for response in behavior(self._decoded(requests), context):
                    self._activity()
                    yield response
                ended = True
            except _UndecodableMessage as bad:
                # Refused here, once what the handler read before it is answered (a handler
                # may read ahead of its answers): the refusal ends the call.
                await self._refuse_undecodable(bad.request, name, context)
            finally:
                self.in_flight -= 1
                timer.observe(context, ended, time.perf_counter() - start)

        return admitted

    def _following(self, behavior: Streaming, name: str) -> Streaming:
        """A server-streaming call (Subscribe): it follows the outbox for as long as the client
        stays, so it does not hold one of the `limit` call slots."""

        async def followed(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                await self._refuse_undecodable(request, name, context)
            async for response in behavior(request, context):
                yield response

        return followed

    async def _decoded(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """A stream's messages; one that cannot be decoded ends them (and the call, refused
        with INVALID_ARGUMENT once the handler has answered those before it)."""
        async for request in requests:
            self._activity()
            if isinstance(request, Undecodable):
                raise _UndecodableMessage(request)
            yield request

    async def _refuse_undecodable(
        self, request: Undecodable, name: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        now = time.monotonic()
        self._undecodable_unsaid += 1
        if now - self._undecodable_said_at >= UNDECODABLE_LOG_INTERVAL_S:
            log.warning(
                "refused %d request(s) whose bytes are not a valid message (INVALID_ARGUMENT),"
                " e.g. %s: %s",
                self._undecodable_unsaid, name, request.reason,
            )  # fmt: skip
            self._undecodable_said_at, self._undecodable_unsaid = now, 0
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request bytes are not a valid {name} request message ({request.reason});"
            " send a serialized journeyman.v1 message, with every string in UTF-8",
        )


UNDECODABLE_LOG_INTERVAL_S = 10.0


class _UndecodableMessage(Exception):
    """Raised to a stream's handler in place of a message that did not parse."""

    def __init__(self, request: Undecodable) -> None:
        super().__init__(request.reason)
        self.request = request


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A request message whose bytes did not parse (its handler is never given it)."""

    reason: str


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """`deserialize`, answering Undecodable instead of raising: grpc would answer a raising
    deserializer with UNKNOWN and log a traceback per call, which any client could flood."""

    def tolerant(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as error:
            return Undecodable(str(error) or type(error).__name__)

    return tolerant


class _CallTimer:
    """`journeyman_call_seconds` of one method, labelled with the status code it ended with."""

    def __init__(self, method: str) -> None:
        self._method = method
        self._by_code: dict[str, Histogram] = {}  # labels() takes a lock: once per code

    def observe(
        self, context: grpc.aio.ServicerContext[Any, Any], ended: bool, seconds: float
    ) -> None:
        code = context.code()
        if code is None:
            # No status set: the handler returned (OK) or raised something not an abort.
            name = "OK" if ended else "UNKNOWN"
        else:
            name = code.name if isinstance(code, grpc.StatusCode) else _code_name(code)
        histogram = self._by_code.get(name)
        if histogram is None:
            histogram = self._by_code[name] = CALL_SECONDS.labels(method=self._method, code=name)
        BATCHES.observe(histogram, seconds)


def _code_name(code: object) -> str:
    """The name of a status given as a number (grpc.aio may hand back the int)."""
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return "UNKNOWN"
