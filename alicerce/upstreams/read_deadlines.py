"""The read timeout of relayed streams: a deadline per stream, checked by one sweep per process.

aiohttp's `sock_read` timeout re-arms a timer on every read (a `call_later` and a cancel,
~2 µs): for a stream that is every chunk, thousands of streams times twenty chunks a second.
Once a stream's headers have arrived, `StreamDeadlines.follow` turns that timer off for its
connection (aiohttp sets it again for the connection's next request) and keeps the stream's
deadline here instead: each read stores a number, and a sweep every second at most (a quarter of
the timeout when that is less) fails the reads of a stream past its deadline with aiohttp's own
timeout error, as its timer would have. A stalled stream thus fails within one tick of its
timeout; the wait for the headers is still aiohttp's `sock_read`.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import StreamReader


class StreamDeadlines:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.tick = min(1.0, timeout_s / 4)
        self._due: dict[StreamReader, float] = {}
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the sweep's

    def follow(self, response: aiohttp.ClientResponse) -> StreamReader:
        """Times `response`'s body reads from now on; its content, to `touch` on each read."""
        connection = response.connection
        if connection is not None and connection.protocol is not None:
            connection.protocol.read_timeout = None
            connection.protocol.start_timeout()  # cancels the timer armed by the last read
        reader = response.content
        loop = asyncio.get_running_loop()
        self._due[reader] = loop.time() + self.timeout_s
        if self._sweep_handle is None or self._loop is not loop:  # (tests run several loops)
            self._loop = loop
            self._sweep_handle = loop.call_later(self.tick, self._sweep)
        return reader

    def touch(self, reader: StreamReader) -> None:
        """A read arrived: the stream's deadline moves on."""
        self._due[reader] = asyncio.get_running_loop().time() + self.timeout_s

    def forget(self, reader: StreamReader) -> None:
        self._due.pop(reader, None)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        expired = [reader for reader, due in self._due.items() if due <= now]
        for reader in expired:
            del self._due[reader]
            reader.set_exception(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))
        self._sweep_handle = loop.call_later(self.tick, self._sweep) if self._due else None

    def watched(self) -> int:
        """Streams whose reads are being timed."""
        return len(self._due)
