"""What the OpenAI routes share of HTTP: a call opened, a body read, headers, events encoded.

The pipeline (`inference/pipeline.py`) takes a body and gives back plain objects; this module is
where the HTTP request becomes a `Call` and a bounded body, and where the answer's objects
become headers and bytes:

- chat streams as `data: {chunk}` events ending with `data: [DONE]`; an error after the stream
  began is one `data: {"error": ...}` event, and the stream ends without `[DONE]`;
- the Responses API's typed events as `event: {type}` + `data: {event}`;
- one write to the socket per item of the pipeline's stream (one per upstream chunk), each of
  its chunks encoded once, by msgspec.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import StreamingResponse

from alicerce.api.auth import require_inference, services_of
from alicerce.errors import ClientDisconnected, RequestTooLarge
from alicerce.inference.pipeline import Served
from alicerce.inference.relay import Chunks, Closing, Failure, StreamItem
from alicerce.inference.responses import ResponseEvents
from alicerce.json_input import load_json
from alicerce.ledger import Call
from alicerce.money import encode_json as _encode
from alicerce.services import Services

STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
DONE = b"data: [DONE]\n\n"


async def open_call(request: Request, endpoint: str) -> tuple[Services, Call]:
    """The app's services and a new call by the request's key (401/403 are not recorded: no
    account to record them in). Its clock starts before the key is checked."""
    started = time.perf_counter()
    principal = await require_inference(request)
    services = services_of(request)
    call = services.ledger.open_call(principal, endpoint, started)
    call.client_gone = client_gone(request)  # asked once a whole answer is ready (499)
    return services, call


def client_gone(request: Request) -> Callable[[], Awaitable[bool]]:
    """Whether the client has gone away. uvicorn's own flag when the server is uvicorn (its
    `receive` is bound to the request's cycle, which the connection's loss marks): free, where
    Starlette's `is_disconnected` costs a cancelled receive, about 28 µs a request."""
    cycle = getattr(request.receive, "__self__", None)
    if not isinstance(getattr(cycle, "disconnected", None), bool):
        return request.is_disconnected

    async def disconnected() -> bool:
        return bool(cycle.disconnected)  # type: ignore[union-attr]

    return disconnected


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) anything over `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientDisconnected(
            f"The client went away after sending {size} bytes of its body."
        ) from None
    return b"".join(chunks)


async def json_payload(request: Request) -> Any:
    """A route's JSON body (a FastAPI dependency), read by the rules of every JSON body
    (`json_input.py`) whatever its `Content-Type`: curl's `-d` sends JSON as a form, and a
    client that says `text/plain` means JSON all the same. None when there is no body."""
    raw = await read_body(request, services_of(request).settings.max_body_bytes)
    if not raw.strip():
        return None
    return load_json(raw, content_type=request.headers.get("content-type"))


def answer_headers(served: Served) -> dict[str, str]:
    """`x-request-id`, how `@auto` routed (when it did), `x-alicerce-model`: the catalog
    model that answered, or `endpoint` for a gateway's own endpoint, and the `x-ratelimit-*`
    of a key with `rpm` or `tpm`."""
    headers = {"x-request-id": served.request_id}
    if served.ratelimit is not None:
        headers.update(served.ratelimit)
    if served.complexity is not None:
        if served.routing_fallback:
            headers["x-alicerce-routing-fallback"] = "true"
        headers["x-alicerce-routed-complexity"] = str(served.complexity)
    if served.target is not None:
        model = served.target.model
        headers["x-alicerce-model"] = model.id if model is not None else "endpoint"
    return headers


class EventStream(StreamingResponse):
    """Server-sent events: each item of the pipeline's stream encoded into one write.

    The door (`fastpath.stream`) sends `encode(item)` as it iterates `items`, with no generator
    in between (one fewer layer per chunk on the hot path); whatever else serves it (the FastAPI
    app, tests) iterates the response itself, which makes that generator only then. Either way
    `items` is closed at the end, which is when the pipeline's stream records itself."""

    def __init__(
        self,
        items: AsyncIterator[StreamItem],
        encode: Callable[[StreamItem], bytes],
        served: Served,
    ) -> None:
        self.items = items
        self.encode = encode
        headers = answer_headers(served) | STREAM_HEADERS
        super().__init__(self, media_type="text/event-stream", headers=headers)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._encoded()

    async def _encoded(self) -> AsyncIterator[bytes]:
        try:
            async for item in self.items:
                yield self.encode(item)
        finally:
            await self.items.aclose()  # type: ignore[attr-defined]


def _frames(chunks: Chunks) -> bytes:
    return b"".join([b"data: " + _encode(chunk) + b"\n\n" for chunk in chunks])


def chat_sse(item: StreamItem) -> bytes:
    """One write of a chat stream: its chunks as `data:` events (`[DONE]` after the last), or
    the error that ended it."""
    if type(item) is list:
        if len(item) == 1:  # most writes: no list to join
            return b"data: " + _encode(item[0]) + b"\n\n"
        return _frames(item)
    if isinstance(item, Closing):
        return _frames(item.chunks) + DONE
    assert isinstance(item, Failure)
    return b"data: " + _encode(item.error.to_body()) + b"\n\n"


def chat_stream(items: AsyncIterator[StreamItem], served: Served) -> EventStream:
    return EventStream(items, chat_sse, served)


def response_stream(
    items: AsyncIterator[StreamItem], events: ResponseEvents, served: Served
) -> EventStream:
    """The Responses API's typed events (`event: {type}`, `data: {event}`) of each item."""

    def encode(item: StreamItem) -> bytes:
        return b"".join(
            [
                b"event: " + event["type"].encode() + b"\ndata: " + _encode(event) + b"\n\n"
                for event in events.write(item)
            ]
        )

    return EventStream(items, encode, served)
