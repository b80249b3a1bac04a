"""Identifiers: UUIDv7 (time-ordered, RFC 9562) and gateway slugs."""

from __future__ import annotations

import os
import threading
import time
import uuid


class _UUID7Source:
    """RFC 9562 method 1: a 12-bit counter keeps ids monotonic within one millisecond."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def next(self) -> uuid.UUID:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
            else:
                self._counter += 1
                if self._counter > 0xFFF:  # exhausted: borrow the next millisecond
                    self._last_ms += 1
                    self._counter = 0
            ms, counter = self._last_ms, self._counter
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
        return uuid.UUID(int=value)


_source = _UUID7Source()


def uuid7() -> uuid.UUID:
    """A time-ordered UUIDv7, so ids sort by creation time."""
    return _source.next()


def new_id() -> str:
    return str(_source.next())


def slug_for(name: str, id_: str) -> str:
    """`name:` + the last four hex digits of the id, e.g. `support-bot:50c3`."""
    return f"{name}:{id_.replace('-', '')[-4:]}"
