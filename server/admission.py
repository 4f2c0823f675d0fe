"""Admission and timing of every journeyman call: a cap on calls in flight, sheds beyond it.

A shed call gets RESOURCE_EXHAUSTED at once, so an overloaded server keeps serving its capacity
instead of queueing everyone into a timeout. Health and reflection are never shed or counted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc

from server.metrics import CALL_SECONDS, SHED

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
) -> Handler:
    """`handler` with its behaviour replaced by `unary(behaviour)` or `streaming(behaviour)`,
    keeping its kind and (de)serializers: what every journeyman interceptor needs."""
    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        one = unary(cast(Unary, handler.unary_unary))
        return grpc.unary_unary_rpc_method_handler(one, **serializers)
    if handler.stream_stream is not None:
        many = streaming(cast(Streaming, handler.stream_stream))
        return grpc.stream_stream_rpc_method_handler(many, **serializers)
    return handler


class CallGate(grpc.aio.ServerInterceptor):
    """Lets at most `limit` journeyman calls run at once and times each one.

    The count needs no lock: grpc.aio runs every handler on the one event loop thread.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.in_flight = 0
        # A method's handler never changes while the server runs: wrap it once, not per call.
        self._wrapped: dict[str, Handler] = {}

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
        wrapped = self._wrapped[method] = rewrapped(
            handler,
            unary=lambda behaviour: self._unary(behaviour, name),
            streaming=lambda behaviour: self._streaming(behaviour, name),
        )
        return wrapped

    async def _admit(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self.in_flight >= self._limit:
            SHED.inc()
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"server busy: {self._limit} calls in flight; retry with backoff",
            )
        self.in_flight += 1

    def _unary(self, behavior: Unary, name: str) -> Unary:
        histogram = CALL_SECONDS.labels(method=name)

        async def admitted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await self._admit(context)
            start = time.perf_counter()
            try:
                return await behavior(request, context)
            finally:
                self.in_flight -= 1
                histogram.observe(time.perf_counter() - start)

        return admitted

    def _streaming(self, behavior: Streaming, name: str) -> Streaming:
        histogram = CALL_SECONDS.labels(method=name)

        async def admitted(
            requests: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await self._admit(context)
            start = time.perf_counter()
            try:
                async for response in behavior(requests, context):
                    yield response
            finally:
                self.in_flight -= 1
                histogram.observe(time.perf_counter() - start)

        return admitted
