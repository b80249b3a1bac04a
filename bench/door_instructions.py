"""Instructions a request costs through the door, counted by callgrind (repeatable to ~0.5%).

Wall-clock figures on this shared 2-core machine move by 10% from one run to the next; the
instructions of the same requests do not. This drives the real app in process (its `FastPath`
door, its lifespan, the request log on SQLite, key auth) against `bench/canned_upstream.py`, with
callgrind counting only the measured requests: it starts with instrumentation off, and the
script turns it on (`callgrind_control -i on`) after a warm-up.

    uv run --frozen python bench/door_instructions.py            # under callgrind
    uv run --frozen python bench/door_instructions.py --kind stream --requests 200

It prints one line, `DOOR_JSON {...}` with the instructions a request (Ir over the measured
requests, divided by their number). Settings come from the environment as for the server
(e.g. `ALICERCE_LOG_LEVEL=info` to count the request log line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging.config
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

BODIES = {
    "chat": {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}]},
    "stream": {
        "model": "bench",
        "stream": True,
        "messages": [{"role": "user", "content": "Say hello."}],
    },
}


class _Cycle:
    """One request's `receive`, bound to an object with uvicorn's `disconnected` flag, as
    uvicorn's is: the app reads the flag for free (`api/http.py`, `client_gone`) instead of
    polling `receive`, which the harness would count and the server does not pay."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent = False
        self.disconnected = False

    async def receive(self) -> dict[str, Any]:
        if not self.sent:
            self.sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        return {"type": "http.disconnect"}


async def _request(app: Any, key: str, body: bytes) -> int:
    """One POST through the door, as uvicorn would call it; the response status."""
    status = 0
    receive = _Cycle(body).receive

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/chat/completions",
        "raw_path": b"/api/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {key}".encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "state": {},
    }
    await app(scope, receive, send)
    return status


def _instrument(state: str) -> None:
    """Callgrind counts from here (`on`) or stops (`off`); blocking, so nothing else runs."""
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True)


async def _run(args: argparse.Namespace, upstream: str) -> None:
    from alicerce.api import create_app
    from alicerce.keys import AccountCreate, KeyCreate
    from alicerce.logs import logging_config
    from alicerce.services import Services
    from alicerce.settings import Settings

    directory = Path(tempfile.mkdtemp(prefix="alicerce-door-"))
    settings = Settings(
        database_url=f"sqlite:///{directory / 'door.db'}",
        allow_private_upstreams=True,
        secret_key="door-secret",
        # nothing that depends on the wall clock, which callgrind slows 50-fold: the key and
        # gateway caches do not expire, and the request log is written only when flushed here
        cache_ttl_s=3600,
        request_log_flush_interval_s=3600,
        request_log_batch_size=100_000,
    )
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    services = Services.build(settings, create_database=True)
    account = services.keys.create_account(AccountCreate(name="bench"))
    endpoint = {"base_url": upstream, "api_key": "sk-canned", "model": "canned-model"}
    services.gateways.create(account["id"], {"name": "bench", "endpoint": endpoint})
    key = services.keys.create_key(account["id"], KeyCreate(name="bench", role="inference"))["key"]
    app = create_app(services=services)
    body = json.dumps(BODIES[args.kind]).encode()
    async with app.app.router.lifespan_context(app.app):  # the app's start and close
        for _ in range(args.warmup):
            assert await _request(app, key, body) == 200
        await services.request_log.flush()
        if args.callgrind:
            _instrument("on")
        for _ in range(args.requests):
            await _request(app, key, body)
        await services.request_log.flush()  # the writes belong to the requests
        if args.callgrind:
            _instrument("off")
    shutil.rmtree(directory, ignore_errors=True)


def _inner(args: argparse.Namespace) -> None:
    import uvloop

    uvloop.run(_run(args, args.upstream))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=sorted(BODIES), default="chat")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)  # set for the inner run
    parser.add_argument("--callgrind", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        _inner(args)
        return
    sys.path.insert(0, str(BENCH_DIR))
    import servers

    work = Path(tempfile.mkdtemp(prefix="alicerce-door-"))
    upstream, base = servers.start_upstream(work, 1.0)
    out = work / "callgrind.out"
    try:
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--callgrind",
                "--upstream",
                base,
                "--kind",
                args.kind,
                "--requests",
                str(args.requests),
                "--warmup",
                str(args.warmup),
            ],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        match = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)
    finally:
        upstream.stop()
        shutil.rmtree(work, ignore_errors=True)
    assert match, "no totals in the callgrind output"
    total = int(match.group(1))
    result = {
        "kind": args.kind,
        "requests": args.requests,
        "ir_per_request": total // args.requests,
    }
    print("DOOR_JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
