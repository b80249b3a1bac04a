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
  bytes dropped as they arrive;
- a bound on open connections; a connection past it is answered 503 and closed at once;
- every refusal an OpenAI error object, malformed framing included, and counted in
  `alicerce_connections_refused{reason}`.

Each timer is one `call_later` per request (re-armed for each body piece), nothing per byte.
"""

from __future__ import annotations

import asyncio
import functools
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

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


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; `send_400_response` answers it."""


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
        self._timer: TimerHandle | None = None
        self._reading_headers = True
        self._header_bytes = 0  # bytes received since the headers began (a bound, not exact)
        self._header_size = 0  # the request line and headers, as parsed
        self._refusal: AlicerceError | None = None
        self._refused = False

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
        self._arm(self.limits.header_timeout_s, self._header_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if (
            self._reading_headers
            and self._header_bytes > self.limits.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._refuse(self._too_large(), "header_too_large")

    # -- the parser's callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_size = 0
        if self._timer is None:  # a keep-alive request: its headers are timed from here
            self._arm(self.limits.header_timeout_s, self._header_timed_out)

    def on_url(self, url: bytes) -> None:
        self._grow(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._header_bytes = 0
        self._disarm()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body:
            self._arm(self.limits.body_timeout_s, self._body_timed_out)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self._timer is not None:
            self._arm(self.limits.body_timeout_s, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """Malformed framing (or a refusal raised from a callback) as an OpenAI error object."""
        if self._refusal is not None:
            error, self._refusal = self._refusal, None
        else:
            error = InvalidRequest(
                "The request is not valid HTTP/1.1 (its request line, headers or chunked "
                "framing could not be parsed).",
                code="malformed_http",
            )
            self._count("malformed_http")
        self._answer_and_close(error)

    # -- limits -------------------------------------------------------------------------------

    def _grow(self, size: int) -> None:
        self._header_size += size
        if self._header_size > self.limits.max_header_bytes:
            self._refusal = self._too_large()
            self._count("header_too_large")
            raise _Refused

    def _too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(
            f"The request line and headers are larger than {self.limits.max_header_bytes} "
            "bytes (ALICERCE_HTTP_MAX_HEADER_BYTES).",
        )

    def _header_timed_out(self) -> None:
        self._timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a pipelined request: close after this response
            return
        error = RequestTimeout(
            f"The request's headers did not arrive within {self.limits.header_timeout_s:g} s "
            "(ALICERCE_HTTP_HEADER_TIMEOUT_S).",
        )
        self._refuse(error, "header_timeout")

    def _body_timed_out(self) -> None:
        self._timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            return
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            # the app is not reading yet (or has not asked for the body): not the client's pause
            self._arm(self.limits.body_timeout_s, self._body_timed_out)
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
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(error_response(error, self.server_state.default_headers))
            self.transport.close()

    def _arm(self, seconds: float, callback: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _count(self, reason: str) -> None:
        metrics = self.app_state.get("metrics")
        if metrics is not None:
            metrics.connection_refused(reason)
