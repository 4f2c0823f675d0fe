"""Values computed once per object and forgotten with it: the caches a compiled ruleset feeds.

The codec's layouts, the timers' transitions and the like are derived from a compiled journey or
ruleset once, then looked up by the object's identity on every event. Holding the object to
keep its identity valid would keep every ruleset a long-running server ever loaded (each reload
compiles a new one); a weak reference drops the entry when the ruleset is freed instead.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")


class PerObject(Generic[Key, Value]):
    """`compute(key)`, once for each live `key` (by identity; `key` must take weak
    references)."""

    def __init__(self, compute: Callable[[Key], Value]) -> None:
        self._compute = compute
        self._values: dict[int, tuple[weakref.ref[Key], Value]] = {}

    def __call__(self, key: Key) -> Value:
        entry = self._values.get(id(key))
        if entry is not None and entry[0]() is key:
            return entry[1]
        value = self._compute(key)
        ident = id(key)
        # The callback runs as `key` is freed, before its id can name another object.
        self._values[ident] = (weakref.ref(key, lambda _: self._values.pop(ident, None)), value)
        return value

    def __len__(self) -> int:
        """How many objects have a value now."""
        return len(self._values)
