"""A locust `User` that calls JourneyService over gRPC and reports every call to locust's stats.

This is locust's documented pattern for protocols other than HTTP (locust `examples/grpc`): a
synchronous grpc channel, made cooperative by `grpc.experimental.gevent.init_gevent()`, and a
client interceptor that times each call and fires `environment.events.request`.

Response times are fired in **microseconds**, not locust's usual milliseconds. Locust keeps its
percentile histogram in whole units below 100 and to two significant figures above, so a 0.8 ms
call would be stored as "1": in µs it is stored as 800. Every request name therefore ends in
``[µs]`` (e.g. ``shopper: Decide [µs]``), and so does every column locust prints or writes for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import User
from locust.env import Environment
from locust.exception import LocustError

from journeyman.v1 import journeyman_pb2_grpc as pb_grpc

# Before any channel exists: grpc's C core must hand its waiting to gevent, or one call in
# flight would block every simulated user of the process.
grpc_gevent.init_gevent()

UNIT = "µs"
CALL_TIMEOUT_S = 5.0  # a stuck call becomes a counted failure instead of a hung user


def request_name(label: str, method: str) -> str:
    """The name locust files a call under: who made it, which RPC, and the unit of its times."""
    return f"{label}: {method} [{UNIT}]"


class RpcFailed(Exception):
    """A failed call as locust files it: status code and details only. grpc's own error text
    carries a timestamp, which would make every failure a row of its own in locust's table."""

    @classmethod
    def from_error(cls, error: grpc.RpcError) -> RpcFailed:
        code = error.code() if isinstance(error, grpc.Call) else None
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        return cls(f"{code.name if code else 'UNKNOWN'}: {details}")


class TimingInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Times each unary call with `time.perf_counter` and reports it to locust in µs."""

    def __init__(self, environment: Environment, label: str) -> None:
        self._environment = environment
        self._label = label

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = str(client_call_details.method).rsplit("/", 1)[-1]
        started = time.perf_counter()
        outcome = continuation(client_call_details, request)
        exception: RpcFailed | None = None
        response_length = 0
        try:
            response_length = outcome.result().ByteSize()
        except grpc.RpcError as error:
            exception = RpcFailed.from_error(error)
        elapsed_us = (time.perf_counter() - started) * 1_000_000
        self._environment.events.request.fire(  # type: ignore[no-untyped-call]
            request_type="grpc",
            name=request_name(self._label, method),
            response_time=elapsed_us,
            response_length=response_length,
            exception=exception,
            context={"user": self._label},
        )
        return outcome  # the stub raises the same RpcError from it, as without the interceptor


class GrpcUser(User):
    """A simulated client holding one channel to the server named by `--host` (``host:port``).

    Subclasses set `label` (the prefix of their request names) and call `self.stub`; `call()`
    runs one RPC and returns None when it failed (the failure is already in locust's stats).
    """

    abstract = True
    label: ClassVar[str] = "grpc"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        if not self.host:
            raise LocustError(
                "no target: pass --host HOST:PORT (a gRPC address such as 127.0.0.1:50051)"
            )
        target = self.host.removeprefix("grpc://")
        self._channel = grpc.insecure_channel(target)
        intercepted = grpc.intercept_channel(
            self._channel, TimingInterceptor(environment, self.label)
        )
        self.stub = pb_grpc.JourneyServiceStub(intercepted)

    def call(self, rpc: Callable[..., Any], request: Any) -> Any:
        """`rpc(request)` with a deadline; None when it failed (already counted as a failure)."""
        try:
            return rpc(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError:
            return None

    def on_stop(self) -> None:
        self._channel.close()
