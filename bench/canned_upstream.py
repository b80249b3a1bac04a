"""A canned OpenAI-compatible upstream that costs next to nothing per request.

A raw asyncio protocol (on uvloop when present) that parses just enough HTTP/1.1 to find the end
of each request and answers every one with the same bytes: a fixed `chat.completion` JSON body,
or, when the body asks for `"stream": true`, a fixed server-sent-event stream in chunked encoding.
Any method and path get the answer, so it serves `/v1/chat/completions` and a health probe alike.

The stream's first write carries the role chunk and the first content chunk; the rest follows
`--stream-gap-ms` later, so a gateway that buffered the stream would show it in its time to first
token.

    python bench/canned_upstream.py --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
from typing import Any, cast

MODEL = "canned-model"
ANSWER = "Hello from the canned upstream."
USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
_STREAM_FLAG = re.compile(rb'"stream"\s*:\s*true')
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)


def completion_response() -> bytes:
    """The whole HTTP response to a non-streaming request."""
    body = json.dumps(
        {
            "id": "chatcmpl-canned",
            "object": "chat.completion",
            "created": 1767225600,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        },
        separators=(",", ":"),
    ).encode()
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def _event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    chunk = {
        "id": "chatcmpl-canned",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": MODEL,
        "choices": choices,
        **extra,
    }
    data = b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)  # one HTTP chunk per event


def stream_response() -> tuple[bytes, bytes]:
    """The HTTP response to a streaming request, as (first write, rest)."""
    words = ANSWER.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    first = (
        head
        + _event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
        + _event([{"index": 0, "delta": {"content": pieces[0]}, "finish_reason": None}])
    )
    rest = b"".join(
        _event([{"index": 0, "delta": {"content": p}, "finish_reason": None}]) for p in pieces[1:]
    )
    rest += _event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    rest += _event([], usage=USAGE)
    data = b"data: [DONE]\n\n"
    rest += b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)
    return first, rest


COMPLETION = completion_response()
STREAM_FIRST, STREAM_REST = stream_response()


class CannedProtocol(asyncio.Protocol):
    """One keep-alive connection: answer each complete request with the canned bytes."""

    def __init__(self, stream_gap_s: float) -> None:
        self._gap = stream_gap_s
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._transport is not None:
            request = self._take_request()
            if request is None:
                return
            head, body = request
            self._answer(body)
            if _CLOSE.search(head):
                self._transport.close()
                self._transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def _take_request(self) -> tuple[bytes, bytes] | None:
        """The next complete request's (head, body), removed from the buffer; None if partial."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self._buffer[:end])
        start = end + 4
        if _CHUNKED.search(head):
            stop = self._buffer.find(b"\r\n0\r\n\r\n", start - 2)
            if stop < 0:
                return None
            total = stop + 7
        else:
            match = _CONTENT_LENGTH.search(head)
            total = start + (int(match.group(1)) if match else 0)
            if len(self._buffer) < total:
                return None
        body = bytes(self._buffer[start:total])
        del self._buffer[:total]
        return head, body

    def _answer(self, body: bytes) -> None:
        assert self._transport is not None
        if not _STREAM_FLAG.search(body):
            self._transport.write(COMPLETION)
            return
        self._transport.write(STREAM_FIRST)
        if self._gap > 0:
            self._loop.call_later(self._gap, self._finish_stream, self._transport)
        else:
            self._transport.write(STREAM_REST)

    @staticmethod
    def _finish_stream(transport: asyncio.Transport) -> None:
        if not transport.is_closing():
            transport.write(STREAM_REST)


async def serve(host: str, port: int, stream_gap_s: float) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: CannedProtocol(stream_gap_s), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--stream-gap-ms", type=float, default=1.0, help="pause after the first content chunk"
    )
    args = parser.parse_args()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(args.host, args.port, args.stream_gap_ms / 1000))


if __name__ == "__main__":
    main()
