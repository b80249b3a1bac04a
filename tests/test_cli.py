"""The `alicerce` command: set-up commands in-process, `serve` as a real process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from alicerce.cli import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "ALICERCE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "ALICERCE_SECRET_KEY": "cli-secret",
        "ALICERCE_ALLOW_PRIVATE_UPSTREAMS": "true",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ALICERCE_ROOT_KEY", raising=False)
    return values


def test_init_prints_a_root_key_once(env: dict[str, str]) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["init"])
    assert first.exit_code == 0, first.output
    assert "Root key" in first.output and "alc_" in first.output
    second = runner.invoke(main, ["init"])
    assert second.exit_code == 0
    assert "alc_" not in second.output


def test_accounts_keys_and_gateways_from_the_shell(env: dict[str, str]) -> None:
    runner = CliRunner()
    account = json.loads(runner.invoke(main, ["accounts", "create", "acme"]).output)
    assert account["admin_key"].startswith("alc_")
    definition = json.dumps({"name": "bot", "model": "@local/smollm2-135m"})
    created = runner.invoke(main, ["gateways", "create", account["id"], "-"], input=definition)
    assert created.exit_code == 0, created.output
    gateway = json.loads(created.output)
    assert gateway["slug"].startswith("bot:")
    key = runner.invoke(
        main, ["keys", "create", account["id"], "--role", "inference", "--gateway", "bot"]
    )
    assert key.exit_code == 0, key.output
    assert json.loads(key.output)["gateways"] == [gateway["id"]]
    listed = json.loads(runner.invoke(main, ["gateways", "list", account["id"]]).output)
    assert [g["id"] for g in listed] == [gateway["id"]]
    accounts = json.loads(runner.invoke(main, ["accounts", "list"]).output)
    assert [a["name"] for a in accounts] == ["acme"]


def test_bad_definitions_are_refused_with_a_message(env: dict[str, str]) -> None:
    runner = CliRunner()
    account = json.loads(runner.invoke(main, ["accounts", "create", "acme"]).output)
    not_json = runner.invoke(main, ["gateways", "create", account["id"], "-"], input="{nope")
    assert not_json.exit_code != 0 and "not JSON" in not_json.output
    invalid = runner.invoke(
        main, ["gateways", "create", account["id"], "-"], input='{"name": "x", "model": "@no/pe"}'
    )
    assert invalid.exit_code != 0 and "catalog" in invalid.output
    unknown = runner.invoke(main, ["keys", "create", "no-such-account"])
    assert unknown.exit_code != 0 and "No account" in unknown.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_runs_and_flushes_the_request_log_on_a_graceful_stop(
    env: dict[str, str], tmp_path: Path, upstream
) -> None:
    port = _free_port()
    process_env = (
        os.environ
        | env
        | {
            "ALICERCE_ROOT_KEY": "alc_cli_root",
            # Only the shutdown flush can write the record: the interval is far away.
            "ALICERCE_REQUEST_LOG_FLUSH_INTERVAL_S": "3600",
        }
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "alicerce", "serve", "--port", str(port)],
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
            time.sleep(0.1)
        root = {"authorization": "Bearer alc_cli_root"}
        account = httpx.post(base + "/api/v1/accounts", json={"name": "a"}, headers=root).json()
        admin = {"authorization": f"Bearer {account['admin_key']}"}
        gateway = httpx.post(
            base + "/api/v1/gateways",
            headers=admin,
            json={"name": "g", "endpoint": {"base_url": upstream.url, "model": "plain"}},
        ).json()
        answer = httpx.post(
            base + "/api/v1/chat/completions",
            headers=admin,
            json={"model": gateway["id"], "messages": [{"role": "user", "content": "hi"}]},
        )
        assert answer.status_code == 200
        request_id = answer.json()["id"]
        assert httpx.get(base + "/openapi.json").json()["info"]["title"] == "Alicerce"
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode()
    # uvicorn re-raises the signal once it has shut down gracefully
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    engine = create_engine(env["ALICERCE_DATABASE_URL"])
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT status_code FROM request_log WHERE id = :id"), {"id": request_id}
        ).scalar()
    engine.dispose()
    assert found == 200
