"""Redis commands packed by hiredis in one call.

redis-py hands hiredis its arguments only after encoding each one in Python (a generator and
an `Encoder.encode` call per argument): ~15 us for a commit's 17 arguments, against 2.5 us for
`hiredis.pack_command` given them as they are (str, bytes, int and float, encoded the same way).
A Store's commits, loads and statistics are most of its Redis traffic, so its connections pack
with hiredis directly and leave anything else to redis-py: a command name with a space in it
("SCRIPT LOAD"), and an argument hiredis does not take (a bool, which redis-py refuses with its
DataError; a memoryview or bytearray, which it sends).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import hiredis
from redis.asyncio.connection import AbstractConnection


class HiredisPacking(AbstractConnection):
    """Packs a command with one `hiredis.pack_command` call; mixed in before a redis-py
    connection class (`with_hiredis_packing`)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        if (" " if isinstance(name, str) else b" ") in name:
            return super().pack_command(*args)
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            return super().pack_command(*args)

    def pack_commands(self, commands: Iterable[Iterable[Any]]) -> list[bytes]:
        # One buffer for the pipeline: its socket write copies the pieces together anyway.
        return [b"".join([chunk for command in commands for chunk in self.pack_command(*command)])]


_PACKING: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def with_hiredis_packing(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """`connection_class` (TCP, TLS or unix socket) packing its commands with hiredis."""
    if issubclass(connection_class, HiredisPacking):
        return connection_class
    packing = _PACKING.get(connection_class)
    if packing is None:
        name = f"HiredisPacking{connection_class.__name__}"
        packing = _PACKING[connection_class] = type(name, (HiredisPacking, connection_class), {})
    return packing
