"""OpenAI-compatible upstreams over HTTP, through pooled aiohttp sessions.

Two sessions share the work: `trusted` for the operator's catalog providers, and `guarded` for
URLs that users typed into their gateways (endpoints, functions, collections' embedders). The
guarded session checks the address each new connection is about to be made to, after DNS
(`guarded_socket`, aiohttp's socket factory): a name that resolves to an internal address (DNS
rebinding), an IP literal in any spelling, an IPv4-mapped IPv6 address, all are refused before a
packet is sent, unless the operator allows private upstreams. The check is per connection, not
per request: a pooled connection costs nothing more. No upstream call follows redirects
(`allow_redirects=False`): an API that answers a POST with a redirect is misconfigured, and a
redirect is how an internal address would otherwise be reached through a public one.

Connections per upstream host are bounded (`HostSlots`, ALICERCE_UPSTREAM_MAX_CONNECTIONS_PER_HOST):
a request past the bound fails at once with 503 `upstream_saturated` (and may fall back to another
model) instead of waiting in the pool's queue, which has no bound of its own.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import msgspec
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver

from alicerce.errors import (
    AlicerceError,
    InvalidRequest,
    UpstreamError,
    UpstreamSaturated,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from alicerce.security import is_private_address
from alicerce.upstreams.base import Completion
from alicerce.upstreams.read_deadlines import StreamDeadlines

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


PRIVATE_ADDRESS_REFUSED = (
    "its address is a private address (loopback, private network, link-local or reserved), "
    "which this server does not connect to (ALICERCE_ALLOW_PRIVATE_UPSTREAMS)"
)


class PrivateAddressRefused(OSError):
    """A connection to an internal address, refused before it was made. One message for every
    address, so that aiohappyeyeballs raises it as it is when all of a name's addresses fail."""

    def __init__(self) -> None:
        super().__init__(PRIVATE_ADDRESS_REFUSED)


def guarded_socket(addr_info: AddrInfoType) -> socket.socket:
    """aiohttp's socket factory for user-supplied URLs: called with the very address about to
    be connected to (after DNS, for each address tried and each new connection)."""
    family, type_, proto, _, address = addr_info
    if is_private_address(str(address[0])):
        raise PrivateAddressRefused
    return socket.socket(family=family, type=type_, proto=proto)


class HostSlots:
    """Chat calls in progress per upstream origin (`scheme://host:port`), each holding one
    connection (HTTP/1.1: one request per connection at a time), at most `limit` per origin.

    A plain count per origin, taken and given back without waiting: O(1) whatever the number in
    flight. `on_refused` is told of each refusal (the metrics' `alicerce_requests_shed_total`)."""

    __slots__ = ("_open", "limit", "on_refused")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}
        self.on_refused: Callable[[], None] | None = None

    def take(self, origin: str, label: str) -> None:
        """One more call to `origin`, or `UpstreamSaturated` if it holds `limit` already."""
        held = self._open.get(origin, 0)
        if held >= self.limit:
            if self.on_refused is not None:
                self.on_refused()
            raise UpstreamSaturated(
                f"Upstream {label} has {self.limit} requests in progress from this worker "
                "already (ALICERCE_UPSTREAM_MAX_CONNECTIONS_PER_HOST); retry shortly.",
                retry_after=1,
            )
        self._open[origin] = held + 1

    def give(self, origin: str) -> None:
        held = self._open[origin] - 1
        if held:
            self._open[origin] = held
        else:
            del self._open[origin]

    def held(self, origin: str) -> int:
        return self._open.get(origin, 0)


@functools.lru_cache(maxsize=4096)
def origin_of(url: str) -> str:
    """`scheme://host:port` of an absolute URL: the key of its connections in the pool."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


class HttpClients:
    """The process's pooled HTTP sessions; made in the app's lifespan, closed at its end."""

    def __init__(
        self,
        *,
        allow_private: bool,
        pool_size: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        per_host: int | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """`per_host`: connections at most to one upstream origin (`pool_size` by default);
        `resolver`: the guarded session's name resolver (tests answer a public name with a
        loopback address, as a rebinding DNS server would); the system's by default."""
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._allow_private = allow_private
        self._pool_size = pool_size
        self._per_host = min(per_host or pool_size, pool_size)
        self.slots = HostSlots(self._per_host)
        self.stream_deadlines = StreamDeadlines(read_timeout_s)
        self._resolver = resolver
        self.trusted: aiohttp.ClientSession | None = None
        self.guarded: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # aiohttp's own per-host limit bounds the other callers (embeddings, functions),
        # which wait for a connection; chat calls are refused at `slots` before they would.
        self.trusted = self._session(
            aiohttp.TCPConnector(
                limit=self._pool_size, limit_per_host=self._per_host, ttl_dns_cache=60
            )
        )
        guarded = aiohttp.TCPConnector(
            limit=self._pool_size,
            limit_per_host=self._per_host,
            ttl_dns_cache=60,
            resolver=self._resolver,
            socket_factory=None if self._allow_private else guarded_socket,
        )
        self.guarded = self._session(guarded)

    def _session(self, connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        # No cookie jar (upstreams are APIs, and a jar costs every request), no
        # Accept-Encoding (loopback and LAN upstreams gain nothing from gzip; the rest may
        # still compress, which aiohttp then undoes).
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        for session in (self.trusted, self.guarded):
            if session is not None:
                await session.close()


class OpenAIHttpUpstream:
    """One OpenAI-compatible model behind `base_url` (bring your own, or a catalog provider)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        model: str,
        api_key: str | None,
        headers: dict[str, str] | None,
        label: str,
        slots: HostSlots | None = None,
        deadlines: StreamDeadlines | None = None,
    ) -> None:
        """`slots`: the bound on calls in progress per origin; none, unbounded (tests).
        `deadlines`: the read timeout of streams once they began; none, aiohttp's per read."""
        self._session = session
        self._deadlines = deadlines
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._slots = slots
        self._origin = origin_of(self._url)
        self.model = model
        self.label = label
        self._headers = {"content-type": "application/json", "accept": "application/json"}
        if headers:
            self._headers.update(headers)
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"

    async def complete(self, body: dict[str, Any]) -> Completion:
        slots = self._slots
        if slots is None:
            return await self._complete(body)
        slots.take(self._origin, self.label)
        try:
            return await self._complete(body)
        finally:
            slots.give(self._origin)

    async def _complete(self, body: dict[str, Any]) -> Completion:
        payload = _encode({**body, "model": self.model, "stream": False})
        try:
            async with self._session.post(
                self._url, data=payload, headers=self._headers, allow_redirects=False
            ) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    raise status_error(
                        self.label, resp.status, raw, resp.headers.get("retry-after")
                    )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(f"Upstream {self.label} did not answer in time.") from None
        except aiohttp.ClientError as exc:
            raise connection_error(self.label, exc) from None
        return self._completion(raw)

    def _completion(self, raw: bytes) -> Completion:
        try:
            completion = _decode(raw)
        except msgspec.DecodeError:
            raise UpstreamError(
                f"Upstream {self.label} answered with something that is not JSON."
            ) from None
        if not isinstance(completion, dict) or not isinstance(completion.get("choices"), list):
            raise UpstreamError(
                f"Upstream {self.label} answered with something that is not a chat completion."
            )
        return completion

    @staticmethod
    def _as_chunks(completion: Completion) -> list[Completion]:
        """A whole completion as the chunks a stream would have carried."""
        base = {k: v for k, v in completion.items() if k not in ("choices", "usage", "object")}
        base["object"] = "chat.completion.chunk"
        chunks = []
        for i, choice in enumerate(completion["choices"]):
            message = choice.get("message") or {} if isinstance(choice, dict) else {}
            delta = {k: v for k, v in message.items() if v is not None}
            if isinstance(delta.get("tool_calls"), list):
                delta["tool_calls"] = [
                    {"index": n, **call} for n, call in enumerate(delta["tool_calls"])
                ]
            finish = choice.get("finish_reason") if isinstance(choice, dict) else None
            chunks.append(base | {"choices": [{"index": i, "delta": delta}]})
            chunks.append(
                base | {"choices": [{"index": i, "delta": {}, "finish_reason": finish or "stop"}]}
            )
        chunks.append(base | {"choices": [], "usage": completion.get("usage")})
        return chunks

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[Completion]:
        slots = self._slots
        if slots is not None:
            slots.take(self._origin, self.label)  # before the first item: a fallback may follow
        try:
            payload = _encode(
                {
                    **body,
                    "model": self.model,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                }
            )
            headers = self._headers | {"accept": "text/event-stream"}
            try:
                async with self._session.post(
                    self._url, data=payload, headers=headers, allow_redirects=False
                ) as resp:
                    if resp.status >= 300:
                        raw = await resp.read()
                        raise status_error(
                            self.label, resp.status, raw, resp.headers.get("retry-after")
                        )
                    if resp.content_type == "application/json":  # a server that ignored `stream`
                        for chunk in self._as_chunks(self._completion(await resp.read())):
                            yield chunk
                        return
                    if resp.content_type != "text/event-stream":
                        raise UpstreamError(
                            f"Upstream {self.label} answered a stream request with "
                            f"{resp.content_type or 'no content type'}, not an event stream."
                        )
                    # Whatever has arrived, split into lines at once (one iteration per read, not
                    # per line: with thousands of streams open, per-chunk work is what a worker
                    # runs out of); a line longer than MAX_EVENT_BYTES is refused, as
                    # aiohttp's readline would have.
                    partial = b""
                    deadlines = self._deadlines
                    timed = None if deadlines is None else deadlines.follow(resp)
                    try:
                        async for data in resp.content.iter_any():
                            if timed is not None:
                                timed.touch()
                            lines = (partial + data if partial else data).split(b"\n")
                            partial = lines.pop()
                            if len(partial) > MAX_EVENT_BYTES:
                                raise UpstreamError(
                                    f"Upstream {self.label} sent a stream event line over "
                                    f"{MAX_EVENT_BYTES} bytes."
                                )
                            for line in lines:
                                if not line or line == b"\r":
                                    continue  # the blank line between events
                                chunk = self._parse_event_line(line)
                                if chunk is None:
                                    continue
                                if chunk is _DONE:
                                    return
                                yield chunk
                        last = self._parse_event_line(partial) if partial else None
                        if last is not None and last is not _DONE:
                            yield last
                    finally:
                        if deadlines is not None and timed is not None:
                            deadlines.forget(timed)
            except (TimeoutError, aiohttp.ServerTimeoutError):
                raise UpstreamTimeout(f"Upstream {self.label} stopped answering in time.") from None
            except aiohttp.ClientPayloadError:
                raise UpstreamError(f"Upstream {self.label} broke off its answer.") from None
            except aiohttp.ClientError as exc:
                raise connection_error(self.label, exc) from None
        finally:
            if slots is not None:
                slots.give(self._origin)

    def _parse_event_line(self, line: bytes) -> Any:
        line = line.strip()
        if not line or line.startswith(b":") or not line.startswith(b"data:"):
            return None  # blank separators, comments, `event:`/`id:` fields
        data = line[5:].strip()
        if data == b"[DONE]":
            return _DONE
        try:
            chunk = _decode(data)
        except msgspec.DecodeError:
            raise UpstreamError(
                f"Upstream {self.label} sent a stream event that is not JSON."
            ) from None
        if not isinstance(chunk, dict):
            raise UpstreamError(f"Upstream {self.label} sent a malformed stream event.")
        if "error" in chunk:
            raise UpstreamError(f"Upstream {self.label} failed mid-stream: {_error_message(chunk)}")
        return chunk


_DONE = object()
MAX_EVENT_BYTES = 4 * 1024 * 1024


# -- what an upstream's failure means to the client (docs/decisions.md, "Errors from upstreams") --
# One mapping for every OpenAI-compatible upstream: chat models and embedding models alike.


def status_error(label: str, status: int, raw: bytes, retry_after: str | None) -> AlicerceError:
    """The client's error for an upstream that answered `status` with body `raw`: what the
    upstream refused is the client's 400, a credential it refused is ours (502), overload and
    rate limits are a retryable 503 (its `retry-after` passed on, at least 1 s). An upstream
    failure keeps the upstream's status (`upstream_status`) for the logs and metrics."""
    error = _status_error(label, status, _error_message_from_bytes(raw), retry_after)
    if isinstance(error, UpstreamError):
        error.upstream_status = status
    return error


def _status_error(label: str, status: int, detail: str, retry_after: str | None) -> AlicerceError:
    if status < 400:
        return UpstreamError(
            f"Upstream {label} answered with a redirect ({status}), which is not followed: "
            "configure the URL it points to."
        )
    if status in (400, 404, 409, 413, 422):
        return InvalidRequest(
            f"Upstream {label} rejected the request ({status}): {detail}",
            code="upstream_rejected",
        )
    if status in (401, 403):
        return UpstreamError(
            f"Upstream {label} refused the gateway's credentials ({status}): {detail}"
        )
    seconds = _parse_retry_after(retry_after)
    if status == 429:
        return UpstreamUnavailable(
            f"Upstream {label} is rate limiting (429): {detail}", retry_after=seconds or 1
        )
    if status == 503:
        return UpstreamUnavailable(
            f"Upstream {label} is unavailable (503): {detail}", retry_after=seconds or 1
        )
    if status == 504:
        return UpstreamTimeout(f"Upstream {label} timed out (504): {detail}")
    return UpstreamError(f"Upstream {label} failed ({status}): {detail}")


def connection_error(label: str, exc: aiohttp.ClientError) -> UpstreamError:
    """The client's error for an upstream that could not be reached (a retryable 503), or
    whose address is internal (502 `private_upstream`: retrying would not help)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, PrivateAddressRefused):
            return UpstreamError(
                f"Upstream {label} is refused: {PRIVATE_ADDRESS_REFUSED}.", code="private_upstream"
            )
        reason = str(exc.os_error)
    else:
        reason = str(exc)
    return UpstreamUnavailable(
        f"Upstream {label} is unreachable: {reason or type(exc).__name__}", retry_after=1
    )


def _error_message(payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:500]
    if isinstance(error, str):
        return error[:500]
    return "no error message"


def _error_message_from_bytes(raw: bytes) -> str:
    try:
        return _error_message(_decode(raw))
    except msgspec.DecodeError:
        text = raw.decode("utf-8", "replace").strip()
        return text[:200] if text else "empty body"


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


__all__ = [
    "HostSlots",
    "HttpClients",
    "OpenAIHttpUpstream",
    "PrivateAddressRefused",
    "asyncio",
    "connection_error",
    "status_error",
]
