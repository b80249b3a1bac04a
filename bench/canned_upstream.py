"""A canned OpenAI-compatible upstream that costs next to nothing per request.

A raw asyncio protocol (on uvloop when present) that parses just enough HTTP/1.1 to find the end
of each request and answers every one with the same bytes: a fixed `chat.completion` JSON body,
or, when the body asks for `"stream": true`, a fixed server-sent-event stream in chunked encoding.
Any method and path get the answer, so it serves `/v1/chat/completions` and a health probe alike.

The stream's first write carries the role chunk and the first content chunk; the rest follows
`--stream-gap-ms` later, so a gateway that buffered the stream would show it in its time to first
token.

A slow upstream, as real LLM APIs are (bench/inflight.py): `--latency-ms` delays every answer
(and a stream's first write); `--chunks N --chunk-interval-ms M` makes a stream of N content
chunks M ms apart, each carrying the time it was written (`"content":"t<unix seconds> "`) so that
the client can tell what a gateway added to each chunk's delay. Chunks are scheduled at absolute
times (start + k·M), so a late one does not delay the next.

    python bench/canned_upstream.py --port 9000
    python bench/canned_upstream.py --port 9000 --latency-ms 1500
    python bench/canned_upstream.py --port 9000 --chunks 400 --chunk-interval-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import time
from dataclasses import dataclass
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
PACED_HEAD = STREAM_FIRST.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
PACED_ROLE = _event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
_FINISH = _event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
PACED_END = _FINISH + _event([], usage=USAGE) + b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"


def paced_chunk(sent_at: float) -> bytes:
    """One content chunk carrying the time it is written."""
    return _event([{"index": 0, "delta": {"content": f"t{sent_at:.6f} "}, "finish_reason": None}])


@dataclass(frozen=True)
class Pace:
    """How slow the upstream is: the wait before answering, and a paced stream's shape."""

    latency_s: float = 0.0
    chunks: int = 0  # content chunks of a paced stream (0: the fixed stream)
    interval_s: float = 0.0


class CannedProtocol(asyncio.Protocol):
    """One keep-alive connection: answer each complete request with the canned bytes."""

    def __init__(self, stream_gap_s: float, pace: Pace | None = None) -> None:
        self._gap = stream_gap_s
        self._pace = pace or Pace()
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
            close = bool(_CLOSE.search(head))
            self._answer(body, close)
            if close:
                self._transport = None  # no more requests read; closed once answered

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

    def _answer(self, body: bytes, close: bool) -> None:
        assert self._transport is not None
        stream = bool(_STREAM_FLAG.search(body))
        latency = self._pace.latency_s
        if latency > 0:
            self._loop.call_later(latency, self._answer_now, self._transport, stream, close)
        else:
            self._answer_now(self._transport, stream, close)

    def _answer_now(self, transport: asyncio.Transport, stream: bool, close: bool) -> None:
        if transport.is_closing():
            return
        if not stream:
            transport.write(COMPLETION)
        elif self._pace.chunks > 0:
            transport.write(PACED_HEAD + PACED_ROLE)
            self._paced(transport, self._loop.time(), 0, close)
            return
        elif self._gap > 0:
            transport.write(STREAM_FIRST)
            self._loop.call_later(self._gap, self._finish_stream, transport, close)
            return
        else:
            transport.write(STREAM_FIRST + STREAM_REST)
        if close:
            transport.close()

    def _paced(self, transport: asyncio.Transport, start: float, sent: int, close: bool) -> None:
        """Writes chunk `sent` now and schedules the next at start + (sent + 1)·interval."""
        if transport.is_closing():
            return
        if sent < self._pace.chunks:
            transport.write(paced_chunk(time.time()))
            when = start + (sent + 1) * self._pace.interval_s
            self._loop.call_at(when, self._paced, transport, start, sent + 1, close)
            return
        transport.write(PACED_END)
        if close:
            transport.close()

    @staticmethod
    def _finish_stream(transport: asyncio.Transport, close: bool) -> None:
        if not transport.is_closing():
            transport.write(STREAM_REST)
            if close:
                transport.close()


async def serve(host: str, port: int, stream_gap_s: float, pace: Pace | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: CannedProtocol(stream_gap_s, pace), host, port, backlog=8192, reuse_address=True
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
    parser.add_argument("--latency-ms", type=float, default=0, help="wait before each answer")
    parser.add_argument("--chunks", type=int, default=0, help="content chunks of a paced stream")
    parser.add_argument("--chunk-interval-ms", type=float, default=50, help="their pace")
    args = parser.parse_args()
    pace = Pace(args.latency_ms / 1000, args.chunks, args.chunk_interval_ms / 1000)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(args.host, args.port, args.stream_gap_ms / 1000, pace))


if __name__ == "__main__":
    main()
