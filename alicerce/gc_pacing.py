"""When a serving worker's cyclic garbage collector runs: while it is idle, not amid its requests.

CPython collects whenever tracked allocations outnumber deallocations by 700, and a collection
scans every object of the generations it collects, the objects of the requests in flight
included. A worker holding 1,500 requests (1,000 requests/s at 1.5 s) holds about 100,000 of
them: measured at 1,000 requests/s against a 1.5 s upstream, its collections paused it for 40
to 190 ms each, took 2.2 of its 10 CPU seconds, put its p99 300 ms above the upstream's and the
chunk delay p99 of 600 streams at 34-37 ms, and collected nothing (what a request makes is freed
by reference counting, not by the collector). With collections paced as below, the same runs
gave a p99 11-51 ms above the upstream's and a chunk delay p99 of 5-9 ms (BENCHMARKS.md).

So once a worker has started (and frozen what it made then, `api/app.py`) automatic collection is
off, and `GcPacer` collects on its own schedule, checking once a second:

- when nothing is in flight (`busy()` is 0) and objects were made since the last collection: the
  collection scans only what lives between requests (caches) and delays nobody;
- at the latest `max_interval_s` after the last collection (ALICERCE_GC_MAX_INTERVAL_S, 300 s)
  whatever is in flight, and sooner once `MAX_PENDING_OBJECTS` objects wait: garbage made by a
  worker that is never idle is still reclaimed, in one pause per interval instead of several a
  second.

Each collection is timed into `alicerce_gc_pause_seconds{trigger}`. `max_interval_s` 0 leaves
CPython's own schedule in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("alicerce.gc")

# Young objects (net of those freed) at which a busy worker collects before its interval is up:
# at the ~160 ms per 100,000 objects measured for a busy collection, a pause of about a second.
MAX_PENDING_OBJECTS = 1_000_000
# Below this many new objects an idle worker has nothing worth a collection (CPython's own gen-0
# threshold).
IDLE_MIN_OBJECTS = 700
SLOW_PAUSE_S = 0.1  # a collection this long is logged


class GcPacer:
    def __init__(
        self,
        busy: Callable[[], int],
        *,
        max_interval_s: float,
        observe: Callable[[str, float], None] | None = None,
        check_every_s: float = 1.0,
    ) -> None:
        self.busy = busy
        self.max_interval_s = max_interval_s
        self.observe = observe
        self.check_every_s = check_every_s
        self.last = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._was_enabled = True

    def start(self) -> None:
        if self.max_interval_s <= 0 or self._task is not None:
            return
        self._was_enabled = gc.isenabled()
        gc.disable()
        self.last = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gc-pacer")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._was_enabled:
            gc.enable()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_every_s)
            trigger = self.due()
            if trigger is not None:
                self.collect(trigger)

    def due(self) -> str | None:
        """Why a collection is due now (`idle`, `interval`, `objects`), or None."""
        pending = gc.get_count()[0]
        late = time.monotonic() - self.last >= self.max_interval_s
        if self.busy() == 0:
            return "idle" if pending >= IDLE_MIN_OBJECTS or late else None
        if late:
            return "interval"
        if pending >= MAX_PENDING_OBJECTS:
            return "objects"
        return None

    def collect(self, trigger: str) -> int:
        started = time.perf_counter()
        found = gc.collect()
        pause = time.perf_counter() - started
        self.last = time.monotonic()
        if self.observe is not None:
            self.observe(trigger, pause)
        if pause >= SLOW_PAUSE_S:
            log.info(
                "garbage collection (%s) paused the worker %.0f ms and found %d objects",
                trigger,
                pause * 1000,
                found,
            )
        return found
