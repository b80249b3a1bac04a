"""How far behind a worker's event loop runs: the wait for CPU that no in-flight bound sees.

A worker out of CPU does not hold more requests than its bound; it reads them late. So the loop
times itself: a timer asks to run every `interval_s` and notes how late it ran. Lateness that
lasts (`SUSTAINED_TICKS` ticks in a row beyond the bound) is overload, and the door
(`api/fastpath.py`) answers new inference requests 503 at once until a tick is on time again: a
shed request costs a few microseconds, an admitted one its whole pipeline, so shedding gives the
CPU back to the requests already in. A single slow callback (a long query, a collection) makes
one tick late and sheds nothing.

What it does not see: a worker just past its CPU whose requests wait unread in the kernel while
each turn of the loop stays short. At 1,500-1,800 requests/s on one worker of a 2-core machine
requests waited seconds while the loop ran under 180 ms late (BENCHMARKS.md); it catches a loop
held by long callbacks or starved by other processes.
"""

from __future__ import annotations

import asyncio

SUSTAINED_TICKS = 3


class LoopLag:
    def __init__(self, bound_s: float, interval_s: float = 0.05) -> None:
        self.bound_s = bound_s
        self.interval_s = interval_s
        self.lag_s = 0.0  # how late the last tick ran
        self.overloaded = False  # the last SUSTAINED_TICKS ticks were all later than the bound
        self._late_ticks = 0
        self._due = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.overloaded = False

    def _schedule(self) -> None:
        assert self._loop is not None
        self._due = self._loop.time() + self.interval_s
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        self.lag_s = max(0.0, self._loop.time() - self._due)
        self._late_ticks = self._late_ticks + 1 if self.lag_s > self.bound_s else 0
        self.overloaded = self._late_ticks >= SUSTAINED_TICKS
        self._schedule()
