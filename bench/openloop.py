"""An open-loop HTTP load generator: requests start at a fixed rate, whatever the server does.

A closed loop (wrk's N connections, each waiting for its answer) slows down with the server and
hides its queue; here request i is due at t0 + i/rate and its latency counts from that moment
(so a late start is the server's delay, not forgiven), the way wrk2 and Bifrost's benchmark
measure. Each request takes an idle keep-alive connection or opens one; there is no bound on
connections but `--max-connections`.

It is a raw asyncio protocol on uvloop (a few microseconds per request, no HTTP client library
in the way), and it reports its own lag (how late each request actually left) and CPU seconds,
so a run shows whether the generator kept its schedule. Streams (`--stream`) are read event by
event: a paced canned upstream (`canned_upstream.py --chunks`) stamps each chunk with the time it
was written, and each chunk's delay (arrival - stamp) is collected, as are the gaps between a
stream's chunks.

    python bench/openloop.py --url http://127.0.0.1:9000/v1/chat/completions --rate 1000 \
        --duration 20 [--stream --chunks 400] [--key KEY] [--header 'name: value']

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import time
from array import array
from collections import Counter
from typing import Any, cast
from urllib.parse import urlsplit

_STAMP = re.compile(rb'"content":"t(\d+\.\d+) ')
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)


class Request:
    """One request's schedule and outcome."""

    __slots__ = ("chunks", "due", "gaps_from", "last_chunk", "saw_done", "timer")

    def __init__(self, due: float) -> None:
        self.due = due
        self.chunks = 0
        self.last_chunk = 0.0
        self.saw_done = False
        self.timer: asyncio.TimerHandle | None = None
        self.gaps_from = 0


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.request: Request | None = None
        self.buf = bytearray()
        self.head_done = False
        self.status = 0
        self.length: int | None = None  # content-length, or None when chunked
        self.chunk_left = -1  # bytes left in the current HTTP chunk (-1: a size line is next)
        self.events = bytearray()  # stream payload not yet scanned (after the last "\n\n")
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: Request) -> None:
        assert self.transport is not None
        self.request = request
        self.gen.carrying[request] = self
        self.buf.clear()
        self.head_done = False
        self.status = 0
        self.length = None
        self.chunk_left = -1
        self.events.clear()
        self.transport.write(self.gen.raw)

    def data_received(self, data: bytes) -> None:
        if self.request is None:
            return
        self.buf += data
        if not self.head_done:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[: end + 2])
            del self.buf[: end + 4]
            self.head_done = True
            self.status = int(head[9:12])
            self.close_after = bool(_CLOSE.search(head))
            match = _CONTENT_LENGTH.search(head)
            chunked = bool(_CHUNKED.search(head))
            self.length = int(match.group(1)) if match and not chunked else None
            if self.length is None and not chunked:
                self.length = 0
        if self.length is not None:
            if len(self.buf) >= self.length:
                self.finish(None)
            return
        self._read_chunks()

    def _read_chunks(self) -> None:
        buf = self.buf
        while True:
            if self.chunk_left < 0:
                line_end = buf.find(b"\r\n")
                if line_end < 0:
                    return
                size = int(bytes(buf[:line_end]).split(b";", 1)[0], 16)
                if size == 0:
                    if buf.find(b"\r\n\r\n", line_end) < 0 and not buf.endswith(b"\r\n"):
                        return
                    self._scan(final=True)
                    self.finish(None)
                    return
                del buf[: line_end + 2]
                self.chunk_left = size
            if len(buf) < self.chunk_left + 2:
                return
            self.events += buf[: self.chunk_left]
            del buf[: self.chunk_left + 2]
            self.chunk_left = -1
            self._scan(final=False)

    def _scan(self, final: bool) -> None:
        """Every complete event so far: chunk stamps, and the end of the stream."""
        events = self.events
        cut = len(events) if final else events.rfind(b"\n\n") + 2
        if cut <= 1:
            return
        block = bytes(events[:cut])
        del events[:cut]
        request = self.request
        if request is None or not self.gen.stream:
            return
        now = time.time()
        for stamp in _STAMP.findall(block):
            self.gen.chunk_delays.append(now - float(stamp))
            if request.chunks:
                self.gen.chunk_gaps.append(now - request.last_chunk)
            request.last_chunk = now
            request.chunks += 1
        if b"data: [DONE]" in block:
            request.saw_done = True

    def finish(self, error: str | None) -> None:
        request, self.request = self.request, None
        if request is None:
            return
        self.gen.carrying.pop(request, None)
        self.gen.done(request, self.status if error is None else 0, error)
        if error is not None or self.close_after or self.transport is None:
            if self.transport is not None:
                self.transport.close()
            return
        self.gen.idle.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        transport, self.transport = self.transport, None
        if transport is not None and self in self.gen.idle:
            self.gen.idle.remove(self)
        if self.request is not None:
            self.finish("closed")


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        url = urlsplit(args.url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 80
        body = {"model": args.model, "messages": [{"role": "user", "content": "Say hello."}]}
        if args.stream:
            body["stream"] = True
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers = [
            f"POST {url.path} HTTP/1.1",
            f"host: {url.netloc}",
            "content-type: application/json",
            f"content-length: {len(payload)}",
        ]
        if args.key:
            headers.append(f"authorization: Bearer {args.key}")
        headers += args.header
        self.raw = ("\r\n".join(headers) + "\r\n\r\n").encode() + payload
        self.args = args
        self.stream = args.stream
        self.idle: list[Connection] = []
        self.carrying: dict[Request, Connection] = {}  # requests on the wire, for timeouts
        self.connections = 0
        self.opening = 0
        self.latencies = array("d")
        self.lags = array("d")
        self.chunk_delays = array("d")
        self.chunk_gaps = array("d")
        self.statuses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.ok = 0
        self.incomplete = 0
        self.shed_latencies = array("d")
        self.total = 0
        self.all_done = asyncio.Event()
        self.started = 0
        self.finished = 0
        self.loop = asyncio.get_running_loop()

    def start(self, request: Request) -> None:
        self.started += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.lags.append(time.perf_counter() - request.due)
        request.timer = self.loop.call_later(self.args.timeout, self._timed_out, request)
        if self.idle:
            self.idle.pop().send(request)
            return
        if self.connections >= self.args.max_connections:
            self.done(request, 0, "no_connection")
            return
        self.connections += 1
        self.loop.create_task(self._connect(request))

    async def _connect(self, request: Request) -> None:
        try:
            _, conn = await self.loop.create_connection(
                lambda: Connection(self), self.host, self.port
            )
        except OSError as exc:
            self.connections -= 1
            self.done(request, 0, f"connect: {type(exc).__name__}")
            return
        if request.timer is None:  # timed out while connecting
            self.idle.append(conn)
            return
        conn.send(request)

    def _timed_out(self, request: Request) -> None:
        request.timer = None
        conn = self.carrying.get(request)
        if conn is not None:
            conn.finish("timeout")
        else:  # still connecting: counted now, and not sent once connected
            self.done(request, 0, "timeout")

    def done(self, request: Request, status: int, error: str | None) -> None:
        if request.timer is not None:
            request.timer.cancel()
            request.timer = None
        latency = time.perf_counter() - request.due
        self.in_flight -= 1
        self.finished += 1
        if error is not None:
            self.errors[error] += 1
        else:
            self.statuses[str(status)] += 1
            complete = not self.stream or (request.saw_done and request.chunks >= self.args.chunks)
            if status == 200 and complete:
                self.ok += 1
                self.latencies.append(latency)
            elif status == 200:
                self.incomplete += 1
            elif status == 503:
                self.shed_latencies.append(latency)
        if self.finished >= self.total:
            self.all_done.set()

    async def run(self) -> dict[str, Any]:
        args = self.args
        self.total = total = round(args.rate * args.duration)
        cpu0 = _cpu()
        clock = time.perf_counter  # the loop's clock has millisecond steps on uvloop
        t0 = clock() + 0.1
        interval = 1.0 / args.rate
        i = 0
        while i < total:
            now = clock()
            while i < total and t0 + i * interval <= now:
                self.start(Request(t0 + i * interval))
                i += 1
            if i < total:
                await asyncio.sleep(max(0.0, t0 + i * interval - clock()))
        sent_for = clock() - t0
        try:
            await asyncio.wait_for(self.all_done.wait(), args.timeout + 30)
        except TimeoutError:
            self.errors["unfinished"] += total - self.finished
        cpu = _cpu() - cpu0
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()
        return {
            "rate": args.rate,
            "duration_s": args.duration,
            "requests": total,
            "sent_for_s": round(sent_for, 3),
            "ok": self.ok,
            "success": self.ok / total if total else 0,
            "incomplete_streams": self.incomplete,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "latency_ms": _percentiles(self.latencies),
            "shed_latency_ms": _percentiles(self.shed_latencies),
            "lag_ms": _percentiles(self.lags),
            "max_in_flight": self.max_in_flight,
            "connections": self.connections,
            "generator_cpu_s": round(cpu, 3),
            "chunks": len(self.chunk_delays),
            "chunk_delay_ms": _percentiles(self.chunk_delays),
            "chunk_gap_ms": _percentiles(self.chunk_gaps),
        }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentiles(values: array[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, int(q * n))] * 1000, 3)

    return {
        "p50": at(0.5),
        "p90": at(0.9),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": round(ordered[-1] * 1000, 3),
        "count": n,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds of sending")
    parser.add_argument("--timeout", type=float, default=120, help="per request")
    parser.add_argument("--model", default="bench")
    parser.add_argument("--key", default="")
    parser.add_argument("--header", action="append", default=[], help="'name: value' (repeat)")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--chunks", type=int, default=0, help="content chunks a stream must carry")
    parser.add_argument("--max-connections", type=int, default=20000)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    async def go() -> dict[str, Any]:
        return await Generator(args).run()

    try:
        import uvloop

        result = uvloop.run(go())
    except ImportError:
        result = asyncio.run(go())
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
