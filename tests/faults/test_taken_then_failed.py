"""Redis failing right after a take: ForgetCustomer and Identify lose nothing without saying so.

Both read a customer's state and delete their keys in one step (take.lua). A state written under
rules this server never ran names a layout the server must then read from the layouts registry:
a second round trip, after the keys are gone. Here Redis refuses that one (an ACL user without
the registry's key), as a Redis failing between the two would. ForgetCustomer has deleted, and
answers so; Identify puts the visitor's state back as it was and answers UNAVAILABLE (the caller
retries), where it used to lose it.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis

from engine.codec import encode_state, layouts_of
from engine.decide import decide
from engine.state import new_state
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.core.config import Settings
from server.store.keys import STATE_BLOB_FIELD
from server.store.record import decode_record
from server.store.redis_store import CommitOutcome, Store
from tests.faults.test_redis_credentials import SERVICE_COMMANDS, SERVICE_USER
from tests.faults.test_redis_slow import RedisServer, start_redis_server, stop_served
from tests.rulesets import T0_MS, event, from_text
from tests.service.test_process import _free_port, _start, _wait_until_serving
from tests.service.test_state_layouts import BEFORE

pytestmark = pytest.mark.service

KEY_PREFIX = "jmtaken:"
# Every key of the service but the layouts registry (`jmtaken:layouts`).
WITHOUT_LAYOUTS = (f"~{KEY_PREFIX}{{*", f"~{KEY_PREFIX}stats:*", f"~{KEY_PREFIX}timers:*",
                   f"~{KEY_PREFIX}outbox")  # fmt: skip
# Rules the server never runs (one journey, "shop"): its states name a layout only the registry
# describes to it.
ELSEWHERE = BEFORE


@dataclass
class Narrowed:
    server: RedisServer
    admin: redis.Redis  # straight to Redis, as its administrator
    admin_url: str
    url: str  # the service user's, refused the layouts registry


@pytest.fixture
def narrowed() -> Iterator[Narrowed]:
    admin_secret, secret = secrets.token_hex(16), secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="jm-taken-") as folder:
        server = start_redis_server(Path(folder), "--requirepass", admin_secret)
        admin = redis.Redis(host="127.0.0.1", port=server.port, password=admin_secret)
        acl = ("reset", "on", "resetchannels", *WITHOUT_LAYOUTS,
               *(f"+{c}" for c in SERVICE_COMMANDS), f">{secret}")  # fmt: skip
        admin.execute_command("ACL", "SETUSER", SERVICE_USER, *acl)
        url = f"redis://{SERVICE_USER}:{secret}@127.0.0.1:{server.port}/0"
        try:
            admin_url = f"redis://:{admin_secret}@127.0.0.1:{server.port}/0"
            yield Narrowed(server, admin, admin_url, url)
        finally:
            admin.close()
            server.stop()


def _written_elsewhere(admin_url: str, customers: list[tuple[str, bool]]) -> None:
    """A state for each (customer, anonymous), as a server on other rules writes it: its
    layout kept in the registry first."""
    ruleset = from_text(ELSEWHERE)
    _, state = decide(ruleset, new_state(ruleset), event("view", "someone"), T0_MS)

    async def write() -> None:
        store = Store.from_settings(Settings(key_prefix=KEY_PREFIX), admin_url)
        try:
            for customer, anonymous in customers:
                result = await store.commit(
                    customer_id=customer, anonymous=anonymous, expected_version=0,
                    state=encode_state(ruleset, state), layouts=layouts_of(ruleset),
                )  # fmt: skip
                assert result.outcome is CommitOutcome.COMMITTED
        finally:
            await store.close()

    asyncio.run(write())


def test_forget_and_identify_lose_nothing_when_redis_fails_after_the_take(
    narrowed: Narrowed, tmp_path: Path
) -> None:
    _written_elsewhere(narrowed.admin_url, [("gone", False), ("visitor-7", True)])
    visitor_key = f"{KEY_PREFIX}{{a:visitor-7}}:state"
    visitor_before = decode_record(narrowed.admin.hget(visitor_key, STATE_BLOB_FIELD))

    served = _start(tmp_path, _free_port(), redis_url=narrowed.url, key_prefix=KEY_PREFIX)
    try:
        _wait_until_serving(served)
        with grpc.insecure_channel(served.address) as channel:
            stub = pb_grpc.JourneyServiceStub(channel)
            forgotten = stub.ForgetCustomer(pb.ForgetCustomerRequest(customer_id="gone"), timeout=5)
            assert forgotten.deleted_keys == 1
            assert narrowed.admin.exists(f"{KEY_PREFIX}{{c:gone}}:state") == 0
            served.wait_for_log("the journey's stage counts still hold them")

            with pytest.raises(grpc.RpcError) as refused:
                stub.Identify(
                    pb.IdentifyRequest(customer_id="ann", anonymous_id="visitor-7"), timeout=5
                )
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        # Put back as it was taken: the same state and decision ring.
        visitor_after = narrowed.admin.hget(visitor_key, STATE_BLOB_FIELD)
        assert visitor_after is not None, f"the visitor's state is lost:\n{served.log()}"
        assert decode_record(visitor_after) == visitor_before
        assert narrowed.admin.exists(f"{KEY_PREFIX}{{c:ann}}:state") == 0  # nothing merged
        assert "it is lost" not in served.log()
    finally:
        stop_served(served)
