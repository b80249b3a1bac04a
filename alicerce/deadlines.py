"""Timeouts as deadlines that one sweep per event loop checks, not a timer per request or read.

A `call_later` and its cancel cost ~2 µs; a server that arms one per request phase (the
connection guard, `connections.py`) or per read (a relayed stream, `upstreams/read_deadlines.py`)
pays that thousands of times a second for timers that almost never fire. Instead each timed
thing stores a number, its `deadline` (loop time, or None while untimed), and a `DeadlineSweep`
calls `expired()` on those past it, every `tick` seconds while it has any to watch: a timeout
fires within one tick of its deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any


def sweep_tick(*timeouts_s: float) -> float:
    """A sweep's period for these timeouts: a quarter of the shortest, at most one second."""
    return min(1.0, *(timeout / 4 for timeout in timeouts_s))


class DeadlineSweep:
    """Checks `members` (objects with a `deadline` and an `expired()`; others are skipped)
    every `tick` seconds on `loop`, while there are any: `watch()` after adding one."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, members: Collection[Any], tick: float
    ) -> None:
        self.loop = loop
        self.members = members
        self.tick = tick
        self._handle: asyncio.TimerHandle | None = None

    def watch(self) -> None:
        if self._handle is None:
            self._handle = self.loop.call_later(self.tick, self._sweep)

    def _sweep(self) -> None:
        self._handle = None
        now = self.loop.time()
        for member in list(self.members):  # an expiry may remove members
            deadline = getattr(member, "deadline", None)
            if deadline is not None and deadline <= now:
                member.expired()
        if self.members:
            self.watch()
