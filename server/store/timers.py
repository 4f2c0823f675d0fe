"""The due-time index and the outbox, as the timer loop and Subscribe use them.

The commit script (`lua/commit.lua`) writes both, atomically with the customer's state: each
customer's next due time in one of `timer_shards` sorted sets, and the outbox entries of the
decision in one Redis Stream. Here they are read:

- `claim_due` takes the due customers of every shard (`lua/claim_timers.lua`, one script call
  per shard, all in one round trip): each claimed member is re-scored to the claim's lapse, so
  no other server claims it meanwhile, and one that dies holding it leaves it to be taken over.
- `settle` puts a claimed customer back at the due time its state says, when no commit did.
- `read_outbox` follows the outbox from an entry id (XREAD, blocking).

Consumers outside journeyman read the same stream with consumer groups (XREADGROUP, XACK):
README, "Timers and the outbox".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from redis.exceptions import NoScriptError

from server.store.connection import connection_kwargs
from server.store.errors import unavailable_on_network_errors
from server.store.keys import due_shard, member_customer, timer_member
from server.store.redis_store import Store

CLAIM_SCRIPT = files("server.store").joinpath("lua", "claim_timers.lua").read_text("utf-8")
SETTLE_SCRIPT = files("server.store").joinpath("lua", "settle_timer.lua").read_text("utf-8")


@dataclass(frozen=True, slots=True)
class Claim:
    """A customer claimed from the due-time index until `lapse_ms`."""

    customer_id: str
    anonymous: bool
    member: str
    shard: int
    lapse_ms: int


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One outbox entry as stored: its stream id, kind and `OutboxEntry` bytes."""

    id: str
    kind: str
    entry: bytes


class TimerIndex:
    """Claims due customers and settles them; reads the outbox (see the module)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._client = store.redis
        self.keys = store.keys
        self.shards = store.timer_shards
        self._claim = self._client.register_script(CLAIM_SCRIPT)
        self._settle = self._client.register_script(SETTLE_SCRIPT)
        # A blocking read must answer within the client's socket timeout (the Redis budget),
        # or it reads as a Redis that does not answer.
        timeout_s = connection_kwargs(self._client).get("socket_timeout") or 1.0
        self.longest_block_ms = max(10, int(timeout_s * 1000) // 2)

    async def claim_due(self, now_ms: int, lapse_ms: int, limit: int) -> list[Claim]:
        """Up to `limit` due customers per shard, claimed until `lapse_ms`."""

        def queue(pipe: Any) -> None:
            for shard in range(self.shards):
                pipe.evalsha(self._claim.sha, 1, self.keys.due(shard), now_ms, lapse_ms, limit)

        claims = []
        for shard, reply in enumerate(await self._scripted("claim timers", queue)):
            for member in reply[0::2]:
                customer_id, anonymous = member_customer(_text(member))
                claims.append(Claim(customer_id, anonymous, _text(member), shard, lapse_ms))
        return claims

    async def settle(self, settled: Sequence[tuple[Claim, int | None]]) -> None:
        """Give each claimed customer back its due time (None: none pending) unless a commit
        has re-scored it since the claim."""

        def queue(pipe: Any) -> None:
            for claim, due_ms in settled:
                due = "" if due_ms is None else due_ms
                key = self.keys.due(claim.shard)
                pipe.evalsha(self._settle.sha, 1, key, claim.member, claim.lapse_ms, due)

        if settled:
            await self._scripted("settle timers", queue)

    async def schedule(self, customer_id: str, due_ms: int, *, anonymous: bool = False) -> None:
        """Put a customer in the index at `due_ms` (tests, and customers stored before timers)."""
        member = timer_member(customer_id, anonymous=anonymous)
        with unavailable_on_network_errors("schedule timer"):
            await self._client.zadd(self.keys.due(due_shard(member, self.shards)), {member: due_ms})

    async def pending(self) -> int:
        """Customers in the index (due or not, claimed or not)."""
        with unavailable_on_network_errors("count timers"):
            pipe = self._client.pipeline(transaction=False)
            for shard in range(self.shards):
                pipe.zcard(self.keys.due(shard))
            return sum(int(n) for n in await pipe.execute())

    async def read_outbox(self, after_id: str, *, block_ms: int, count: int) -> list[OutboxItem]:
        """Outbox entries after `after_id` ("$": only new ones), waiting up to `block_ms` for
        the first (0: do not wait)."""
        with unavailable_on_network_errors("read outbox"):
            block = min(block_ms, self.longest_block_ms) or None
            reply: Any = await self._client.xread(
                {self.keys.outbox(): after_id}, count=count, block=block
            )
        items = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                kind, entry = fields.get(b"k", b""), fields.get(b"d", b"")
                items.append(OutboxItem(_text(entry_id), _text(kind), entry))
        return items

    async def last_outbox_id(self) -> str:
        """The id of the newest outbox entry ("0-0" when empty)."""
        with unavailable_on_network_errors("read outbox"):
            reply: Any = await self._client.xrevrange(self.keys.outbox(), count=1)
        return _text(reply[0][0]) if reply else "0-0"

    async def _scripted(self, operation: str, queue: Callable[[Any], None]) -> list[Any]:
        """Run the script calls `queue` adds to a pipeline; on NOSCRIPT (a new or restarted
        Redis) load the scripts and run them again: NOSCRIPT means none of them ran."""
        with unavailable_on_network_errors(operation):
            for attempt in range(2):
                pipe = self._client.pipeline(transaction=False)
                queue(pipe)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
                if attempt or not any(isinstance(r, NoScriptError) for r in replies):
                    break
                await self._client.script_load(CLAIM_SCRIPT)
                await self._client.script_load(SETTLE_SCRIPT)
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
