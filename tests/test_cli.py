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
from tests.cli_helpers import Cli, cli_environment


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return cli_environment(tmp_path, monkeypatch)


def test_init_prints_a_root_key_once(env: dict[str, str]) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["init"])
    assert first.exit_code == 0, first.output
    assert "Root key" in first.output and "alc_" in first.output
    second = runner.invoke(main, ["init"])
    assert second.exit_code == 0
    assert "alc_" not in second.output


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


CATALOG = """
[providers.openai]
base_url = "https://api.openai.com/v1"
api_key_env = "CLI_TEST_OPENAI_KEY"

[[models]]
id = "@openai/gpt-5-mini"
provider = "openai"
price_in = 0.25
price_out = 2
price_cached_in = 0.025
context_length = 400000
"""


def test_models_lists_the_catalog(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    monkeypatch.setenv("ALICERCE_CONFIG", str(catalog))
    monkeypatch.setenv("CLI_TEST_OPENAI_KEY", "sk-x")
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    rows = {row.split()[0]: row.split()[1:] for row in result.output.splitlines()[2:]}
    assert rows["@openai/gpt-5-mini"] == [
        "chat", "openai", "gpt-5-mini", "0.25", "2", "0.025", "400000"
    ]  # fmt: skip
    assert rows["@local/smollm2-135m"][:2] == ["chat", "alicerce"]
    # the local embedding model, which `GET /api/v1/models` lists for `/embeddings`
    assert rows["@local/multilingual-e5-small"] == [
        "embedding", "alicerce", "multilingual-e5-small", "0", "0", "0", "384", "dims"
    ]  # fmt: skip
    listed = Cli().json("models")
    assert listed["object"] == "list"
    entry = next(m for m in listed["data"] if m["id"] == "@openai/gpt-5-mini")
    assert entry | {"price_in": 0.25, "price_out": 2, "price_cached_in": 0.025} == entry
    assert (entry["object"], entry["owned_by"], entry["kind"]) == ("model", "openai", "chat")
    catalog.write_text(CATALOG + 'colour = "red"\n')
    refused = CliRunner().invoke(main, ["models"])
    assert refused.exit_code != 0
    assert "line 13" in refused.output and "colour" in refused.output


def test_usage_prints_spending_by_day_sku_and_gateway(env: dict[str, str]) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from alicerce.billing import LineItem
    from alicerce.request_log import RequestLog, RequestRecord
    from alicerce.services import Services
    from alicerce.settings import Settings

    cli = Cli()
    account = cli.json("accounts", "create", "acme")
    definition = json.dumps({"name": "bot", "model": "@local/smollm2-135m"})
    gateway = cli.json("gateways", "create", account["id"], "-", input=definition)
    services = Services.build(Settings())
    log = RequestLog(services.db, flush_interval_s=1, batch_size=10)
    item = LineItem("inference.chat_completions.out", 1200, Decimal("0.000002"), "d")
    log.write_records(
        [
            RequestRecord(
                id=str(uuid),
                created_at=datetime.now(UTC),
                endpoint="chat.completions",
                stream=False,
                account_id=account["id"],
                gateway_id=gateway["id"],
                amount=item.amount,
                line_items=[item.to_record()],
            )
            for uuid in (
                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f5000",
                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f5001",
            )
        ]
    )
    services.db.dispose()
    for ref in (account["id"], "acme"):
        printed = cli.ok("usage", ref)
        assert "inference.chat_completions.out" in printed
        [gateway_row] = [line.split() for line in printed.splitlines() if "bot" in line]
        assert gateway_row == ["bot", "2", "0", "0.0048", "USD"]  # name, requests, refused
        [sku_row] = [line.split() for line in printed.splitlines() if "chat_completions" in line]
        assert sku_row[1:] == ["2", "0", "2400", "token", "0.0048", "USD"]
        assert "Total over 30 days: 0.0048 USD" in printed
    by_sku = cli.json("usage", "acme", "--group-by", "sku")
    assert list(by_sku) == ["sku"]
    [line] = by_sku["sku"]["data"]
    assert (line["sku"], line["requests"], line["amount"]) == (
        "inference.chat_completions.out", 2, 0.0048
    )  # fmt: skip


def test_the_catalog_reloads_without_a_restart(tmp_path: Path) -> None:
    import asyncio

    from alicerce.services import Services
    from alicerce.settings import Settings

    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[providers.p]\nbase_url = "http://p/v1"\n')
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        secret_key="s",
        config=str(catalog),
        catalog_poll_interval_s=0.02,
    )

    def rewrite(text: str, seconds_ahead: int) -> None:
        """A new content with an mtime of its own: two writes within one tick of the file
        system's clock could share one, and the watcher would not see the second."""
        catalog.write_text(text)
        stamp = time.time_ns() + seconds_ahead * 1_000_000_000
        os.utime(catalog, ns=(stamp, stamp))

    async def run() -> None:
        services = Services.build(settings, create_database=True)
        await services.start()
        try:
            assert "@p/new" not in services.catalog
            read = services.next_catalog_read()
            rewrite(catalog.read_text() + '[[models]]\nid = "@p/new"\nprovider = "p"\n', 1)
            await asyncio.wait_for(read, 5)
            assert "@p/new" in services.catalog
            read = services.next_catalog_read()
            rewrite("this is = = not toml", 2)  # refused: the last good one stays
            await asyncio.wait_for(read, 5)
            assert "@p/new" in services.catalog
        finally:
            await services.close()

    asyncio.run(run())


def test_the_command_loads_no_heavy_module_before_a_command_needs_it() -> None:
    """`alicerce --help` (and a mistyped command) answer at once: the database, the models, the
    HTTP stack and the web app are imported by the commands that use them."""
    heavy = ("onnx", "onnxruntime", "llama_cpp", "sqlalchemy", "alembic", "fastapi", "uvicorn",
             "aiohttp", "usearch", "numpy")  # fmt: skip
    probe = f"import sys, alicerce.cli; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""
    help_text = subprocess.run(
        [sys.executable, "-m", "alicerce", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "serve" in help_text and "ingest" in help_text


# What only serving and knowledge need: the models, vector indexes, document readers, the
# upstream HTTP stack, the web app; and what only some commands need: JSON Schema (a gateway's
# functions), the PostgreSQL dialect (on SQLite).
NOT_FOR_ADMIN = (
    "numpy", "aiohttp", "onnx", "onnxruntime", "usearch", "llama_cpp", "pypdf", "docx", "lxml",
    "fastapi", "uvicorn", "alicerce.services", "alicerce.knowledge.store", "alicerce.inference",
    "jsonschema", "sqlalchemy.dialects.postgresql",
)  # fmt: skip
# A command run as the console script runs it, then what of `NOT_FOR_ADMIN` it loaded, and
# whether the garbage collector, paused while the command imported, is on again.
ADMIN_PROBE = f"""
import gc, sys
from alicerce.__main__ import run
try:
    run()
except SystemExit as exc:
    if exc.code:
        raise
print("collector on:", gc.isenabled())
print("loaded:", ",".join(m for m in {NOT_FOR_ADMIN!r} if m in sys.modules))
"""


def test_the_admin_commands_load_no_knowledge_or_inference_stack(env: dict[str, str]) -> None:
    """`accounts`, `keys`, `gateways` and `usage` answer in well under a second: they open the
    admin parts alone (`alicerce.admin`), not the services with their models and indexes, and
    deleting an account without collections builds no knowledge store either."""
    cli = Cli()
    cli.ok("accounts", "create", "acme")
    cli.ok("accounts", "create", "zeta")
    cli.ok("keys", "create", "acme", "--name", "ci", "--role", "inference")
    cli.ok("gateways", "create", "acme", input='{"name": "bot", "model": "@local/smollm2-135m"}')
    commands = [
        ["accounts", "list"],
        ["accounts", "show", "acme"],
        ["keys", "list", "acme"],
        ["keys", "show", "ci", "-a", "acme"],
        ["gateways", "list", "acme"],
        ["gateways", "show", "bot", "-a", "acme"],
        ["usage", "acme"],
        ["accounts", "delete", "zeta", "--yes"],
    ]
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-c", ADMIN_PROBE, *command],
            capture_output=True,
            text=True,
            env=os.environ | env,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-2:] == ["collector on: True", "loaded: "], (
            command,
            done.stdout,
        )
    assert [a["name"] for a in cli.json("accounts", "list")["data"]] == ["acme"]


def _burn(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


@pytest.mark.slow
def test_two_workers_start_and_serve_on_a_loaded_machine(env: dict[str, str]) -> None:
    """Both cores busy while `serve --workers 2` starts: no worker is taken for hung and
    restarted while it imports the app (uvicorn's 5 s health check did that in a loop)."""
    import multiprocessing

    from tests.servers import ServerProcess

    burners = [multiprocessing.Process(target=_burn, args=(60,)) for _ in range(2)]
    for burner in burners:
        burner.start()
    server = ServerProcess(env | {"ALICERCE_ROOT_KEY": "alc_cli_root"}, "--workers", "2")
    try:
        server.wait_ready(timeout=90)
        root = {"authorization": "Bearer alc_cli_root"}
        for _ in range(20):
            response = httpx.get(server.url + "/api/v1/accounts", headers=root)
            assert response.status_code == 200
    finally:
        for burner in burners:
            burner.terminate()
        server.stop()
    assert "died" not in server.output, server.output  # uvicorn: "Child process [N] died"


@pytest.mark.parametrize(
    ("config", "environ", "expected"),
    [
        ("[serverr]\nport = 9000\n", {}, "line 1: serverr: no such table"),
        ("[server]\nprot = 9000\n", {}, "[server] prot: no such setting (did you mean 'port'?)"),
        ("[[models]]\nid = 3\n", {}, "line 2: models.0.id:"),
        ("", {"ALICERCE_PORT": "eighty"}, "ALICERCE_PORT: Input should be a valid integer"),
    ],
)
def test_configuration_mistakes_stop_serve_with_a_line_each(
    env: dict[str, str], tmp_path: Path, config: str, environ: dict[str, str], expected: str
) -> None:
    path = tmp_path / "alicerce.toml"
    path.write_text(config)
    result = subprocess.run(  # a process with a timeout: a server that starts anyway fails
        [sys.executable, "-m", "alicerce", "serve", "--port", str(_free_port())],
        env=os.environ | env | {"ALICERCE_CONFIG": str(path), **environ},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # one line a problem (models: two)
