"""A soak: mixed traffic through one `alicerce serve` worker for a long while, watching its
resident memory and open file descriptors for growth after warm-up, and checking at the end
that every inference request is in the request log.

The traffic, from `--concurrency` clients in a loop: chat completions (half), streams read to
the end (a quarter), streams dropped after their first chunk (a client that leaves), knowledge
searches, and small document uploads that are deleted once indexed (so the collection stays
the same size and any growth is a leak, not data). The upstream is the canned one
(`canned_upstream.py`, streams paced by `--stream-gap-ms`); the store is a fresh SQLite file;
the collection embeds with the local multilingual-e5-small, as the default install does.

Memory and descriptors are sampled every `--sample-s` seconds; "warm-up" is the first
`--warmup-s` (the embedding model loads, caches fill). The verdict compares the end with the
warm-up's last sample.

    uv run --frozen python bench/soak.py --duration-s 1800 [--json soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import (  # a script beside its helpers
    MODEL_NAME,
    _alicerce_cli,
    process_tree,
    setup_alicerce,
    start_alicerce,
    start_upstream,
    tree_rss_mib,
)

HANDBOOK = (
    Path(__file__).resolve().parent.parent / "tests/fixtures/knowledge/handbook.pdf"
).read_bytes()


def open_fds(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):  # a process that just ended
            total += len(os.listdir(f"/proc/{p}/fd"))
    return total


class Traffic:
    """The clients' loop and what it counted."""

    def __init__(
        self, base: str, inference_key: str, admin_key: str, collection: str, uploads: float
    ) -> None:
        self.base = base
        self.upload_share = uploads
        self.inference = {"authorization": f"Bearer {inference_key}"}
        self.admin = {"authorization": f"Bearer {admin_key}"}
        self.collection = collection
        self.outcomes: Counter[str] = Counter()
        self.inference_requests = 0
        self.request_ids: set[str] = set()
        self.latencies: list[float] = []

    def _chat_body(self, stream: bool) -> dict[str, Any]:
        question = f"soak {uuid.uuid4().hex[:8]}: what does the handbook say about badges?"
        body: dict[str, Any] = {
            "model": MODEL_NAME,
            "messages": [{"role": "user", "content": question}],
        }
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return body

    async def chat(self, session: aiohttp.ClientSession, stream: bool, leave: bool) -> str:
        self.inference_requests += 1
        url = self.base + "/api/v1/chat/completions"
        async with session.post(url, json=self._chat_body(stream), headers=self.inference) as r:
            if rid := r.headers.get("x-request-id"):
                self.request_ids.add(rid)
            if r.status != 200:
                return f"chat {r.status}"
            if not stream:
                await r.read()
                return "chat ok"
            async for _ in r.content:
                if leave:  # a client that goes away mid-stream
                    r.close()
                    return "stream left"
            return "stream ok"

    async def search(self, session: aiohttp.ClientSession) -> str:
        url = f"{self.base}/api/v1/collections/{self.collection}/search"
        body = {"query": random.choice(["badge", "férias", "onboarding", "north entrance"])}
        async with session.post(url, json=body, headers=self.admin) as r:
            await r.read()
            return f"search {r.status}" if r.status != 200 else "search ok"

    async def upload(self, session: aiohttp.ClientSession) -> str:
        documents = f"{self.base}/api/v1/collections/{self.collection}/documents"
        body = {
            "name": f"note-{uuid.uuid4().hex[:8]}.md",
            "content": f"# Note\n\nThe soak wrote this at {time.time()}: {uuid.uuid4().hex}.",
        }
        async with session.post(documents, json=body, headers=self.admin) as r:
            if r.status not in (200, 202):
                return f"upload {r.status}"
            document = await r.json()
        for _ in range(600):  # until it is indexed, then it goes: the collection keeps its size
            async with session.get(f"{documents}/{document['id']}", headers=self.admin) as r:
                state = await r.json()
            status = state["status"]
            if status in ("ready", "failed"):
                break
            await asyncio.sleep(0.2)
        async with session.delete(f"{documents}/{document['id']}", headers=self.admin) as r:
            await r.read()
        if status == "failed":  # why, in its words
            return f"upload failed: {(state.get('error') or '')[:100]}"
        return "upload ok" if status == "ready" else f"upload {status}"

    async def client(self, session: aiohttp.ClientSession, until: float) -> None:
        while time.monotonic() < until:
            roll = random.random()
            started = time.perf_counter()
            try:
                if roll < 0.50:
                    outcome = await self.chat(session, stream=False, leave=False)
                elif roll < 0.75:
                    outcome = await self.chat(session, stream=True, leave=False)
                elif roll < 0.85:
                    outcome = await self.chat(session, stream=True, leave=True)
                elif roll < 1 - self.upload_share:
                    outcome = await self.search(session)
                else:
                    outcome = await self.upload(session)
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = f"error {type(exc).__name__}"
            self.outcomes[outcome] += 1
            self.latencies.append(time.perf_counter() - started)


async def run(args: argparse.Namespace, base: str, setup: Any, pid: int) -> dict[str, Any]:
    account = _alicerce_cli(setup.env, setup.workdir, "accounts", "list")["data"][0]["id"]
    admin = _alicerce_cli(
        setup.env, setup.workdir, "keys", "create", account, "--name", "soak", "--role", "admin"
    )["key"]
    headers = {"authorization": f"Bearer {admin}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            base + "/api/v1/collections", json={"name": "soak"}, headers=headers
        ) as r:
            collection = (await r.json())["id"]
        form = aiohttp.FormData()
        form.add_field("file", HANDBOOK, filename="handbook.pdf")
        async with session.post(
            f"{base}/api/v1/collections/{collection}/documents", data=form, headers=headers
        ) as r:
            await r.read()
    traffic = Traffic(base, setup.key, admin, collection, args.upload_share)
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    until = started + args.duration_s
    connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        clients = [
            asyncio.create_task(traffic.client(session, until)) for _ in range(args.concurrency)
        ]
        while time.monotonic() < until:
            rss, processes = tree_rss_mib(pid)
            samples.append(
                {
                    "t_s": round(time.monotonic() - started, 1),
                    "rss_mib": round(rss, 1),
                    "fds": open_fds(pid),
                    "processes": processes,
                    "requests": sum(traffic.outcomes.values()),
                }
            )
            print(json.dumps(samples[-1]), flush=True)
            await asyncio.sleep(args.sample_s)
        await asyncio.gather(*clients)
    await asyncio.sleep(3)  # the request log's last flush
    with sqlite3.connect(setup.db_path) as db:
        recorded = {row[0] for row in db.execute("SELECT id FROM request_log")}
    warm = [s for s in samples if s["t_s"] >= args.warmup_s] or samples
    return {
        "duration_s": args.duration_s,
        "concurrency": args.concurrency,
        "outcomes": dict(traffic.outcomes),
        "inference_requests": traffic.inference_requests,
        "inference_unrecorded": len(traffic.request_ids - recorded),
        "latency_p50_ms": round(statistics.median(traffic.latencies) * 1000, 1),
        "after_warmup": warm[0],
        "end": samples[-1],
        "rss_growth_mib": round(samples[-1]["rss_mib"] - warm[0]["rss_mib"], 1),
        "rss_max_after_warmup_mib": max(s["rss_mib"] for s in warm),
        "fds_growth": samples[-1]["fds"] - warm[0]["fds"],
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=1800)
    parser.add_argument("--warmup-s", type=float, default=120)
    parser.add_argument("--sample-s", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stream-gap-ms", type=float, default=100)
    parser.add_argument(
        "--upload-share", type=float, default=0.03, help="of the requests, taken from searches"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the result here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="alicerce-soak-") as directory:
        workdir = Path(directory)
        upstream, upstream_base = start_upstream(workdir, args.stream_gap_ms)
        try:
            setup = setup_alicerce(workdir, upstream_base)
            server, chat_url = start_alicerce(setup, workers=1)
            try:
                base = chat_url.removesuffix("/api/v1/chat/completions")
                result = asyncio.run(run(args, base, setup, server.pid))
            finally:
                server.stop()
        finally:
            upstream.stop()
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
