"""The process's one cache (`alicerce.cache`): least recently used out first, optional TTL."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from alicerce import cache
from alicerce.cache import LRUCache, TTLCache


def test_a_full_lru_cache_drops_the_entry_used_longest_ago() -> None:
    lru: LRUCache[str, int | None] = LRUCache(2)
    lru.put("a", 1)
    lru.put("b", None)  # a known miss is an entry too
    assert lru.get("a") == (True, 1)  # "a" is now the most recently used
    assert lru.get("b") == (True, None)
    assert lru.get("a") == (True, 1)
    lru.put("c", 3)
    assert lru.get("b") == (False, None) and len(lru) == 2
    assert lru.get("a") == (True, 1) and lru.get("c") == (True, 3)
    lru.pop("a")
    assert lru.get("a") == (False, None)
    lru.clear()
    assert len(lru) == 0


def test_ttl_entries_expire_and_a_zero_ttl_keeps_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(cache, "time", SimpleNamespace(monotonic=lambda: now[0]))
    ttl: TTLCache[str, str | None] = TTLCache(5.0, max_entries=2)
    ttl.put("key", None)
    assert ttl.get("key") == (True, None)
    now[0] += 5.1
    assert ttl.get("key") == (False, None)
    ttl.put("a", "1")
    ttl.put("b", "2")
    ttl.put("c", "3")
    assert ttl.get("a") == (False, None) and ttl.get("c") == (True, "3")
    never: TTLCache[str, str] = TTLCache(0)
    never.put("key", "value")
    assert never.get("key") == (False, None)
