"""A small time-bounded cache for the hot path's lookups (keys, gateways).

Writes in this process invalidate at once; writes in another worker or replica are seen when
an entry expires (`ALICERCE_CACHE_TTL_S`, 5 s by default).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        """(found, value): a cached `None` (a known miss) is told apart from no entry."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if expires < time.monotonic():
            self._entries.pop(key, None)
            return False, None
        return True, value

    def put(self, key: K, value: V) -> None:
        if self._ttl <= 0:
            return
        self._entries[key] = (time.monotonic() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
