"""Customer journey state in Redis: one-round-trip load, compare-and-set commit, journey stats.

The store moves opaque bytes (state blobs, decisions); `engine/codec.py` gives them meaning. Keys
come only from `server/store/keys.py`; the commit's atomicity comes only from
`server/store/lua/commit.lua`. Every call's Redis errors go through `server/store/errors.py`:
network-family ones surface as `StoreUnavailable`, so the service can answer from rules alone.

The same Store runs on one Redis or on a Redis Cluster (`server/store/connection.py`, a
``redis+cluster://`` URL): every command it sends touches one customer's keys, which share a hash
tag and so one slot, except the stats pipeline, which the cluster client splits per node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from importlib.resources import files
from types import MappingProxyType
from typing import Any, cast

import redis.asyncio as redis
import redis.exceptions as redis_errors
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.typing import EncodableT

from server.core.config import DAY_S, Settings
from server.core.metrics import REDIS_SECONDS, timed
from server.store.cluster import CallSlots, call_slots
from server.store.connection import RedisClient, connect, connection_kwargs
from server.store.errors import NETWORK_ERRORS, StoreUnavailable, unavailable_on_network_errors
from server.store.keys import (
    STATE_BLOB_FIELD,
    STATE_VERSION_FIELD,
    CustomerKeys,
    Keyspace,
    due_shard,
    timer_member,
)
from server.store.layouts import LayoutRegistry
from server.store.pipelining import LINGER_TURNS, Pipeliner, Queue
from server.store.record import EMPTY_RING, Ring, decode_record, encode_record
from server.store.state_cache import Decoded, StateCache
from server.store.waiting import Abandoned, SentAt

COMMIT_SCRIPT = files("server.store").joinpath("lua", "commit.lua").read_text(encoding="utf-8")
TAKE_SCRIPT = files("server.store").joinpath("lua", "take.lua").read_text(encoding="utf-8")
STATS_SCRIPT = files("server.store").joinpath("lua", "bump_stats.lua").read_text(encoding="utf-8")

LOAD_SECONDS = REDIS_SECONDS.labels(operation="load")
COMMIT_SECONDS = REDIS_SECONDS.labels(operation="commit")

# Summed increments of the journey statistics: (hash key, field) -> amount.
StatIncrements = Counter[tuple[str, str]]
# Fields per bump_stats.lua call, and calls per round trip: a flush after a bulk load holds
# thousands of fields, and neither Redis (running a call) nor this server (packing a round trip)
# is held for long at a time.
STATS_FIELDS_PER_CALL = 256
STATS_CALLS_PER_ROUND_TRIP = 16
# Opaque bytes written by a caller that is not the engine (tests, benchmarks) name no layouts.
EMPTY_LAYOUTS: Mapping[bytes, bytes] = MappingProxyType({})

log = logging.getLogger(__name__)


class CommitOutcome(StrEnum):
    """What a commit did; the values are the script's first reply element."""

    COMMITTED = "COMMITTED"
    CONFLICT = "CONFLICT"


@dataclass(frozen=True, slots=True)
class Loaded:
    """A customer's state as read: blob (None if new), its version (0 if new), the decision
    kept for each event id asked about (None where none is), in the order asked, and the
    whole decision ring, for the commit that follows (`ToCommit.ring`)."""

    state: bytes | None
    version: int
    decisions: list[bytes | None]
    ring: Ring = EMPTY_RING
    decoded: Decoded | None = None  # from the state cache: `ToCommit.decoded` of its writer


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What forgetting a customer deleted: how many of their keys existed, and their state as
    it was deleted (None if they had none, or if it was `unread`: Redis failed after the delete,
    before the layouts it names could be read)."""

    deleted: int
    state: bytes | None
    unread: bool = False


class TakenUnread(StoreUnavailable):
    """Redis failed after a take had deleted the customer's keys, before the state layouts their
    state names could be read from the registry: the record is here, unread, for the caller to
    put back or to say it is lost."""

    def __init__(self, message: str, state: bytes, ring: Ring, deleted: int) -> None:
        super().__init__(message)
        self.state = state
        self.ring = ring
        self.deleted = deleted


@dataclass(frozen=True, slots=True)
class ToLoad:
    """A customer to load, with the event ids whose stored decisions to read."""

    customer_id: str
    anonymous: bool
    event_ids: Sequence[str]


@dataclass(frozen=True, slots=True)
class ToCommit:
    """A customer's new state, if still at `expected_version`, with the events it includes:
    (event id, decision to keep for it), in order, added to `ring`, the decisions kept at
    `expected_version` (`Loaded.ring`; a commit given none forgets them)."""

    customer_id: str
    anonymous: bool
    expected_version: int
    state: bytes
    events: Sequence[tuple[str, bytes]]
    captured: Sequence[str] = ()  # the events as export lines, when capture is on
    timer: TimerWrite | None = None  # the due-time index and outbox, when timers are on
    ring: Ring = EMPTY_RING
    # What `state` was encoded from, opaque here: kept in the state cache with it (`Loaded`).
    decoded: Decoded | None = None


@dataclass(frozen=True, slots=True)
class TimerWrite:
    """What a commit writes for timers: the customer's next due time (None: none pending) and
    the outbox entries, (kind, `OutboxEntry` bytes), in order."""

    due_ms: int | None
    outbox: Sequence[tuple[str, bytes]] = ()
    index: bool = True  # False: leave the due-time index alone (a ruleset without timers)


@dataclass(frozen=True, slots=True)
class CommitResult:
    """The outcome of one commit. `version` is the new version (COMMITTED) or the current one;
    `state` and `ring` are the current state and decision ring (CONFLICT only; None and empty
    when the customer has none)."""

    outcome: CommitOutcome
    version: int
    state: bytes | None = None
    ring: Ring = EMPTY_RING


@dataclass(frozen=True, slots=True)
class _Write:
    """A commit as sent: commit.lua's KEYS and ARGV, and the decision ring it writes."""

    commit: ToCommit
    keys: tuple[str, ...]
    args: list[EncodableT]
    ring: Ring


@dataclass(frozen=True, slots=True)
class StageChange:
    """One journey's stage move for one customer; `from_stage` None means a new customer,
    `to_stage` None a customer who left (forgotten, or merged into another), `transition` None
    that no named transition fired (e.g. the entry stage)."""

    journey: str
    from_stage: str | None
    to_stage: str | None
    transition: str | None


@dataclass(frozen=True, slots=True)
class JourneyCounts:
    """A journey's statistics as stored (`Store.journey_counts`), by hash field."""

    stages: dict[str, int]  # stage -> customers in it now
    activity: dict[str, int]  # keys.activity_field -> customers
    per_day: dict[str, dict[str, int]]  # day -> fields of keys.journey_day
    outcomes: Counter[str]  # fields of keys.outcomes, summed over the days asked for


class Store:
    """Loads and commits customer state. Owns the client: `close` closes it."""

    def __init__(self, client: RedisClient, settings: Settings) -> None:
        """A Store on `client` under the key prefix, state TTL, dedupe window and statistics
        retention of `settings`; `from_settings` builds the client too, as the server does."""
        if connection_kwargs(client).get("decode_responses"):
            raise ValueError(
                "the Redis client decodes replies to str, but state blobs are binary;"
                " build it with decode_responses=False (the default)"
            )
        self._client = client
        # A cluster client's node pools raise when empty instead of waiting: bound the calls.
        self._slots: CallSlots | None = (
            call_slots(client) if isinstance(client, RedisCluster) else None
        )
        self.keys = Keyspace(settings.key_prefix)
        self.state_ttl_s = settings.state_ttl_s
        self.dedupe_window = settings.dedupe_window
        self.decisions_kept = settings.decisions_kept
        self.capture_days = settings.capture_days
        self.stats_retention_s = settings.stats_retention_days * DAY_S
        self.timer_shards = settings.timer_shards
        self.outbox_max_len = settings.outbox_max_len
        self.outbox_stage_changes = bool(settings.outbox_stage_changes)
        # The due-time index and the outbox are not in any customer's hash tag, so the commit
        # script can write them on a single Redis only.
        self.timers_supported = not isinstance(client, RedisCluster)
        # register_script only hashes the source; the first call runs EVALSHA and, on NOSCRIPT
        # (new server, SCRIPT FLUSH, failover), loads the source once and retries by SHA.
        self._commit_script = client.register_script(COMMIT_SCRIPT)
        self._take_script = client.register_script(TAKE_SCRIPT)
        self._stats_script = client.register_script(STATS_SCRIPT)
        # Concurrent loads and commits go out together, one pipeline per event-loop turn. Not on
        # a cluster: its pipelines split per node and run scripts through extra round trips.
        self._company: Callable[[], bool] = lambda: False
        self._pipeliner = (
            Pipeliner(client, linger_turns=LINGER_TURNS, company=lambda: self._company())
            if isinstance(client, redis.Redis)
            else None
        )
        self._calls_out: dict[object, SentAt] = {}  # on a cluster: the calls out
        self._abandoned = Abandoned(settings.redis_timeout_ms / 1000)  # ...and one just left
        self.states = StateCache(settings.state_cache_entries)
        self.layouts = LayoutRegistry(client, self.keys.layouts())

    @classmethod
    def from_settings(cls, settings: Settings, redis_url: str | None = None) -> Store:
        """A Store as `settings` say, on a client of its own for `redis_url` (None: the
        settings' `redis_url`) with the Redis timeout and a connection for every call the
        server admits. Nothing is sent before the first call (`ping` checks Redis answers)."""
        url = redis_url if redis_url is not None else settings.redis_url
        if url is None:
            raise ValueError(
                "settings.redis_url is None (an embedded Redis): give the URL it listens on"
            )
        client = connect(
            url,
            timeout_s=settings.redis_timeout_ms / 1000,
            max_connections=max(256, settings.max_concurrent_calls),
        )
        return cls(client, settings)

    @property
    def redis(self) -> RedisClient:
        """The client itself, for the store's companions (`server.store.timers`)."""
        return self._client

    @property
    def pipelining(self) -> Pipeliner | None:
        """What sends concurrent calls' commands together (None on a cluster)."""
        return self._pipeliner

    def linger_with(self, company: Callable[[], bool]) -> None:
        """While `company()` says the server has other calls, concurrent commands wait a few
        turns of the event loop for more before they go out (`server.store.pipelining`);
        without company (the default) they go out on the next turn."""
        self._company = company

    def redis_wait_s(self) -> float:
        """How long Redis has kept the oldest round trip still out waiting (one just abandoned
        unanswered counts too: `server.store.waiting.Abandoned`; 0 when neither): how slow Redis
        is being right now, apart from this server's queues and its own work meanwhile
        (`server.store.waiting`)."""
        if self._pipeliner is not None:
            return self._pipeliner.redis_s()
        out = min(self._calls_out.values(), key=lambda sent: sent.wall_s, default=None)
        oldest = self._abandoned.oldest(out)
        return 0.0 if oldest is None else oldest.redis_s()

    @property
    def commit_script_sha(self) -> str:
        """SHA1 of commit.lua, the name EVALSHA runs it by."""
        return self._commit_script.sha

    async def load(
        self, *, customer_id: str, event_ids: Sequence[str] = (), anonymous: bool = False
    ) -> Loaded:
        """`load_many` of one customer."""
        (loaded,) = await self.load_many([ToLoad(customer_id, anonymous, event_ids)])
        return loaded

    async def load_many(
        self, wanted: Sequence[ToLoad], *, from_cache: bool = False
    ) -> list[Loaded]:
        """Each customer's state, version and decision ring, with the decision kept for each of
        its event ids, in one round trip (one per customer on a cluster, sent together).

        With `from_cache`, a customer in the state cache is not read (`server.store.state_cache`):
        a stale entry is refused by the commit, whose refusal brings the current one. While the
        cache is not trusted, every customer is read, and one cached at the version read is
        taken from the cache (not decoded again).
        """

        def queue(pipe: Pipeline | ClusterPipeline, one: ToLoad) -> int:
            keys = self.keys.customer(one.customer_id, anonymous=one.anonymous)
            pipe.hmget(keys.state, [STATE_BLOB_FIELD, STATE_VERSION_FIELD])
            return 1

        async def load_alone(one: ToLoad) -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            queue(pipe, one)
            replies: list[Any] = await pipe.execute()
            return replies

        trusting = from_cache and self.states.trusted
        loaded = [self._cached(one) if trusting else None for one in wanted]
        missed = [one for one, hit in zip(wanted, loaded, strict=True) if hit is None]
        if not missed:
            return cast(list[Loaded], loaded)

        def queue_missed(pipe: Pipeline | ClusterPipeline) -> int:
            return sum(queue(pipe, one) for one in missed)

        with timed(LOAD_SECONDS):  # round trips only: a load from the cache is not one
            async with self._calling(f"load {len(missed)} customer(s)"):
                if self._pipeliner is None:
                    replies = [
                        r for rs in await asyncio.gather(*map(load_alone, missed)) for r in rs
                    ]
                else:
                    replies = _raise_errors(await self._pipeliner.send(queue_missed))
        replied = iter(replies)
        read = []
        for index, one in enumerate(wanted):
            if loaded[index] is not None:
                continue
            blob, version = next(replied)
            key, version = self._state_key(one.customer_id, one.anonymous), int(version or 0)
            if from_cache and not trusting:
                cached_version = self.states.version_of(key)
                if cached_version is not None:  # would the cache have been right?
                    self.states.judge(stale=cached_version != version)
                    if cached_version == version:
                        loaded[index] = self._cached(one)
                        continue
            state, ring = decode_record(blob)
            loaded[index] = _loaded(state, version, ring, one.event_ids)
            self.states.put(key, state, version, ring)
            read.append(state)
        await self._learn_layouts(read)
        return cast(list[Loaded], loaded)

    async def _learn_layouts(self, states: Sequence[bytes | None]) -> None:
        """Learn the state layouts `states` name that this process does not know yet, from the
        registry (`server.store.layouts`), so that the states can be decoded."""
        wanted = self.layouts.unknown(states)
        if wanted:  # rare: a layout written elsewhere or before a restart, once a process
            async with self._calling("read state layouts"):
                await self.layouts.learn(wanted)

    def _cached(self, one: ToLoad) -> Loaded | None:
        """The customer as last written or read here, if cached."""
        cached = self.states.get(self._state_key(one.customer_id, one.anonymous))
        if cached is None:
            return None
        return _loaded(cached.state, cached.version, cached.ring, one.event_ids, cached.decoded)

    def _state_key(self, customer_id: str, anonymous: bool) -> str:
        return self.keys.customer(customer_id, anonymous=anonymous).state

    async def commit(
        self,
        *,
        customer_id: str,
        expected_version: int,
        state: bytes,
        events: Sequence[tuple[str, bytes]] = (),
        ring: Ring = EMPTY_RING,
        anonymous: bool = False,
        layouts: Mapping[bytes, bytes] = EMPTY_LAYOUTS,
        timer: TimerWrite | None = None,
    ) -> CommitResult:
        """`commit_many` of one customer."""
        one = ToCommit(
            customer_id, anonymous, expected_version, state, events, timer=timer, ring=ring
        )
        (result,) = await self.commit_many([one], layouts=layouts)
        return result

    async def commit_many(
        self, commits: Sequence[ToCommit], *, layouts: Mapping[bytes, bytes] = EMPTY_LAYOUTS
    ) -> list[CommitResult]:
        """Write each customer's `state` under a new version if it is still at
        `expected_version`: each its own atomic compare-and-set, all sent in one round trip
        (one per customer on a cluster, sent together). The state cache follows what each
        commit found: the new state, or the current one (CONFLICT).

        Each of the commit's events is kept in the customer's ring (the last `dedupe_window`
        events, the decisions of the last `decisions_kept`), which the caller loaded at
        `expected_version` and found none of them in: a version still matching means no
        repeat. The customer's state gets `state_ttl_s` again on each write.

        `layouts` are those the states were written under (`engine.codec.layouts_of`), kept in
        the layouts registry before the first commit that needs them.
        """
        if not self.layouts.all_kept(layouts):
            async with self._calling("keep state layouts"):
                await self.layouts.keep(layouts)
        calls = [self._write(c) for c in commits]
        with timed(COMMIT_SECONDS):
            async with self._calling(f"commit {len(commits)} customer(s)"):
                if self._pipeliner is None:
                    replies = await asyncio.gather(
                        *(self._commit_script(keys=write.keys, args=write.args)
                          for write in calls)
                    )  # fmt: skip
                else:
                    replies = await self._commit_pipelined(calls)
        results = [commit_result(reply) for reply in replies]
        await self._learn_layouts([r.state for r in results if r.outcome is CommitOutcome.CONFLICT])
        for write, result in zip(calls, results, strict=True):
            self._follow(write, result)
        return results

    def _follow(self, write: _Write, result: CommitResult) -> None:
        """Cache what the commit found the customer's state to be."""
        commit = write.commit
        key = self._state_key(commit.customer_id, commit.anonymous)
        # Trusted, the commit tells whether the version the cache held was still Redis's (not
        # trusted, the loads tell: `load_many`).
        if self.states.trusted and self.states.version_of(key) == commit.expected_version:
            self.states.judge(stale=result.outcome is not CommitOutcome.COMMITTED)
        if result.outcome is CommitOutcome.COMMITTED:
            self.states.put(key, commit.state, result.version, write.ring, commit.decoded)
        else:
            self.states.put(key, result.state, result.version, result.ring)

    def _write(self, commit: ToCommit) -> _Write:
        """What commit.lua is sent for `commit`, under a new version."""
        version = new_version()
        ring = commit.ring.then(commit.events, self.dedupe_window, self.decisions_kept)
        args = commit_script_args(
            commit.expected_version, version, encode_record(commit.state, ring),
            ttl_s=self.state_ttl_s, captured=commit.captured, capture_days=self.capture_days,
        )  # fmt: skip
        if commit.timer is not None:
            member = timer_member(commit.customer_id, anonymous=commit.anonymous)
            args += timer_script_args(
                args, member, commit.timer, outbox_max_len=self.outbox_max_len
            )
        return _Write(commit, self._commit_keys(commit), args, ring)

    def commit_command(self, commit: ToCommit) -> tuple[tuple[str, ...], list[EncodableT], Ring]:
        """commit.lua's KEYS and ARGV for `commit` under a new version, and the ring it writes:
        the commit as `commit_many` sends it, for a caller that sends it itself (its reply:
        `commit_result`; `benchmarks.load.bare`)."""
        write = self._write(commit)
        return write.keys, write.args, write.ring

    def _commit_keys(self, commit: ToCommit) -> tuple[str, ...]:
        """commit.lua's KEYS: the state, the decisions, the captured events' stream, and with
        timers the customer's due-time shard and the outbox."""
        keys = self.keys.customer(commit.customer_id, anonymous=commit.anonymous)
        if commit.timer is None:
            return _commit_keys(keys)
        member = timer_member(commit.customer_id, anonymous=commit.anonymous)
        shard = self.keys.due(due_shard(member, self.timer_shards))
        return (*_commit_keys(keys), shard, self.keys.outbox())

    async def _commit_pipelined(self, calls: list[_Write]) -> list[Any]:
        """commit.lua's calls in the shared pipeline (`_scripts_sent`)."""
        assert self._pipeliner is not None
        return await self._scripts_sent(
            self._pipeliner.send,
            self._commit_script.sha,
            COMMIT_SCRIPT,
            [(c.keys, c.args) for c in calls],
        )

    async def _scripts_sent(
        self,
        send: Callable[[Queue], Awaitable[list[Any]]],
        sha: str,
        source: str,
        calls: Sequence[tuple[Sequence[str], Sequence[EncodableT]]],
    ) -> list[Any]:
        """EVALSHA of each (keys, args), queued on one pipeline that `send` sends; on NOSCRIPT
        (a new or restarted Redis, SCRIPT FLUSH) load the script and send those again:
        NOSCRIPT means it did not run, so nothing is doubled."""
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):

            def queue(pipe: Pipeline, todo: list[int] = todo) -> int:
                for i in todo:
                    keys, args = calls[i]
                    pipe.evalsha(sha, len(keys), *keys, *args)
                return len(todo)

            for i, reply in zip(todo, await send(queue), strict=True):
                replies[i] = reply
            todo = [i for i in todo if isinstance(replies[i], redis_errors.NoScriptError)]
            if not todo or attempt:
                break
            await self._client.script_load(source)
        return _raise_errors(replies)

    async def _sent_apart(self, queue: Queue) -> list[Any]:
        """`queue`'s commands in a pipeline of their own, off the shared one (whose round trips
        `journeyman_redis_pipelines_total` counts as the hot path's); each command's error is
        its reply."""
        pipe = cast(Pipeline, self._client.pipeline(transaction=False))
        queue(pipe)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def bump_stats(self, journey_changes: list[StageChange], day: str) -> None:
        """Count stage moves (customers per stage) and transitions taken on UTC `day`."""
        await self.add_to_stats(self.stat_increments(journey_changes, day))

    def stat_increments(self, journey_changes: list[StageChange], day: str) -> StatIncrements:
        """What `journey_changes` on UTC `day` add to the counts, by (key, field); summed, so
        many events' changes can be added up first and written as one increment each."""
        increments: StatIncrements = Counter()
        for change in journey_changes:
            if change.from_stage != change.to_stage:
                stages = self.keys.stage_counts(change.journey)
                if change.from_stage is not None:
                    increments[stages, change.from_stage] -= 1
                if change.to_stage is not None:
                    increments[stages, change.to_stage] += 1
            if change.transition is not None:
                increments[self.keys.transitions(change.journey, day), change.transition] += 1
        return increments

    async def add_to_stats(self, increments: StatIncrements) -> None:
        """Write summed stat increments (`stat_increments`): one bump_stats.lua call per hash
        (`lua/bump_stats.lua`), which also deletes the activity fields left at 0 and keeps a
        day's hash `stats_retention_s` after its last count.

        Outside the commit script on purpose: these keys are global, so they live in other
        cluster slots than the customer's and no script of a customer may touch them. Counts
        are analytics, not state: a crash between commit and here loses a few increments, which
        is cheaper than coordinating slots on every event. A flush after a bulk load holds
        thousands of fields: they go STATS_FIELDS_PER_CALL to a call and
        STATS_CALLS_PER_ROUND_TRIP calls to a round trip.
        """
        fields: dict[str, list[EncodableT]] = {}
        for (key, field), delta in increments.items():
            if delta:
                fields.setdefault(key, []).extend((field, delta))
        calls: list[tuple[Sequence[str], Sequence[EncodableT]]] = []
        for key, pairs in fields.items():
            keep_s = self.stats_retention_s if self.keys.is_per_day(key) else 0
            prune = 1 if self.keys.is_activity(key) else 0
            for start in range(0, len(pairs), 2 * STATS_FIELDS_PER_CALL):
                calls.append(
                    ((key,), [keep_s, prune, *pairs[start : start + 2 * STATS_FIELDS_PER_CALL]])
                )
        for start in range(0, len(calls), STATS_CALLS_PER_ROUND_TRIP):
            part = calls[start : start + STATS_CALLS_PER_ROUND_TRIP]
            async with self._calling("bump stats"):
                if self._pipeliner is None:  # a cluster: each hash in its own slot
                    await asyncio.gather(
                        *(self._stats_script(keys=keys, args=args) for keys, args in part)
                    )
                else:
                    sha = self._stats_script.sha
                    await self._scripts_sent(self._sent_apart, sha, STATS_SCRIPT, part)

    async def stage_counts(self, journey: str) -> dict[str, int]:
        """Customers per stage now, for `journey` (stages nobody reached are absent)."""
        async with self._calling("read stage counts"):
            raw = await self._client.hgetall(self.keys.stage_counts(journey))
        return {_text(stage): int(count) for stage, count in raw.items()}

    async def transition_counts(self, journey: str, day: str) -> dict[str, int]:
        """Transitions taken on UTC `day` (``YYYY-MM-DD``), for `journey`."""
        async with self._calling("read transition counts"):
            raw = await self._client.hgetall(self.keys.transitions(journey, day))
        return {_text(name): int(count) for name, count in raw.items()}

    async def outcome_counts(self, journey: str, days: Sequence[str]) -> Counter[str]:
        """Exposures, conversions and values (fields of `keys.outcomes`) of `journey`, summed
        over UTC `days`, read in one pipeline."""
        pipe = self._client.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(self.keys.outcomes(journey, day))
        async with self._calling("read outcome counts"):
            replies = await pipe.execute() if days else []
        totals: Counter[str] = Counter()
        for raw in replies:
            totals.update({_text(name): int(count) for name, count in raw.items()})
        return totals

    async def journey_counts(
        self, journey: str, days: Sequence[str], outcome_days: Sequence[str]
    ) -> JourneyCounts:
        """What the journey map reads of `journey`, in one pipeline: customers per stage now,
        per stage and hour of last event, the moves and friction of each UTC day of `days`,
        and exposures and conversions summed over `outcome_days`."""
        keys = self.keys
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(keys.stage_counts(journey))
        pipe.hgetall(keys.activity(journey))
        for day in days:
            pipe.hgetall(keys.journey_day(journey, day))
        for day in outcome_days:
            pipe.hgetall(keys.outcomes(journey, day))
        async with self._calling("read journey counts"):
            replies = await pipe.execute()
        stages, activity, rest = replies[0], replies[1], replies[2:]
        outcomes: Counter[str] = Counter()
        for raw in rest[len(days) :]:
            outcomes.update(_counts(raw))
        return JourneyCounts(
            stages=_counts(stages), activity=_counts(activity),
            per_day={day: _counts(raw) for day, raw in zip(days, rest, strict=False)},
            outcomes=outcomes,
        )  # fmt: skip

    async def forget(self, *, customer_id: str, anonymous: bool = False) -> Forgotten:
        """Delete every key of the customer (erasure requests), their captured events too,
        reading their state in the same step (take.lua): no event of theirs lands between."""
        keys = self.keys.customer(customer_id, anonymous=anonymous)
        try:
            taken, deleted = await self._take(keys, [*keys.all(), keys.captured], "forget")
        except TakenUnread as unread:
            log.warning("a forgotten customer's state could not be read after: %s", unread)
            return Forgotten(unread.deleted, None, unread=True)  # forgotten all the same
        return Forgotten(deleted, None if taken is None else taken[0])

    async def take(self, *, customer_id: str, anonymous: bool = False) -> bytes | None:
        """The customer's state, read and every key of theirs deleted in one step (take.lua);
        None when they have no state."""
        taken = await self.take_record(customer_id=customer_id, anonymous=anonymous)
        return None if taken is None else taken[0]

    async def take_record(
        self, *, customer_id: str, anonymous: bool = False
    ) -> tuple[bytes | None, Ring] | None:
        """`take`, with the customer's decision ring: what putting the state back needs.
        Raises TakenUnread when Redis failed after the keys were deleted."""
        keys = self.keys.customer(customer_id, anonymous=anonymous)
        taken, _ = await self._take(keys, keys.all(), "take")
        return taken

    async def _take(
        self, keys: CustomerKeys, deleting: Sequence[str], doing: str
    ) -> tuple[tuple[bytes | None, Ring] | None, int]:
        """The customer's state and ring (None without a state), read as `deleting` (keys of
        their hash tag: one slot, so valid on a cluster too) are deleted in the same step;
        and how many of those keys existed. Raises TakenUnread when the layouts the state names
        could not be read after it was taken (the keys are deleted then: nothing else holds it)."""
        self.states.drop(keys.state)
        async with self._calling(f"{doing} {keys.state}"):
            record, deleted = await self._take_script(keys=deleting, args=[STATE_BLOB_FIELD])
        if record is None:
            return None, int(deleted)
        state, ring = decode_record(record)
        try:
            await self._learn_layouts([state])
        except StoreUnavailable as error:
            assert state is not None  # a ring alone names no layout: none was asked for
            raise TakenUnread(str(error), state, ring, int(deleted)) from error
        return (state, ring), int(deleted)

    async def evicts(self) -> str | None:
        """The `maxmemory-policy` under which Redis deletes keys to make room, when it may
        delete journeyman's: a policy other than noeviction with a `maxmemory` set (volatile-*
        policies take customer states, which have a TTL; allkeys-* any key, the layouts
        registry too); on a cluster, any primary's. None when it never does, or cannot be asked
        (`INFO memory` not granted)."""
        try:
            async with self._calling("read the eviction policy"):
                if isinstance(self._client, RedisCluster):
                    replies = await self._client.info("memory", target_nodes=RedisCluster.PRIMARIES)
                else:
                    replies = await self._client.info("memory")
        except (StoreUnavailable, redis_errors.RedisError):
            return None
        # A cluster answers per primary, keyed by node (one primary: its reply alone).
        per_node = replies.values() if "maxmemory_policy" not in replies else [replies]
        for memory in per_node:
            policy = str(memory.get("maxmemory_policy", "noeviction"))
            if policy != "noeviction" and memory.get("maxmemory"):
                return policy
        return None

    async def ping(self) -> None:
        """Raise StoreUnavailable unless Redis answers PING.

        On a cluster this is also the client's initialisation: it reads the slot map (once;
        again after a failover) and then every primary must answer.
        """
        async with self._calling("ping"):
            if isinstance(self._client, RedisCluster):
                await self._client.initialize()
                await self._client.ping(target_nodes=RedisCluster.PRIMARIES)
            else:
                await self._client.ping()

    async def close(self) -> None:
        """Close the client and its connection pool, once the pipelines still out are answered."""
        if self._pipeliner is not None:
            await self._pipeliner.drain()
        await self._client.aclose()

    def _calling(self, operation: str) -> AbstractAsyncContextManager[None]:
        """Run one Redis call: network-family errors become StoreUnavailable, and on a cluster
        the call first waits for one of the `max_connections` call slots."""
        if self._slots is None:
            return unavailable_on_network_errors(operation)
        return self._cluster_call(operation)

    @contextlib.asynccontextmanager
    async def _cluster_call(self, operation: str) -> AsyncIterator[None]:
        """`_calling` on a cluster: a call slot first, and the call counted as out until it is
        answered (`redis_wait_s`)."""
        assert self._slots is not None
        with unavailable_on_network_errors(operation):
            async with self._slots.held():
                call = object()
                self._calls_out[call] = sent = SentAt.now()
                try:
                    yield
                except _UNANSWERED:
                    self._abandoned.add(sent)
                    raise
                else:
                    self._abandoned.answered()
                finally:
                    del self._calls_out[call]


# How a call ends that Redis did not answer.
_UNANSWERED: tuple[type[BaseException], ...] = (asyncio.CancelledError, *NETWORK_ERRORS)


def new_version() -> int:
    """A version token for a commit (commit.lua): random, so never one a state had before;
    the top bit set keeps it apart from the counters older versions of journeyman wrote."""
    return (1 << 62) | random.getrandbits(62)


def commit_script_args(
    expected_version: int,
    version: int,
    blob: EncodableT,
    *,
    ttl_s: int,
    captured: Sequence[str] = (),
    capture_days: int = 0,
) -> list[EncodableT]:
    """commit.lua's ARGV (see the script's header): the one place that knows their order."""
    args: list[EncodableT] = [expected_version, version, blob, ttl_s]
    if captured and capture_days > 0:
        keep_ms = capture_days * 86_400_000
        args += (len(captured), max(0, int(time.time() * 1000) - keep_ms), capture_days * 86_400)
        args += tuple(captured)
    return args


def timer_script_args(
    before: Sequence[EncodableT], member: str, timer: TimerWrite, *, outbox_max_len: int
) -> list[EncodableT]:
    """commit.lua's timer arguments, after `before` (what `commit_script_args` returned): the
    capture count is filled in when capture left it out, so the script finds them."""
    args: list[EncodableT] = [0] if len(before) == 4 else []
    args += [member if timer.index else "", "" if timer.due_ms is None else timer.due_ms]
    args.append(len(timer.outbox))
    args.append(outbox_max_len)
    for kind, entry in timer.outbox:
        args += (kind, entry)
    return args


def _commit_keys(keys: CustomerKeys) -> tuple[str, ...]:
    """commit.lua's KEYS: the state, the decisions and the captured events' stream."""
    return (*keys.all(), keys.captured)


def _raise_errors(replies: list[Any]) -> list[Any]:
    """The replies of a pipelined call, or the first command error among them, raised."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def commit_result(reply: list[Any]) -> CommitResult:
    """What commit.lua's reply says."""
    outcome = CommitOutcome(_text(reply[0]))
    if outcome is CommitOutcome.COMMITTED:
        return CommitResult(outcome, int(reply[1]))
    state, ring = decode_record(reply[2] or None)
    return CommitResult(outcome, int(reply[1]), state, ring)


def _loaded(
    state: bytes | None,
    version: int,
    ring: Ring,
    event_ids: Sequence[str],
    decoded: Decoded | None = None,
) -> Loaded:
    return Loaded(state, version, [ring.find(event_id) for event_id in event_ids], ring, decoded)


def _counts(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {_text(name): int(count) for name, count in raw.items()}


def _text(value: bytes | str) -> str:
    # Replies are bytes (the constructor refuses decode_responses); str only satisfies the types.
    return value.decode() if isinstance(value, bytes) else value
