"""Time to first token of streamed chat completions, one request at a time on one connection.

A request's time to first token is from just before it is sent to the arrival of the first
server-sent event whose delta carries non-empty `content`; its stream time runs to the end of the
response. Both are measured with aiohttp on one keep-alive connection, so what the client costs is
the same for a gateway and for the upstream measured directly, and cancels out of the difference.

    python bench/ttft.py http://127.0.0.1:8000/api/v1/chat/completions --key alc_... --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

DEFAULT_BODY: dict[str, Any] = {
    "model": "bench",
    "messages": [{"role": "user", "content": "Say hello."}],
    "stream": True,
}


@dataclass
class TtftResult:
    requests: int
    errors: int
    ttft_p50_us: float
    ttft_p99_us: float
    stream_p50_us: float


def _percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0 when there are no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _has_content(line: bytes) -> bool:
    """Whether an SSE line is a chunk whose first choice's delta carries some text."""
    if not line.startswith(b"data:") or b'"content"' not in line:
        return False
    payload = line[5:].strip()
    if payload == b"[DONE]":
        return False
    chunk = json.loads(payload)
    choices = chunk.get("choices") or []
    return bool(choices and (choices[0].get("delta") or {}).get("content"))


async def _one(
    session: aiohttp.ClientSession, url: str, payload: bytes, headers: dict[str, str]
) -> tuple[float, float]:
    """(time to first token, stream time) of one request, in microseconds."""
    start = time.perf_counter()
    first = 0.0
    async with session.post(url, data=payload, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {(await response.read())[:200]!r}")
        async for line in response.content:
            if not first and _has_content(line):
                first = time.perf_counter()
    end = time.perf_counter()
    if not first:
        raise RuntimeError("the stream carried no content")
    return (first - start) * 1e6, (end - start) * 1e6


async def measure(
    url: str,
    key: str | None,
    duration_s: float,
    warmup_s: float = 0.5,
    body: dict[str, Any] | None = None,
    extra_headers: dict[str, str] | None = None,
) -> TtftResult:
    """Stream requests back to back for `duration_s` (after `warmup_s` not counted);
    `extra_headers` route the request (Portkey's `x-portkey-*`)."""
    payload = json.dumps(body or DEFAULT_BODY).encode()
    headers = {"content-type": "application/json", **(extra_headers or {})}
    if key:
        headers["authorization"] = f"Bearer {key}"
    ttfts: list[float] = []
    streams: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        for phase, seconds in (("warmup", warmup_s), ("measure", duration_s)):
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                try:
                    ttft, stream = await _one(session, url, payload, headers)
                except (aiohttp.ClientError, RuntimeError, ValueError):
                    errors += phase == "measure"
                    continue
                if phase == "measure":
                    ttfts.append(ttft)
                    streams.append(stream)
    return TtftResult(
        requests=len(ttfts),
        errors=errors,
        ttft_p50_us=statistics.median(ttfts) if ttfts else 0.0,
        ttft_p99_us=_percentile(ttfts, 99),
        stream_p50_us=statistics.median(streams) if streams else 0.0,
    )


def run(
    url: str,
    key: str | None,
    duration_s: float,
    warmup_s: float = 0.5,
    extra_headers: dict[str, str] | None = None,
) -> TtftResult:
    """`measure` on a fresh event loop (uvloop when installed)."""
    work = measure(url, key, duration_s, warmup_s, extra_headers=extra_headers)
    try:
        import uvloop

        return uvloop.run(work)
    except ImportError:
        return asyncio.run(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the chat completions URL")
    parser.add_argument("--key", help="bearer key")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to measure")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds not counted")
    args = parser.parse_args()
    print(json.dumps(asdict(run(args.url, args.key, args.duration, args.warmup))))


if __name__ == "__main__":
    main()
