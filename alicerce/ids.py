"""Identifiers: UUIDv7 (time-ordered, RFC 9562) and gateway slugs."""

from __future__ import annotations

import os
import threading
import time
import uuid

_RANDOM_BATCH = 4096  # bytes of os.urandom read at once: one system call per ~400 ids


class _UUID7Source:
    """RFC 9562 method 1: a 12-bit counter keeps ids monotonic within one millisecond.

    The random bits come from os.urandom read a batch at a time (two system calls per id were 5%
    of a worker's CPU under load); a forked child drops its parent's batch, or both would make
    the same ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0
        self._random = b""
        self._offset = 0
        os.register_at_fork(after_in_child=self._forget_random)

    def _forget_random(self) -> None:
        self._random, self._offset = b"", 0

    def next_int(self) -> int:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            offset = self._offset
            if offset + 10 > len(self._random):
                self._random, offset = os.urandom(_RANDOM_BATCH), 0
            self._offset = offset + 10
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = int.from_bytes(self._random[offset : offset + 2]) & 0x3FF
            else:
                self._counter += 1
                if self._counter > 0xFFF:  # exhausted: borrow the next millisecond
                    self._last_ms += 1
                    self._counter = 0
            ms, counter = self._last_ms, self._counter
            random_bytes = self._random[offset + 2 : offset + 10]
        rand_b = int.from_bytes(random_bytes) & ((1 << 62) - 1)
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
