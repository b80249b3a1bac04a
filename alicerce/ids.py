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

    def next_int(self) -> int:
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
        return (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b


_source = _UUID7Source()


def uuid7() -> uuid.UUID:
    """A time-ordered UUIDv7, so ids sort by creation time."""
    return uuid.UUID(int=_source.next_int())


def new_id() -> str:
    """`str(uuid7())` without building a UUID object: one is made for every request."""
    h = f"{_source.next_int():032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def slug_for(name: str, id_: str) -> str:
    """`name:` + the last four hex digits of the id, e.g. `support-bot:50c3`."""
    return f"{name}:{id_.replace('-', '')[-4:]}"
