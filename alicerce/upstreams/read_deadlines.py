"""The read timeout of relayed streams: a deadline per stream, checked by one sweep per process.

aiohttp's `sock_read` timeout re-arms a timer on every read (a `call_later` and a cancel,
~2 µs): for a stream that is every chunk, thousands of streams times twenty chunks a second.
Once a stream's headers have arrived, `StreamDeadlines.follow` turns that timer off for its
connection (aiohttp sets it again for the connection's next request) and keeps the stream's
deadline instead, which each read moves on and a `DeadlineSweep` (`alicerce/deadlines.py`)
checks: a stream past it has its reads failed with aiohttp's own timeout error, as its timer
would have. A stalled stream thus fails within one tick of its timeout; the wait for the
headers is still aiohttp's `sock_read`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
from aiohttp import StreamReader

from alicerce.deadlines import DeadlineSweep, sweep_tick


class TimedRead:
    """One stream's body, with the deadline of its next read."""

    __slots__ = ("_clock", "_timeout_s", "deadline", "reader")

    def __init__(self, reader: StreamReader, clock: Callable[[], float], timeout_s: float):
        self.reader = reader
        self._clock = clock
        self._timeout_s = timeout_s
        self.deadline: float | None = clock() + timeout_s

    def touch(self) -> None:
        """A read arrived: the deadline moves on."""
        self.deadline = self._clock() + self._timeout_s

    def expired(self) -> None:
        self.deadline = None
        self.reader.set_exception(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))


class StreamDeadlines:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._streams: set[TimedRead] = set()
        self._sweep: DeadlineSweep | None = None  # made on the first stream's loop

    def follow(self, response: aiohttp.ClientResponse) -> TimedRead:
        """Times `response`'s body reads from now on, until `forget`."""
        connection = response.connection
        if connection is not None and connection.protocol is not None:
            connection.protocol.read_timeout = None
            connection.protocol.start_timeout()  # cancels the timer armed by the last read
        loop = asyncio.get_running_loop()
        timed = TimedRead(response.content, loop.time, self.timeout_s)
        self._streams.add(timed)
        if self._sweep is None or self._sweep.loop is not loop:  # (tests run several loops)
            self._sweep = DeadlineSweep(loop, self._streams, sweep_tick(self.timeout_s))
        self._sweep.watch()
        return timed

    def forget(self, timed: TimedRead) -> None:
        self._streams.discard(timed)

    def watched(self) -> int:
        """Streams whose reads are being timed."""
        return len(self._streams)
