"""The process's one cache: bounded, least recently used first out, optionally time-bounded.

`LRUCache` keeps what is pure to keep (a query's vector never changes for one embedder);
`TTLCache` keeps the hot path's lookups (keys, gateways), which another process may change:
writes in this process invalidate at once, writes in another worker or replica are seen when an
entry expires (`ALICERCE_CACHE_TTL_S`, 5 s by default).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """At most `max_entries`; a full cache drops the entry used longest ago."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        """(found, value): a cached `None` (a known miss) is told apart from no entry."""
        if key not in self._entries:
            return False, None
        self._entries.move_to_end(key)
        return True, self._entries[key]

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class TTLCache(Generic[K, V]):
    """An `LRUCache` whose entries also expire `ttl_s` after they were put (never kept at 0)."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl_s
        self._entries: LRUCache[K, tuple[float, V]] = LRUCache(max_entries)

    def get(self, key: K) -> tuple[bool, V | None]:
        """(found, value): a cached `None` (a known miss) is told apart from no entry."""
        _, entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if expires < time.monotonic():
            self._entries.pop(key)
            return False, None
        return True, value

    def put(self, key: K, value: V) -> None:
        if self._ttl <= 0:
            return
        self._entries.put(key, (time.monotonic() + self._ttl, value))

    def clear(self) -> None:
        self._entries.clear()
