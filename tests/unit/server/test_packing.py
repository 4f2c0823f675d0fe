"""The Store's connections pack commands as redis-py itself would, in one hiredis call."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

from server.store.connection import connect
from server.store.packing import HiredisPacking, with_hiredis_packing

PACKING = with_hiredis_packing(Connection)

arguments = st.one_of(
    st.text(), st.binary(), st.integers(), st.floats(allow_nan=True, allow_infinity=True)
)
commands = st.lists(
    st.tuples(st.sampled_from(["EVALSHA", "HMGET", b"HSET"]), st.lists(arguments, max_size=20)),
    min_size=1,
    max_size=30,
)


def packed(connection: Connection, pipeline: list[tuple[object, ...]]) -> bytes:
    return b"".join(bytes(chunk) for chunk in connection.pack_commands(pipeline))


@given(commands)
def test_a_pipeline_is_packed_byte_for_byte_as_redis_py_packs_it(
    pipeline: list[tuple[str | bytes, list[object]]],
) -> None:
    flat = [(name, *args) for name, args in pipeline]

    assert packed(PACKING(), flat) == packed(Connection(), flat)


def test_what_hiredis_does_not_take_is_left_to_redis_py() -> None:
    ours, theirs = PACKING(), Connection()
    for command in [
        ("SCRIPT LOAD", "return 1"),  # a name with a space: two words on the wire
        (b"CONFIG GET", "maxmemory"),
        ("SET", "k", memoryview(b"value")),
        ("SET", "k", bytearray(b"value")),
    ]:
        assert packed(ours, [command]) == packed(theirs, [command])
    with pytest.raises(DataError, match="bool"):
        ours.pack_command("SET", "k", True)
    with pytest.raises(DataError):
        ours.pack_command("SET", "k", None)


def test_every_kind_of_connection_gets_the_packing_once() -> None:
    for kind in (Connection, SSLConnection, UnixDomainSocketConnection):
        packing = with_hiredis_packing(kind)
        assert issubclass(packing, HiredisPacking) and issubclass(packing, kind)
        assert with_hiredis_packing(packing) is packing
        assert with_hiredis_packing(kind) is packing


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", Connection),
        ("rediss://127.0.0.1:6379/0", SSLConnection),
        ("unix:///tmp/redis.sock", UnixDomainSocketConnection),
    ],
)
async def test_a_store_client_packs_with_hiredis_on_every_scheme(url: str, kind: type) -> None:
    client = connect(url)  # no connection is opened before the first command
    try:
        pool_class = client.connection_pool.connection_class
        assert issubclass(pool_class, HiredisPacking) and issubclass(pool_class, kind)
    finally:
        await client.aclose()
