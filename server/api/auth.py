"""Bearer-token access to the journeyman API: who may call what.

Tokens come from a file (one per line: the token, then the scopes it grants) or the environment.
A call without a known token is UNAUTHENTICATED; a known token without the method's scope is
PERMISSION_DENIED. Health and reflection are never checked, so probes and grpcurl `list` work.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from engine.errors import JourneymanError
from server.api.admission import rewrapped

if TYPE_CHECKING:  # grpc's stubs make the handler generic; at run time it is not
    Handler = grpc.RpcMethodHandler[Any, Any]

SERVICE_PREFIX = "/journeyman.v1.JourneyService/"
SCOPES = ("decide", "read", "admin")
# The scope each method needs; `admin` grants every scope.
METHOD_SCOPES: Mapping[str, str] = {
    "Decide": "decide",
    "DecideStream": "decide",
    "DecideBatch": "decide",
    "Identify": "decide",
    "GetCustomer": "read",
    "GetRuleset": "read",
    "GetActionReport": "read",
    "GetJourneyStats": "read",
    "Subscribe": "read",
    "RecordResponse": "decide",
    "ForgetCustomer": "admin",
}


# The scopes of the token of the call being served (each grpc.aio call runs in its own task);
# every scope when no tokens are configured. What a method answers may depend on it.
CALLER_SCOPES: ContextVar[frozenset[str]] = ContextVar("caller_scopes", default=frozenset(SCOPES))


def caller_may(scope: str) -> bool:
    """Whether the token of the call being served grants `scope` (`admin` grants all)."""
    scopes = CALLER_SCOPES.get()
    return scope in scopes or "admin" in scopes


class TokensInvalid(JourneymanError):
    """The tokens file or variable cannot be used; says where and what to write."""


@dataclass(frozen=True, slots=True)
class Token:
    secret: bytes
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def parse_tokens(text: str, source: str) -> tuple[Token, ...]:
    """Tokens from `text`: one per line, `<token> [scope ...]` (no scope: every scope);
    blank lines and lines starting with `#` are skipped."""
    tokens = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        secret, scopes = words[0], frozenset(words[1:]) or frozenset(SCOPES)
        unknown = sorted(scopes - set(SCOPES))
        if unknown:
            raise TokensInvalid(
                f"{source}:{number}: unknown scope {unknown[0]!r}; write one of {', '.join(SCOPES)}"
            )
        if len(secret) < 16:
            raise TokensInvalid(f"{source}:{number}: a token needs at least 16 characters")
        tokens.append(Token(secret.encode(), scopes))
    if not tokens:
        raise TokensInvalid(f"{source}: no token found; write one per line: <token> [scopes]")
    return tuple(tokens)


def _bearer(metadata: tuple[tuple[str, str | bytes], ...] | None) -> bytes | None:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, credential = text.partition(" ")
            return credential.strip().encode() if scheme.lower() == "bearer" else None
    return None


class TokenGate(grpc.aio.ServerInterceptor):
    """Checks the bearer token of every journeyman call against the configured tokens."""

    def __init__(self, tokens: tuple[Token, ...]) -> None:
        self._tokens = tokens

    def _match(self, credential: bytes) -> Token | None:
        # Compare with every token, in constant time each, so timing says nothing about which
        # (or whether one) matched.
        found = None
        for token in self._tokens:
            if hmac.compare_digest(credential, token.secret):
                found = token
        return found

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        credential = _bearer(handler_call_details.invocation_metadata)
        token = self._match(credential) if credential is not None else None
        if token is None:
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED,
                            "send `authorization: Bearer <token>` with a valid token")  # fmt: skip
        scope = METHOD_SCOPES.get(method.removeprefix(SERVICE_PREFIX), "admin")
        if not token.allows(scope):
            return _refusal(handler, grpc.StatusCode.PERMISSION_DENIED,
                            f"this token lacks the `{scope}` scope this method needs")  # fmt: skip
        return _with_scopes(handler, token.scopes)


def _with_scopes(handler: Handler, scopes: frozenset[str]) -> Handler:
    """`handler`, run with CALLER_SCOPES set to `scopes`."""

    def unary(behaviour: Any) -> Any:
        async def scoped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            CALLER_SCOPES.set(scopes)
            return await behaviour(request, context)

        return scoped

    def streaming(behaviour: Any) -> Any:
        async def scoped(
            requests: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            CALLER_SCOPES.set(scopes)
            async for response in behaviour(requests, context):
                yield response

        return scoped

    return rewrapped(handler, unary=unary, streaming=streaming)


def _refusal(handler: Handler, code: grpc.StatusCode, message: str) -> Handler:
    """A handler of the same kind as `handler` that ends the call with `code`."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)

    async def refuse_stream(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)
        yield  # never reached; makes this the async generator a streaming handler is

    return rewrapped(handler, unary=lambda _: refuse, streaming=lambda _: refuse_stream)
