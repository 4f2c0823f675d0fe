"""`journeyman serve` against a Redis that asks for credentials: a password (requirepass), an
ACL user with the narrowest rights the service needs, and TLS with client certificates.

For each, the service decides and stores events; the credentials never appear in what it
writes (its log, at DEBUG), in error messages to clients, in /metrics or in `journeyman status`.
A wrong password is never written out either, and is reported for what it is.

The narrow ACL (`SERVICE_ACL`) is the list of what journeyman sends: if the service starts
sending a command it does not grant, Redis's ACL LOG names it and the test fails with it.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import grpc
import pytest
import redis
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from tests.faults.test_redis_slow import (
    RedisServer,
    start_redis_server,
    stop_served,
)
from tests.service.test_process import (
    JOURNEYMAN,
    SERVICE,
    Served,
    _free_port,
    _start,
    _wait_until_serving,
)

pytestmark = pytest.mark.service

KEY_PREFIX = "jmcred:"
SERVICE_USER = "journeyman"
# What journeyman needs, by who sends it: the store (load: HMGET, HGET; commit: EVALSHA, and
# SCRIPT LOAD after NOSCRIPT; journey statistics: HINCRBY; forget: EVALSHA; readiness: PING;
# whether Redis evicts keys: INFO, when it first answers), and the scripts under server/store/lua/
# run as this user (commit.lua: HGET, HSET, HDEL, HINCRBY, EXPIRE; take.lua: HGET, DEL). Only
# keys under the service's prefix, no channels. Reading the statistics back (Store.stage_counts,
# no RPC yet) would add HGETALL. redis-py's connection handshake needs no grant: HELLO is open to
# every user, and the refusal of CLIENT SETINFO (Redis 7.2+) is ignored.
SERVICE_COMMANDS = (
    "ping", "hmget", "hget", "hset", "hdel", "hincrby", "hgetall", "expire", "del", "evalsha",
    "script|load", "zadd", "zrem", "zrangebyscore", "zscore", "zcard", "xadd", "xread",
    "xrevrange", "info",
)  # fmt: skip
SERVICE_ACL = (
    "reset", "on", "resetchannels", f"~{KEY_PREFIX}*", *(f"+{c}" for c in SERVICE_COMMANDS),
)  # fmt: skip
START_TIMEOUT_S = 60.0
EXIT_AFTER_REFUSAL_S = 1.5  # a server that stops at a refused password has done so by then


def _secret() -> str:
    """A password with characters a URL must escape, so both spellings can be looked for."""
    return f"{secrets.token_urlsafe(18)}/p@ss:w%rd"


@dataclass
class Secured:
    """A redis-server that wants credentials, and the URL journeyman is given for it."""

    name: str
    server: RedisServer
    url_template: str  # `{password}` stands for the URL-escaped password
    secret: str  # the password journeyman is given: never to be written out
    admin: redis.Redis  # straight to Redis, as its administrator

    @property
    def url(self) -> str:
        return self.url_with(self.secret)

    def url_with(self, password: str) -> str:
        return self.url_template.format(password=quote(password, safe=""))


def _admin_client(port: int, password: str, tls: dict[str, str] | None = None) -> redis.Redis:
    if tls is None:
        return redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5)
    return redis.Redis(
        host="127.0.0.1", port=port, password=password, socket_timeout=5, ssl=True,
        ssl_ca_certs=tls["ssl_ca_certs"], ssl_certfile=tls["ssl_certfile"],
        ssl_keyfile=tls["ssl_keyfile"],
    )  # fmt: skip


def _with_password(folder: Path) -> Secured:
    secret = _secret()
    server = start_redis_server(folder, "--requirepass", secret)
    url = f"redis://:{{password}}@127.0.0.1:{server.port}/0"
    return Secured("password", server, url, secret, _admin_client(server.port, secret))


def _with_acl_user(folder: Path) -> Secured:
    admin_secret, secret = _secret(), _secret()
    server = start_redis_server(folder, "--requirepass", admin_secret)
    admin = _admin_client(server.port, admin_secret)
    admin.execute_command("ACL", "SETUSER", SERVICE_USER, *SERVICE_ACL, f">{secret}")
    url = f"redis://{SERVICE_USER}:{{password}}@127.0.0.1:{server.port}/0"
    return Secured("acl-user", server, url, secret, admin)


def _with_tls(folder: Path) -> Secured:
    """TLS only (no plaintext port), client certificates required, and a password."""
    ca = trustme.CA()
    files = {name: folder / f"{name}.pem" for name in ("ca", "server", "client")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(files["server"])
    )
    ca.issue_cert("journeyman-client").private_key_and_cert_chain_pem.write_to_path(
        str(files["client"])
    )
    secret = _secret()
    try:
        server = start_redis_server(
            folder, "--requirepass", secret, "--tls-cert-file", str(files["server"]),
            "--tls-key-file", str(files["server"]), "--tls-ca-cert-file", str(files["ca"]),
            "--tls-auth-clients", "yes", tls=True,
        )  # fmt: skip
    except RuntimeError as error:
        said = str(error).lower()
        if "bad directive" in said and "tls" in said:  # a build without TLS knows no tls-port
            pytest.skip(f"this redis-server was built without TLS: {error}")
        raise
    # redis-py passes query parameters it does not parse itself on to the SSL connection.
    tls = {
        "ssl_ca_certs": str(files["ca"]),
        "ssl_certfile": str(files["client"]),
        "ssl_keyfile": str(files["client"]),
    }
    url = f"rediss://:{{password}}@127.0.0.1:{server.port}/0?{urlencode(tls)}"
    return Secured("tls", server, url, secret, _admin_client(server.port, secret, tls))


@pytest.fixture(params=[_with_password, _with_acl_user, _with_tls], ids=lambda f: f.__name__)
def secured(request: pytest.FixtureRequest) -> Iterator[Secured]:
    with tempfile.TemporaryDirectory(prefix="jm-cred-") as folder:
        made: Secured = request.param(Path(folder))
        try:
            yield made
        finally:
            made.admin.close()
            made.server.stop()


@contextmanager
def serving(folder: Path, redis_url: str, *, metrics_port: int = 0) -> Iterator[Served]:
    """`journeyman serve` over `redis_url`, logging at DEBUG (the most it ever writes);
    stopped by pid on the way out."""
    served = _start(
        folder, _free_port(), metrics_port, redis_url=redis_url, key_prefix=KEY_PREFIX,
        log_level="DEBUG", grace_period_s="1",
    )  # fmt: skip
    try:
        yield served
    finally:
        stop_served(served)


def leaked(secret: str, text: str) -> list[str]:
    """The spellings of `secret` found in `text`: as is, and URL-escaped either way."""
    spellings = {secret, quote(secret, safe=""), quote(secret)}
    return sorted(s for s in spellings if s in text)


def _exercise_every_rpc(stub: pb_grpc.JourneyServiceStub) -> pb.CustomerView:
    """Every call that touches Redis: decide (load, commit, statistics), identify (merge an
    anonymous journey, forget it), read, forget."""
    events = [
        pb.Event(event_id="c1", customer_id="cred-ann", type="add_to_cart", channel="web"),
        pb.Event(event_id="v1", anonymous_id="visitor-9", type="product_view", channel="web"),
    ]
    for event in events:
        decision = stub.Decide(pb.DecideRequest(event=event), timeout=5).decision
        assert not decision.degraded, "answered from the rules alone: Redis refused us"
    identified = stub.Identify(
        pb.IdentifyRequest(customer_id="cred-ann", anonymous_id="visitor-9"), timeout=5
    )
    assert identified.merged
    stub.Decide(pb.DecideRequest(event=pb.Event(event_id="gone", customer_id="cred-gone",
                                                type="product_view")), timeout=5)  # fmt: skip
    stub.ForgetCustomer(pb.ForgetCustomerRequest(customer_id="cred-gone"), timeout=5)
    return stub.GetCustomer(pb.GetCustomerRequest(customer_id="cred-ann"), timeout=5).customer


def test_decides_and_stores_with_credentials_and_never_writes_them_out(
    secured: Secured, tmp_path: Path
) -> None:
    metrics_port = _free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    with serving(tmp_path, secured.url, metrics_port=metrics_port) as served:
        _wait_until_serving(served)  # SERVING: Redis answered PING with these credentials
        with grpc.insecure_channel(served.address) as channel:
            customer = _exercise_every_rpc(pb_grpc.JourneyServiceStub(channel))
        time.sleep(0.3)  # journey statistics are written off the hot path
        status = subprocess.run(
            [str(JOURNEYMAN), "status", "--address", served.address, "--metrics-url", metrics_url],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        with urllib.request.urlopen(metrics_url, timeout=5) as page:
            metrics = page.read().decode()
    log = served.log()  # with the lines written on the way out

    (journey,) = customer.journeys
    assert journey.counters["cart_adds_7d"] == 1 and journey.counters["product_views_7d"] == 1
    stored = secured.admin.keys(f"{KEY_PREFIX}*")
    assert stored, "nothing under the prefix in Redis"
    assert status.returncode == 0, status.stdout + status.stderr
    assert "health: SERVING" in status.stdout
    denied = [e for e in secured.admin.acl_log() if e.get("username") == SERVICE_USER]
    print(f"\n{secured.name}: {len(stored)} keys stored; log {len(log.splitlines())} lines; "
          f"ACL denials: {denied}")  # fmt: skip
    assert denied == [], "the service sent a command its ACL does not grant"
    for where, text in (("log", log), ("status", status.stdout + status.stderr),
                        ("metrics", metrics)):  # fmt: skip
        assert leaked(secured.secret, text) == [], f"the password is in the {where}"
    assert "Traceback" not in log


def _wait_for_start_or_exit(served: Served, *, redis_said: bool = False) -> None:
    """Until the server says it serves (it waits up to 5 s for Redis first) or has exited; with
    `redis_said`, only until it has logged about Redis."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while served.process.poll() is None and not _started(served.log(), redis_said=redis_said):
        assert time.monotonic() < deadline, f"neither serving nor exited:\n{served.log()}"
        time.sleep(0.05)


def _started(log: str, *, redis_said: bool) -> bool:
    if "journeyman: serving" in log:
        return True
    return redis_said and any("Redis" in line and "DEBUG" not in line for line in log.splitlines())


def test_a_wrong_password_is_never_written_out_nor_answered_as_stored(
    secured: Secured, tmp_path: Path
) -> None:
    wrong = _secret()
    with serving(tmp_path, secured.url_with(wrong)) as served:
        _wait_for_start_or_exit(served, redis_said=True)
        with contextlib.suppress(subprocess.TimeoutExpired):
            served.process.wait(timeout=EXIT_AFTER_REFUSAL_S)  # if it stops at the refusal
        details = ""
        if served.process.poll() is None:  # it runs on, and must answer NOT_SERVING, degraded
            details = _refused_calls(served)
    log = served.log()
    said = [line for line in log.splitlines() if "Redis" in line and "DEBUG" not in line]
    print(f"\n{secured.name}, wrong password: {said[:1]}")
    for secret in (wrong, secured.secret):
        assert leaked(secret, log + details) == [], "a password was written out"
    # The log says what is wrong: the credentials, not "unreachable" alone.
    assert any(word in log.lower() for word in ("authentication", "wrongpass", "password"))


def _refused_calls(served: Served) -> str:
    """Check the answers of a server whose Redis refuses it; returns the error details."""
    with grpc.insecure_channel(served.address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        stub = pb_grpc.JourneyServiceStub(channel)
        event = pb.Event(event_id="w1", customer_id="cred-bo", type="add_to_cart")
        assert stub.Decide(pb.DecideRequest(event=event), timeout=5).decision.degraded
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetCustomer(pb.GetCustomerRequest(customer_id="cred-bo"), timeout=5)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    return str(refused.value.details())


def test_a_wrong_password_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    made = _with_password(tmp_path / "redis")
    wrong = _secret()
    try:
        with serving(tmp_path, made.url_with(wrong)) as served:
            _wait_for_start_or_exit(served)
            code = served.process.poll()
        output = served.log()
    finally:
        made.admin.close()
        made.server.stop()
    assert code == 2, f"still running after it told us it serves:\n{output}"
    assert "--redis-url" in output or "JOURNEYMAN_REDIS_URL" in output
    assert "password" in output.lower() and "Traceback" not in output
    assert leaked(wrong, output) == []


def test_a_user_without_a_needed_command_is_told_which_never_unknown(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    made = _with_acl_user(tmp_path / "redis")
    made.admin.execute_command("ACL", "SETUSER", SERVICE_USER, "-evalsha")  # commits refused
    try:
        with serving(tmp_path, made.url) as served:
            _wait_for_start_or_exit(served)
            outcome = "exited" if served.process.poll() is not None else _decide_once(served)
        log = served.log()
    finally:
        made.admin.close()
        made.server.stop()
    print(f"\nwithout +evalsha: exit {served.process.returncode}, Decide: {outcome}")
    # Either the start stops and names what to grant, or answers are flagged and the log does.
    assert served.process.returncode == 2 or outcome == "degraded", outcome
    assert "evalsha" in log.lower() and "Traceback" not in log


def _decide_once(served: Served) -> str:
    """stored, degraded, or the status code of the failed call."""
    with grpc.insecure_channel(served.address) as channel:
        stub = pb_grpc.JourneyServiceStub(channel)
        event = pb.Event(event_id="n1", customer_id="cred-cy", type="add_to_cart")
        try:
            decision = stub.Decide(pb.DecideRequest(event=event), timeout=5).decision
        except grpc.RpcError as error:
            return str(error.code())
    return "degraded" if decision.degraded else "stored"
