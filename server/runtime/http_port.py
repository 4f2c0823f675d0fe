"""The HTTP port beside gRPC (`http_port`, 9100): Prometheus `/metrics`, the journey map
(`/map/<journey>`) and the JSON it polls (`/api/journeys/<journey>/stats`).

The JSON is GetJourneyStats asked of the gRPC port itself, with the caller's token passed on: the
same answer, the same scopes, and one HTTP server whether one process serves or a supervisor
with workers (which holds no store). With tokens configured, the map and its JSON need a `read`
token, sent as `Authorization: Bearer <token>` or as the password of HTTP Basic (what a browser
asks for); `/metrics` stays open, as Prometheus scrapes it.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
import socket
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import grpc
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.analytics.journey_map import map_page, stats_json
from server.api.auth import Token
from server.core.certificate import expected_name
from server.core.config import Settings

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 10.0
_JOURNEY_PATH = re.compile(r"/map/([a-z][a-z0-9_]*)")
_STATS_PATH = re.compile(r"/api/journeys/([a-z][a-z0-9_]*)/stats")
# The page is one document with its script and style inline; it fetches only its own JSON.
_PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:"
)
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.SERVICE_UNAVAILABLE,
}


class HttpPort:
    """What the handler needs: the metrics registry, the tokens, a channel to the gRPC port."""

    def __init__(self, settings: Settings, grpc_port: int, tokens: tuple[Token, ...]) -> None:
        self.tokens = tokens
        self.registry: CollectorRegistry = REGISTRY
        if settings.metrics_multiprocess_dir:
            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                self.registry, path=settings.metrics_multiprocess_dir
            )
        self.stub = pb_grpc.JourneyServiceStub(_channel(settings, grpc_port))

    def allowed(self, credential: bytes | None) -> bool:
        """Whether `credential` is a token with the `read` scope (always, without tokens)."""
        if not self.tokens:
            return True
        if credential is None:
            return False
        found = None
        for token in self.tokens:  # every token compared, in constant time each
            if hmac.compare_digest(credential, token.secret):
                found = token
        return found is not None and found.allows("read")


def _channel(settings: Settings, port: int) -> grpc.Channel:
    """A channel to this server's own gRPC port, as its health check makes one (TLS trusting
    the server's certificate and expecting a name in it; its own certificate for mTLS)."""
    host = settings.host
    host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if settings.tls_cert is None or settings.tls_key is None:
        return grpc.insecure_channel(address)
    certificate = settings.tls_cert.read_bytes()
    mtls = settings.tls_client_ca is not None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=certificate,
        private_key=settings.tls_key.read_bytes() if mtls else None,
        certificate_chain=certificate if mtls else None,
    )
    name = expected_name(certificate, host)
    options = [("grpc.ssl_target_name_override", name)] if name else []
    return grpc.secure_channel(address, credentials, options=options)


def _credential(header: str | None) -> bytes | None:
    """The token of an `Authorization` header: Bearer, or the password of Basic."""
    scheme, _, value = (header or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip().encode()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except ValueError:
            return None
        return decoded.partition(":")[2].encode()
    return None


class _Handler(BaseHTTPRequestHandler):
    port: HttpPort  # set on the subclass `serve_http` builds
    server_version = "journeyman"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/metrics":
            self._metrics()
            return
        if url.path in ("/", "/map", "/map/"):
            self._redirect_to_map()
            return
        journey = _JOURNEY_PATH.fullmatch(url.path)
        stats = _STATS_PATH.fullmatch(url.path)
        if journey is None and stats is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found: try /map or /metrics\n", "text/plain")
            return
        credential = _credential(self.headers.get("Authorization"))
        if not self.port.allowed(credential):
            self._refuse(credential is not None)
        elif journey is not None:
            self._page(journey[1], url.query, credential)
        elif stats is not None:
            self._stats(stats[1], parse_qs(url.query), credential)

    def _metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        self._send(HTTPStatus.OK, encoder(self.port.registry), content_type)

    def _redirect_to_map(self) -> None:
        credential = _credential(self.headers.get("Authorization"))
        if not self.port.allowed(credential):
            self._refuse(credential is not None)
            return
        journeys = self._journeys(credential)
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", f"/map/{journeys[0] if journeys else 'unknown'}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _journeys(self, credential: bytes | None) -> list[str]:
        ruleset = self._ruleset(credential)
        return [f.journey for f in ruleset.files] if ruleset is not None else []

    def _ruleset(self, credential: bytes | None) -> pb.GetRulesetResponse | None:
        try:
            return self.port.stub.GetRuleset(  # type: ignore[no-any-return]
                pb.GetRulesetRequest(), timeout=CALL_TIMEOUT_S, metadata=_metadata(credential)
            )
        except grpc.RpcError:
            return None

    def _page(self, journey: str, query: str, credential: bytes | None) -> None:
        """The page of `journey`; its query (`since`, `until`) goes on to the JSON it polls."""
        days = urlencode({k: v[0] for k, v in parse_qs(query).items() if k in ("since", "until")})
        stats_url = f"/api/journeys/{quote(journey)}/stats" + (f"?{days}" if days else "")
        journeys = [(name, f"/map/{name}") for name in self._journeys(credential)]
        page = map_page(stats_url=stats_url, journeys=journeys)
        self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8", _PAGE_POLICY)

    def _stats(
        self, journey: str, query: Mapping[str, list[str]], credential: bytes | None
    ) -> None:
        request = pb.GetJourneyStatsRequest(
            journey=journey, since=query.get("since", [""])[0], until=query.get("until", [""])[0]
        )
        try:
            stats = self.port.stub.GetJourneyStats(
                request, timeout=CALL_TIMEOUT_S, metadata=_metadata(credential)
            )
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            body = json.dumps({"error": details, "code": code.name}).encode()
            self._send(_HTTP_STATUS.get(code, HTTPStatus.BAD_GATEWAY), body, "application/json")
            return
        figures = stats_json(stats)
        # A refused rules change is shown on the map, where a marketer looks after editing.
        ruleset = self._ruleset(credential)
        if ruleset is not None and ruleset.refused_reason:
            figures["refused_reload"] = {
                "reason": ruleset.refused_reason, "at_ms": str(ruleset.refused_at_ms),
            }  # fmt: skip
        self._send(HTTPStatus.OK, json.dumps(figures).encode(), "application/json")

    def _refuse(self, tried: bool) -> None:
        status = HTTPStatus.FORBIDDEN if tried else HTTPStatus.UNAUTHORIZED
        self.send_response(status)
        self.send_header("WWW-Authenticate", 'Basic realm="journeyman map", charset="UTF-8"')
        body = b"the journey map needs a `read` token: any user name, the token as password\n"
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send(self, status: int, body: bytes, content_type: str, policy: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if policy:
            self.send_header("Content-Security-Policy", policy)
        self.end_headers()
        self.wfile.write(body)


class _ServerV6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _metadata(credential: bytes | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {credential.decode()}"),) if credential else ()


def serve_http(
    settings: Settings, grpc_port: int, tokens: tuple[Token, ...]
) -> ThreadingHTTPServer:
    """Serve the HTTP port from a daemon thread (as prometheus_client's own server did).
    Raises OSError when the port cannot be bound."""
    handler = type("Handler", (_Handler,), {"port": HttpPort(settings, grpc_port, tokens)})
    server_class = _ServerV6 if ":" in settings.host else ThreadingHTTPServer
    server = server_class((settings.host, settings.http_port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http-port", daemon=True).start()
    return server
