"""An echo JourneyService: the transport ceiling of grpcio on this machine.

It serves `journeyman.v1.JourneyService/Decide` and `DecideStream` with a canned `Decision` the
size of a real one for the retail journey (three actions with reasons and content), built once,
without Redis or the engine. Each call still parses its request and serializes a fresh response,
as the real service does, so the difference between the two is the service's own work.

    python -m benchmarks.load.echo --port 50162
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from journeyman.v1 import journeyman_pb2 as pb
from server.core import event_loop

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["JourneyService"].full_name
_ACTIONS = (
    ("live_chat", 72.0, "chat", '{"banner":"live_chat","queue":"checkout"}',
     "friction medium at checkout: payment_error x2"),
    ("free_shipping", 70.0, "web", '{"banner":"free_shipping"}',
     "stage purchase; cart_adds_7d >= 1; boosted by segment vip (+20)"),
    ("welcome_discount", 40.0, "web", '{"banner":"welcome10","code":"WELCOME10"}',
     "stage consideration; not has_ordered"),
)  # fmt: skip


def canned_decision() -> pb.Decision:
    """A retail decision of realistic size: one journey with signals, three offered actions."""
    stage = pb.JourneyStage(
        journey="retail", stage="purchase", previous_stage="consideration", changed=True,
        transition="checkout_started", transition_line=114, friction_score=0.62,
        friction_level="medium",
        top_signals=[pb.SignalScore(signal="payment_errors", score=0.41),
                     pb.SignalScore(signal="slow_pages", score=0.21)],
    )  # fmt: skip
    actions = [
        pb.OfferedAction(action=a, journey="retail", score=s, channel=c, content_json=j, reason=r)
        for a, s, c, j, r in _ACTIONS
    ]
    return pb.Decision(
        customer_id="customer-000042", event_id="evt-0000000000000042", journeys=[stage],
        actions=actions, ruleset_version="retail@2026.11.23+sha256:3f9a1c0e5b7d",
        decided_at_ms=int(time.time() * 1000),
    )  # fmt: skip


_CANNED = canned_decision()


def _answer(event: pb.Event) -> pb.Decision:
    """A fresh copy of the canned decision, naming the request's customer and event."""
    decision = pb.Decision()
    decision.CopyFrom(_CANNED)
    decision.customer_id = event.customer_id
    decision.event_id = event.event_id
    return decision


async def _decide(
    request: pb.DecideRequest, context: grpc.aio.ServicerContext[object, object]
) -> pb.DecideResponse:
    return pb.DecideResponse(decision=_answer(request.event))


async def _decide_stream(
    requests: AsyncIterator[pb.DecideStreamRequest],
    context: grpc.aio.ServicerContext[object, object],
) -> AsyncIterator[pb.DecideStreamResponse]:
    async for item in requests:
        yield pb.DecideStreamResponse(decision=_answer(item.request.event))


def _handler() -> grpc.GenericRpcHandler:
    """Decide and DecideStream with the generated messages' (de)serializers."""
    methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Decide": grpc.unary_unary_rpc_method_handler(
            _decide,
            request_deserializer=pb.DecideRequest.FromString,
            response_serializer=pb.DecideResponse.SerializeToString,
        ),
        "DecideStream": grpc.stream_stream_rpc_method_handler(
            _decide_stream,
            request_deserializer=pb.DecideStreamRequest.FromString,
            response_serializer=pb.DecideStreamResponse.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, methods)


async def start_echo(port: int = 0, host: str = "127.0.0.1") -> tuple[grpc.aio.Server, int]:
    """Start the echo server on `host:port` (0: any free port); return it and the bound port."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_handler(),))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound


async def _serve(host: str, port: int) -> None:
    server, bound = await start_echo(port, host)
    print(f"echo JourneyService listening on {host}:{bound}", flush=True)
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(grace=1.0)


def main(argv: list[str] | None = None) -> None:
    """`python -m benchmarks.load.echo --port P`: serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50162)
    parser.add_argument(
        "--event-loop", choices=event_loop.CHOICES, default="auto",
        help="the same choice as journeyman serve's, so both run on the same loop",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        event_loop.run(_serve(args.host, args.port), args.event_loop)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
