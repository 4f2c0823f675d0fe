"""The registry of state layouts: every journey layout a customer state in this Redis was written
under (`engine.codec.StateLayout`), kept in one hash, so that any server process reads any
customer's state by name, whichever ruleset wrote it.

A state is written as its journeys' arrays beside their layouts' digests. A process reads the
arrays as they are under the layout in force; under another, it needs that layout's description,
which the writer may have been alone to know (another server's newer rules, this server's rules
before a restart). So a layout is kept here before the first commit of a state written under it,
and read back from here when a loaded state names one this process has not learned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

from redis.typing import EncodableT

from engine.codec import learn_layout, unknown_layouts
from engine.errors import StateDecodeError
from server.store.connection import RedisClient

log = logging.getLogger(__name__)


class LayoutRegistry:
    """The layouts hash at `key` (field: the digest in hex; value: the description)."""

    def __init__(self, client: RedisClient, key: str) -> None:
        self._client = client
        self._key = key
        self._kept: set[bytes] = set()  # digests this process wrote or found there

    def all_kept(self, layouts: Mapping[bytes, bytes]) -> bool:
        """Whether `layouts` (`engine.codec.layouts_of`) are known to be kept already."""
        return self._kept.issuperset(layouts)

    async def keep(self, layouts: Mapping[bytes, bytes]) -> None:
        """Keep `layouts` (digest -> description), before a state written under them is."""
        missing: dict[EncodableT, EncodableT] = {
            d.hex(): text for d, text in layouts.items() if d not in self._kept
        }
        if missing:
            # Content-addressed: writing a layout again, from this or any process, changes nothing.
            await self._client.hset(self._key, mapping=missing)
            self._kept.update(layouts)

    @staticmethod
    def unknown(states: Iterable[bytes | None]) -> list[bytes]:
        """The layouts `states` were written under that this process does not know."""
        return sorted({digest for state in states for digest in unknown_layouts(state)})

    async def learn(self, wanted: Sequence[bytes]) -> None:
        """Learn the layouts `wanted` (`unknown`) from the registry."""
        found = await self._client.hmget(self._key, [d.hex() for d in wanted])
        for digest, description in zip(wanted, found, strict=True):
            if description is None:
                # Only a registry deleted or emptied by hand loses a layout: its states cannot
                # be read by name any more (`decode_or_new` starts those customers afresh).
                log.error(
                    "state layout %s is not in the layouts registry %s: the customer states "
                    "written under it cannot be read; restore the hash from a backup of Redis",
                    digest.hex(), self._key,
                )  # fmt: skip
                continue
            try:
                # bytes: the store's client never decodes replies (`Store.__init__` checks)
                learn_layout(cast(bytes, description))
            except StateDecodeError:
                log.error("the layouts registry %s holds a damaged layout %s", self._key,
                          digest.hex(), exc_info=True)  # fmt: skip
            self._kept.add(digest)
