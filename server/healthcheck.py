"""A small gRPC health client for container health checks: `python -m server.healthcheck [ADDRESS]`.

Asks the standard `grpc.health.v1.Health/Check` of the server at ADDRESS and exits 0 when it
answers SERVING, 1 for anything else: NOT_SERVING (kernels warming up, Redis not answering yet,
shutting down), an unknown service, nothing listening, or no answer within the timeout. ADDRESS
defaults to 127.0.0.1 on the port the settings give (`JOURNEYMAN_PORT`, else 50051); pass it when
`serve --port` chose another. Only grpc, the health messages and the settings are imported (no
numpy, no numba), so a check starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2

from server.config import ConfigError, Settings

LOCAL_HOST = "127.0.0.1"  # the check runs beside the server (in its container)
DEFAULT_TIMEOUT_S = 2.0  # well inside the Dockerfile's HEALTHCHECK --timeout
EXIT_SERVING = 0
EXIT_NOT_SERVING = 1
# The typed stubs of grpcio-health-checking leave HealthStub's methods out; calling the method by
# its path with the messages' own (de)serializers keeps the call fully typed.
CHECK_METHOD = "/grpc.health.v1.Health/Check"


def check(address: str, service: str = "", timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """The health status name (`SERVING`, `NOT_SERVING`, …) the server at `address` reports
    for `service` ("" = the whole server). Raises grpc.RpcError when it cannot be asked within
    `timeout_s` seconds."""
    with grpc.insecure_channel(address) as channel:
        health_check = channel.unary_unary(
            CHECK_METHOD,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        # wait_for_ready stays False: a refused connection fails at once instead of waiting.
        response = health_check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def _describe(error: grpc.RpcError) -> str:
    """`UNAVAILABLE: failed to connect…`: the status code and details a failed call carries."""
    if isinstance(error, grpc.Call):  # what a failed unary call raises
        details = error.details()
        return f"{error.code().name}: {details}" if details else error.code().name
    return repr(error)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m server.healthcheck",
        description="Exit 0 when the journeyman server at ADDRESS says SERVING, 1 otherwise.",
    )
    parser.add_argument(
        "address", nargs="?", metavar="ADDRESS",
        help=f"host:port of the server (default {LOCAL_HOST} on JOURNEYMAN_PORT or 50051)",
    )  # fmt: skip
    parser.add_argument(
        "--service", default="", help="the service to ask about (default: the whole server)"
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
        help=f"give up after this long (default {DEFAULT_TIMEOUT_S:g} s)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Check once; print the status (or why there is none) and return the exit code."""
    args = _parse(argv)
    try:
        address = args.address or f"{LOCAL_HOST}:{Settings.from_env().port}"
    except ConfigError as error:
        print(f"healthcheck: {error}", file=sys.stderr)
        return EXIT_NOT_SERVING
    try:
        status = check(address, args.service, args.timeout)
    except grpc.RpcError as error:
        print(f"{address}: {_describe(error)}", file=sys.stderr)
        return EXIT_NOT_SERVING
    print(f"{address}: {status}")
    return EXIT_SERVING if status == "SERVING" else EXIT_NOT_SERVING


if __name__ == "__main__":
    sys.exit(main())
