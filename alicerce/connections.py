"""Connections that cannot exhaust the server: uvicorn's httptools protocol, with the limits
it lacks.

uvicorn (0.54, `http="httptools"`) gives a connection all the time it wants until its headers
are complete (a slowloris holds a file descriptor for ever: only an idle keep-alive connection
is timed out), buffers a header of any size (llhttp has no cap; `h11_max_incomplete_event_size`
bounds only the h11 protocol), bounds connections only by answering 503 once a request has
arrived (`limit_concurrency`, the connection still held), and answers malformed framing in plain
text. `GuardedHttpProtocol` adds, per worker process:

- a header timeout: from the connection (or the first byte of a keep-alive request) to its
  complete headers; past it, 408 and closed;
- a body timeout: the longest pause between two pieces of a request body, counted only while
  the app is waiting for it (not while reading is paused because the app is busy); past it, 408
  and closed, and the app sees the client leave;
- a header size cap on the request line and headers together; past it, 431 and closed, the
  bytes dropped as they arrive (counted per read, so a pipelined request's headers that share a
  read with the request before them may pass the cap by up to one read, 256 KiB, before the
  next read is counted);
- a bound on open connections; a connection past it is answered 503 and closed at once;
- every refusal an OpenAI error object, malformed framing included, and counted in
  `alicerce_connections_refused{reason}`.

The timeouts are deadlines that a request sets (a number stored per phase, re-set for each body
piece), which one sweep per worker checks every second at most (a quarter of the shortest
timeout when that is less): a timeout fires within that tick of its deadline. Nothing is done
per byte or per header.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from alicerce.deadlines import DeadlineSweep, sweep_tick
from alicerce.errors import (
    AlicerceError,
    HeadersTooLarge,
    InvalidRequest,
    Overloaded,
    RequestTimeout,
)
from alicerce.settings import Settings


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_s: float
    body_timeout_s: float
    max_header_bytes: int
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout_s=settings.http_header_timeout_s,
            body_timeout_s=settings.http_body_timeout_s,
            max_header_bytes=settings.http_max_header_bytes,
            max_connections=settings.http_max_connections,
        )


def protocol_class(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """What `uvicorn.Config(http=...)` takes: uvicorn only calls it with the protocol's
    arguments. A partial of a module-level class, so that it pickles into spawned workers."""
    return cast(type[asyncio.Protocol], functools.partial(GuardedHttpProtocol, limits=limits))


def error_response(error: AlicerceError, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole HTTP/1.1 response carrying `error`'s OpenAI error object, closing the connection."""
    body = msgspec.json.encode(error.to_body())
    lines = [STATUS_LINE[error.status]]
    for name, value in default_headers:
        lines += [name, b": ", value, b"\r\n"]
    for header, text in error.headers().items():
        lines += [header.encode(), b": ", text.encode("latin-1"), b"\r\n"]
    lines += [
        b"content-type: application/json\r\n",
        b"content-length: ",
        str(len(body)).encode(),
        b"\r\nconnection: close\r\n\r\n",
        body,
    ]
    return b"".join(lines)


# One sweep per server (its connections), made by its first connection: a request stores a
# number where it armed and cancelled a timer (which, with the callbacks that did it, was about
# a twentieth of the instructions of a whole proxied request).
_deadlines: weakref.WeakKeyDictionary[ServerState, DeadlineSweep] = weakref.WeakKeyDictionary()

_NONE, _HEADERS, _BODY = 0, 1, 2  # what a connection's deadline is for


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body timeouts, a header cap and a connection
    bound (the module's docstring says why each)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self.deadline: float | None = None  # when the phase below times out (loop time)
        self._phase = _NONE
        self._reading_headers = True
        self._header_bytes = 0  # bytes received since the headers began (a bound, not exact)
        self._refused = False
        deadlines = _deadlines.get(server_state)
        if deadlines is None or deadlines.loop is not self.loop:
            tick = sweep_tick(limits.header_timeout_s, limits.body_timeout_s)
            deadlines = _deadlines[server_state] = DeadlineSweep(self.loop, self.connections, tick)
        self._deadlines = deadlines

    # -- connections --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self.transport = transport
            self._refused = True
            error = Overloaded(
                "This server has too many open connections; retry shortly.",
                code="too_many_connections",
                retry_after=1,
            )
            self._count("too_many_connections")
            transport.write(error_response(error, self.server_state.default_headers))
            transport.close()
            return
        super().connection_made(transport)
        self._time(_HEADERS, self.limits.header_timeout_s)
        self._deadlines.watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._time(_NONE)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_headers:
            before = self._header_bytes
            self._header_bytes = before + len(data)
            if self._header_bytes > self.limits.max_header_bytes and (
                before + _end_of_headers(data) > self.limits.max_header_bytes
            ):
                self._refuse(self._too_large(), "header_too_large")
                return
        super().data_received(data)

    # -- the parser's callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        if self._phase == _NONE:  # a keep-alive request: its headers are timed from here
            self._time(_HEADERS, self.limits.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._header_bytes = 0
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body:
            self._time(_BODY, self.limits.body_timeout_s)
        else:
            self._time(_NONE)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self._phase == _BODY:
            self._time(_BODY, self.limits.body_timeout_s)

    def on_message_complete(self) -> None:
        self._time(_NONE)
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """Malformed framing as an OpenAI error object."""
        error = InvalidRequest(
            "The request is not valid HTTP/1.1 (its request line, headers or chunked "
            "framing could not be parsed).",
            code="malformed_http",
        )
        self._count("malformed_http")
        self._answer_and_close(error)

    # -- limits -------------------------------------------------------------------------------

    def _time(self, phase: int, seconds: float = 0.0) -> None:
        self._phase = phase
        self.deadline = self.loop.time() + seconds if phase != _NONE else None

    def expired(self) -> None:
        """The sweep found this connection's deadline passed."""
        phase = self._phase
        self._time(_NONE)
        if phase == _HEADERS:
            self._header_timed_out()
        elif phase == _BODY:
            self._body_timed_out()

    def _too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(
            f"The request line and headers are larger than {self.limits.max_header_bytes} "
            "bytes (ALICERCE_HTTP_MAX_HEADER_BYTES).",
        )

    def _header_timed_out(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a pipelined request: close after this response
            return
        error = RequestTimeout(
            f"The request's headers did not arrive within {self.limits.header_timeout_s:g} s "
            "(ALICERCE_HTTP_HEADER_TIMEOUT_S).",
        )
        self._refuse(error, "header_timeout")

    def _body_timed_out(self) -> None:
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            return
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            # the app is not reading yet (or has not asked for the body): not the client's pause
            self._time(_BODY, self.limits.body_timeout_s)
            return
        self._count("body_timeout")
        if cycle.response_started:
            self.transport.close()  # the app sees `http.disconnect`
            return
        cycle.response_started = True  # the app's own answer, if any, is not written
        cycle.disconnected = True
        cycle.message_event.set()
        error = RequestTimeout(
            f"The request's body paused for more than {self.limits.body_timeout_s:g} s "
            "(ALICERCE_HTTP_BODY_TIMEOUT_S).",
        )
        self._answer_and_close(error)

    def _refuse(self, error: AlicerceError, reason: str) -> None:
        self._count(reason)
        self._answer_and_close(error)

    def _answer_and_close(self, error: AlicerceError) -> None:
        self._time(_NONE)
        if not self.transport.is_closing():
            self.transport.write(error_response(error, self.server_state.default_headers))
            self.transport.close()

    def _count(self, reason: str) -> None:
        metrics = self.app_state.get("metrics")
        if metrics is not None:
            metrics.connection_refused(reason)


def _end_of_headers(data: bytes) -> int:
    """Where the blank line that ends a header block ends in `data`, or past its end when it is
    not there: how much of `data` is header, at most. (llhttp takes CRLF line ends only.)"""
    end = data.find(b"\r\n\r\n")
    return end + 4 if end >= 0 else len(data) + 1
