"""Logs an operator can follow: one line per request, upstream failures and fallbacks named
(and kept in the request log), library warnings in the JSON log, worker deaths with a cause."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from alicerce.billing import TokenUsage
from alicerce.keys import Principal
from alicerce.ledger import UsageLedger
from alicerce.limits import Limiter, MemoryBackend
from alicerce.logs import JsonFormatter, logging_config
from alicerce.metrics import Metrics
from alicerce.request_log import RequestLog
from alicerce.store import Database
from tests.conftest import Account, Upstream, create_database, write_catalog
from tests.servers import ServerProcess

FIELDS = {
    "request_id",
    "account_id",
    "key_id",
    "gateway_id",
    "gateway",
    "endpoint",
    "stream",
    "status",
    "upstream",
    "model",
    "latency_ms",
    "ttft_ms",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "amount",
    "error_type",
    "error_code",
    "failed_attempts",
}


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="alicerce")  # the request lines, the warnings
    return caplog


def request_lines(logs: pytest.LogCaptureFixture, request_id: str) -> list[dict[str, Any]]:
    """The request's `alicerce.requests` lines, as the JSON formatter writes them."""
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(record))
        for record in logs.records
        if record.name == "alicerce.requests" and _request_of(record) == request_id
    ]


def _request_of(record: logging.LogRecord) -> str | None:
    return getattr(record, "fields", {}).get("request_id")  # type: ignore[no-any-return]


def the_line(account: Account, logs: pytest.LogCaptureFixture, request_id: str) -> dict[str, Any]:
    account.alicerce.wait_for_record(request_id)  # the line is written as the call is recorded
    lines = request_lines(logs, request_id)
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("stream", [False, True])
def test_a_chat_completion_writes_one_structured_line(
    account: Account, logs: pytest.LogCaptureFixture, stream: bool
) -> None:
    gateway = account.create_gateway(model="@mock/priced")
    raw = account.openai().chat.completions.with_raw_response.create(
        model=gateway["slug"], messages=[{"role": "user", "content": "Hi"}], stream=stream
    )
    list(raw.parse()) if stream else raw.parse()
    line = the_line(account, logs, raw.headers["x-request-id"])
    assert set(line) >= FIELDS
    assert line["level"] == "info" and line["logger"] == "alicerce.requests"
    assert line["account_id"] == account.id and line["key_id"]
    assert (line["gateway_id"], line["gateway"]) == (gateway["id"], gateway["slug"])
    assert line["upstream"] == "@mock/priced"
    assert (line["endpoint"], line["stream"], line["status"]) == ("chat.completions", stream, 200)
    assert line["prompt_tokens"] > 0 and line["completion_tokens"] > 0
    assert line["cached_tokens"] > 0  # the `cached` mock model reports some
    assert isinstance(line["amount"], float) and line["amount"] > 0
    assert line["latency_ms"] > 0
    assert (line["ttft_ms"] is not None) is stream
    assert line["error_type"] is None and line["failed_attempts"] == 0


def test_responses_and_embeddings_write_their_line(
    account: Account, logs: pytest.LogCaptureFixture
) -> None:
    gateway = account.create_gateway(model="@mock/plain")
    client = account.openai()
    response = client.responses.with_raw_response.create(model=gateway["id"], input="Hi")
    line = the_line(account, logs, response.headers["x-request-id"])
    assert (line["endpoint"], line["upstream"], line["status"]) == ("responses", "@mock/plain", 200)
    embedded = client.embeddings.with_raw_response.create(model="@mock/embed", input=["uma"])
    line = the_line(account, logs, embedded.headers["x-request-id"])
    assert (line["endpoint"], line["model"], line["gateway"]) == ("embeddings", "@mock/embed", None)


def test_a_refused_request_has_its_line_with_the_error(
    account: Account, logs: pytest.LogCaptureFixture
) -> None:
    response = httpx.post(
        account.alicerce.url + "/api/v1/chat/completions",
        headers={"authorization": f"Bearer {account.admin_key}"},
        json={"model": "no-such-gateway", "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert response.status_code == 404
    line = the_line(account, logs, response.headers["x-request-id"])
    assert (line["status"], line["error_type"], line["error_code"]) == (
        404,
        "not_found_error",
        "model_not_found",
    )
    assert line["upstream"] is None and line["amount"] == 0


def test_the_text_line_is_short_and_readable(
    account: Account, logs: pytest.LogCaptureFixture
) -> None:
    gateway = account.create_gateway(model="@mock/plain")
    raw = account.openai().chat.completions.with_raw_response.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    list(raw.parse())
    request_id = raw.headers["x-request-id"]
    account.alicerce.wait_for_record(request_id)
    (record,) = [r for r in logs.records if _request_of(r) == request_id]
    text = logging_config("info", "text")["formatters"]["default"]["format"]
    line = logging.Formatter(text).format(record)
    assert f"INFO alicerce.requests: {request_id} chat.completions 200 {gateway['slug']}" in line
    assert " @mock/plain " in line and " ms, " in line and "first token" in line
    assert "\n" not in line and len(line) < 250


def _by_request(logs: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    return [
        r
        for r in logs.records
        if r.name == "alicerce.upstreams" and getattr(r, "request_id", None) == request_id
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_a_fallback_after_a_503_is_logged_and_kept_in_the_request_log(
    account: Account, logs: pytest.LogCaptureFixture, stream: bool
) -> None:
    gateway = account.create_gateway(model="@mock/down", fallbacks=["@mock/plain"])
    raw = account.openai().chat.completions.with_raw_response.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Q"}], stream=stream
    )
    list(raw.parse()) if stream else raw.parse()
    request_id = raw.headers["x-request-id"]
    row = account.alicerce.wait_for_record(request_id)

    (warning,) = _by_request(logs, request_id)
    assert warning.levelno == logging.WARNING
    assert warning.upstream == "@mock/down" and warning.upstream_status == 503  # type: ignore[attr-defined]
    assert warning.attempt == 1 and warning.then == "fallback"  # type: ignore[attr-defined]
    assert warning.next_upstream == "@mock/plain"  # type: ignore[attr-defined]
    message = warning.getMessage()
    assert "@mock/down" in message and "503" in message and "falling back to @mock/plain" in message
    assert "sk-mock-provider" not in message  # the provider's key, from the environment

    assert row.status_code == 200 and row.error_type is None
    expected = {
        "upstream": "@mock/down",
        "attempt": 1,
        "status": 503,
        "error": {
            "type": "upstream_error",
            "code": "upstream_unavailable",
            "message": "Upstream '@mock/down' is unavailable (503): mock failure 503",
        },
        "then": "fallback",
        "next": "@mock/plain",
    }
    assert row.attempts == [expected]
    with account.http() as client:
        (entry,) = [e for e in client.get("/requests").json()["data"] if e["id"] == request_id]
    assert entry["attempts"] == [expected] and entry["error"] is None
    line = the_line(account, logs, request_id)
    assert (line["upstream"], line["failed_attempts"]) == ("@mock/plain", 1)


def test_a_retry_then_a_fallback_each_logged(
    account: Account, logs: pytest.LogCaptureFixture
) -> None:
    """An endpoint nobody listens on is unreachable: retried once (after 1 s, as the contract's
    `retry-after` of 1 s says), then left for the fallback. Its host is named, not its key."""
    with socket_on_loopback() as port:
        pass  # closed: connections are refused
    gateway = account.create_gateway(
        endpoint={"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-own", "model": "m"},
        fallbacks=["@mock/plain"],
    )
    raw = account.openai().chat.completions.with_raw_response.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Q"}]
    )
    request_id = raw.headers["x-request-id"]
    row = account.alicerce.wait_for_record(request_id)
    retry, fallback = _by_request(logs, request_id)
    host = f"127.0.0.1:{port}"
    assert (retry.upstream, retry.attempt, retry.then) == (host, 1, "retry")  # type: ignore[attr-defined]
    assert retry.upstream_status is None and "retrying in 1.00 s" in retry.getMessage()  # type: ignore[attr-defined]
    assert (fallback.attempt, fallback.then, fallback.next_upstream) == (  # type: ignore[attr-defined]
        2,
        "fallback",
        "@mock/plain",
    )
    assert all("sk-own" not in r.getMessage() for r in (retry, fallback))
    assert [(a["upstream"], a["then"]) for a in row.attempts or []] == [
        (host, "retry"),
        (host, "fallback"),
    ]


def test_every_upstream_failing_is_logged_and_recorded(
    account: Account, logs: pytest.LogCaptureFixture
) -> None:
    gateway = account.create_gateway(model="@mock/broken", fallbacks=["@mock/down"])
    response = httpx.post(
        account.alicerce.url + "/api/v1/chat/completions",
        headers={"authorization": f"Bearer {account.admin_key}"},
        json={"model": gateway["id"], "messages": [{"role": "user", "content": "Q"}]},
    )
    assert response.status_code == 503
    request_id = response.headers["x-request-id"]
    row = account.alicerce.wait_for_record(request_id)
    assert [(r.upstream, r.then) for r in _by_request(logs, request_id)] == [  # type: ignore[attr-defined]
        ("@mock/broken", "fallback"),
        ("@mock/down", "fail"),
    ]
    assert [a["status"] for a in row.attempts or []] == [500, 503]
    assert row.error_type == "upstream_error"
    line = the_line(account, logs, request_id)
    assert (line["status"], line["error_code"], line["failed_attempts"]) == (
        503,
        "upstream_unavailable",
        2,
    )


def test_request_lines_can_be_turned_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`ALICERCE_LOG_REQUESTS=false`: the request log still records, no line is written."""
    caplog.set_level(logging.INFO, logger="alicerce.requests")
    db = Database(f"sqlite:///{tmp_path / 'quiet.db'}")
    db.migrate()
    principal = Principal(key_id="k", account_id="a", role="inference", gateways=None)

    async def record(log_requests: bool) -> None:
        request_log = RequestLog(db, flush_interval_s=10, batch_size=100)
        limiter = Limiter(MemoryBackend(), lambda key, since: Decimal(0))
        ledger = UsageLedger(request_log, limiter, Metrics(), log_requests=log_requests)
        call = ledger.open_call(principal, "chat.completions", time.perf_counter())
        ledger.record_call(call, model="m", status=200, usage=TokenUsage(1, 1), items=[])
        await request_log.close()

    asyncio.run(record(False))
    assert not [r for r in caplog.records if r.name == "alicerce.requests"]
    asyncio.run(record(True))
    assert len([r for r in caplog.records if r.name == "alicerce.requests"]) == 1
    db.dispose()


# -- the process's log: what `serve` writes ------------------------------------------------

LIBRARY_WARNINGS = """
import logging.config, warnings
from pathlib import Path
from alicerce.logs import logging_config
from alicerce.knowledge.extract import ExtractionError, extract

logging.config.dictConfig(logging_config("info", "json"))
data = Path("tests/fixtures/knowledge/handbook.pdf").read_bytes()
try:
    extract(data[: len(data) // 2], "broken.pdf")  # pypdf warns through `logging`
except ExtractionError:
    pass
warnings.warn("a library's warning", DeprecationWarning, stacklevel=1)
logging.getLogger("somelibrary").warning("and another library's logger")
"""


def test_library_warnings_come_out_as_json() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", LIBRARY_WARNINGS],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # JSON, every one
    by_logger = {line["logger"]: line for line in lines}
    assert by_logger["pypdf._reader"]["level"] == "warning"
    assert "EOF marker not found" in by_logger["pypdf._reader"]["message"]
    assert "a library's warning" in by_logger["py.warnings"]["message"]
    assert by_logger["somelibrary"]["message"] == "and another library's logger"
    assert datetime.fromisoformat(lines[0]["time"]).tzinfo == UTC


class socket_on_loopback:
    """A free loopback port: bound while inside the block, free (and refusing) after it."""

    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        return int(self._socket.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._socket.close()


def _children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _workers(supervisor: int) -> set[int]:
    """The supervisor's worker processes (multiprocessing's spawned children, once they have
    become one: not its resource tracker)."""
    found = set()
    for child in _children(supervisor):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            found.add(child)
    return found


class Lines:
    """A process's output, line by line as it comes, for a test to wait on."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._new = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            with self._new:
                self.lines.append(raw.decode(errors="replace"))
                self._new.notify_all()

    def wait_for(self, text: str, timeout: float) -> str | None:
        with self._new:
            self._new.wait_for(lambda: any(text in line for line in self.lines), timeout)
            return next((line for line in self.lines if text in line), None)


@pytest.mark.slow
def test_a_dead_worker_is_a_warning_with_its_cause_and_is_replaced(
    tmp_path: Path, upstream: Upstream
) -> None:
    env = {
        "ALICERCE_DATABASE_URL": f"sqlite:///{tmp_path / 'workers.db'}",
        "ALICERCE_SECRET_KEY": "workers",
        "ALICERCE_ROOT_KEY": "alc_workers_" + uuid.uuid4().hex,
        "ALICERCE_CONFIG": str(write_catalog(tmp_path, upstream)),
        "ALICERCE_LOG_LEVEL": "warning",  # the death is a warning: seen at this level too
        "ALICERCE_LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    (tmp_path / "metrics").mkdir()
    create_database(env["ALICERCE_DATABASE_URL"])
    server = ServerProcess(env, "--workers", "2")
    output = Lines(server.process.stdout)
    try:
        server.wait_ready(timeout=90)
        deadline = time.monotonic() + 30
        while len(workers := _workers(server.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) == 2, workers
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        # The supervisor notices within a second, unless it is waiting on the other worker's
        # answer to its health check (a worker still importing the app under load answers
        # late): then up to the health-check timeout (30 s) more.
        line = output.wait_for(f"worker [{victim}] died", timeout=90)
        assert line is not None, "".join(output.lines)
        entry = json.loads(line)
        assert entry["level"] == "warning" and entry["logger"] == "alicerce.workers"
        assert (entry["pid"], entry["exit_code"], entry["signal"]) == (victim, -9, "SIGKILL")
        assert "killed by SIGKILL" in entry["message"]
        children = _children(server.process.pid)  # the replacement may not have exec'd yet
        assert entry["replacement_pid"] in children and victim not in children
        assert httpx.get(server.url + "/healthz").status_code == 200
    finally:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)
