"""`alicerce collections` and `alicerce ingest`: collections and their documents from a shell,
and files indexed in the command's own process, each file reported and a bar on a terminal.

Documents are embedded by the real local model, so they are few and short."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alicerce.services import Services
from alicerce.settings import Settings
from tests.cli_helpers import Cli, cli_environment

MANUAL = """# Manual da Cafeteira Aurora

## Garantia

A garantia da cafeteira Aurora é de dezoito meses a partir da data da compra.
"""
NOTES = "Release notes of the Zephyr router: version 4.2 adds mesh roaming.\n"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return cli_environment(tmp_path, monkeypatch)


@pytest.fixture
def cli(env: dict[str, str]) -> Cli:
    return Cli()


def test_collections_by_id_or_name_from_creation_to_deletion(cli: Cli, tmp_path: Path) -> None:
    cli.json("accounts", "create", "acme")
    created = cli.json("collections", "create", "manuals", "--description", "How-tos")
    assert (created["object"], created["name"], created["description"]) == (
        "collection", "manuals", "How-tos"
    )  # fmt: skip
    assert created["embedding"] == {"model": "@local/multilingual-e5-small", "dimensions": 384}
    definition = tmp_path / "faq.json"
    definition.write_text('{"fusion": {"method": "rrf", "rrf_k": 30}}')
    faq = cli.json("collections", "create", "faq", "--definition", str(definition))
    assert faq["fusion"] == {"method": "rrf", "vector_weight": 0.5, "rrf_k": 30}
    assert "already exists" in cli.fails("collections", "create", "faq")

    listed = cli.json("collections", "list")
    assert listed["object"] == "list"
    assert [c["name"] for c in listed["data"]] == ["manuals", "faq"]
    assert cli.json("collections", "show", created["id"]) == cli.json(
        "collections", "show", "manuals"
    )
    assert "documents:   0" in cli.ok("collections", "show", "manuals")
    renamed = cli.json("collections", "update", "manuals", "--name", "guides")
    assert (renamed["id"], renamed["name"]) == (created["id"], "guides")
    assert "say what to change" in cli.fails("collections", "update", "guides")
    assert cli.json("collections", "documents", "list", "guides")["data"] == []

    assert "Deleted collection 'guides'" in cli.ok("collections", "delete", "guides", "-y")
    assert [c["name"] for c in cli.json("collections", "list")["data"]] == ["faq"]
    assert "No collection 'guides' in account 'acme'." in cli.fails("collections", "show", "guides")


def test_an_account_deleted_from_a_shell_goes_with_its_collections(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    """`accounts delete` opens no knowledge store until the account has collections; then it
    deletes them as the server does, keyword rows included (the database's cascade leaves
    those behind)."""
    import sqlalchemy as sa

    cli.json("accounts", "create", "acme")
    (tmp_path / "aurora.md").write_text(MANUAL)
    indexed = cli.run("ingest", str(tmp_path / "aurora.md"), "-c", "manuals")
    assert indexed.exit_code == 0, indexed.output
    assert "collections: 1" in cli.ok("accounts", "show", "acme")
    assert "Deleted account 'acme'" in cli.ok("accounts", "delete", "acme", "--yes")
    engine = sa.create_engine(env["ALICERCE_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            left = [
                connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("collections", "chunks", "chunks_fts")
            ]
    finally:
        engine.dispose()
    assert left == [0, 0, 0]


def test_a_collection_a_gateway_uses_is_deleted_only_with_force(cli: Cli) -> None:
    cli.json("accounts", "create", "acme")
    collection = cli.json("collections", "create", "manuals")
    definition = json.dumps(
        {
            "name": "bot",
            "model": "@local/smollm2-135m",
            "knowledge": {"collections": [collection["id"]], "strategy": "always"},
        }
    )
    gateway = cli.json("gateways", "create", input=definition)
    refused = cli.fails("collections", "delete", "manuals", "-y")
    assert f"is used by gateway(s) {gateway['slug']}" in refused and "--force" in refused
    assert cli.json("collections", "show", "manuals")["id"] == collection["id"]

    deleted = cli.ok("collections", "delete", "manuals", "--force", "-y")
    assert "Deleted collection 'manuals'" in deleted
    assert f"Taken out of gateway(s): {gateway['slug']}." in deleted
    knowledge = cli.json("gateways", "show", "bot")["knowledge"]
    assert (knowledge["collections"], knowledge["strategy"]) == ([], "none")


def test_ingest_says_what_became_of_each_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALICERCE_MAX_DOCUMENT_BYTES", "4096")
    account = cli.json("accounts", "create", "acme")
    docs = tmp_path / "docs"
    (docs / "nested").mkdir(parents=True)
    (docs / ".hidden").mkdir()
    (docs / "aurora.md").write_text(MANUAL)
    (docs / "nested" / "zephyr.txt").write_text(NOTES)
    (docs / "nested" / "copy.md").write_text(MANUAL)  # the same content under another name
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7 truncated")
    (docs / "ignored.xls").write_bytes(b"not read")
    (docs / "big.md").write_text("word " * 1000)
    (docs / "empty.txt").write_text("")
    (docs / "LICENSE").write_text("no type suffix: left out")
    (docs / ".hidden" / "secret.md").write_text("hidden: left out")

    first = cli.run("ingest", str(docs), "--collection", "manuals")
    assert first.exit_code == 1, first.output  # one file failed
    lines = first.stderr.splitlines()
    assert lines[0] == "Indexing into 'manuals'"
    assert lines[1:] == [
        f"[1/7] indexed {docs / 'aurora.md'}: 1 chunk",
        f"[2/7] skipped {docs / 'big.md'}: too big: 4.9 KB, over 4.0 KB "
        "(ALICERCE_MAX_DOCUMENT_BYTES)",
        f"[3/7] failed {docs / 'broken.pdf'}: the PDF is corrupt: Stream has ended unexpectedly",
        f"[4/7] skipped {docs / 'empty.txt'}: empty",
        f"[5/7] skipped {docs / 'ignored.xls'}: unsupported type '.xls'",
        f"[6/7] unchanged {docs / 'nested' / 'copy.md'}: the collection holds this content "
        "already (as 'aurora.md')",
        f"[7/7] indexed {docs / 'nested' / 'zephyr.txt'}: 1 chunk",
    ], first.stderr
    summary = first.stdout
    assert summary.startswith("Collection 'manuals' (")
    assert "2 indexed (2 chunks, " in summary
    assert "1 unchanged, 3 skipped, 1 failed, in " in summary

    documents = cli.json("collections", "documents", "list", "manuals", "-a", "acme")["data"]
    assert {d["name"]: d["status"] for d in documents} == {
        "aurora.md": "ready", "broken.pdf": "failed", "zephyr.txt": "ready"
    }  # fmt: skip
    aurora = cli.json("collections", "documents", "show", "manuals", "aurora.md")
    assert (aurora["object"], aurora["chunks"]) == ("document", 1)
    assert "Deleted document 'broken.pdf'" in cli.ok(
        "collections", "documents", "delete", "manuals", "broken.pdf", "--yes"
    )
    assert "No document 'broken.pdf' in collection 'manuals'." in cli.fails(
        "collections", "documents", "show", "manuals", "broken.pdf"
    )

    collection = cli.json("collections", "show", "manuals")["id"]
    again = cli.run("ingest", str(docs / "aurora.md"), "-c", collection, "--account", "acme")
    assert again.exit_code == 0, again.output  # by id this time: the same collection
    assert "0 indexed (0 chunks, 0 tokens), 1 unchanged, 0 skipped, 0 failed" in again.stdout
    assert "[1/1] unchanged" in again.stderr

    async def search() -> list[str]:
        services = Services.build(Settings())  # the environment of `cli_environment`
        try:
            result = await services.knowledge.search(account["id"], [collection], "garantia")
            return [h.document_name for h in result.hits]
        finally:
            services.db.dispose()

    assert asyncio.run(search())[0] == "aurora.md"


def _on_a_terminal(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    """What a command writes to a terminal (a pseudo-terminal: its real bar, not a log)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        args, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([leader], [], [], 1)[0]:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the command ended and closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
    finally:
        os.close(leader)
        process.wait(timeout=30)
    assert process.returncode == 0, output
    return output.decode()


def test_ingest_draws_a_bar_on_a_terminal(env: dict[str, str], tmp_path: Path) -> None:
    Cli().json("accounts", "create", "acme")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "aurora.md").write_text(MANUAL)
    (docs / "zephyr.txt").write_text(NOTES)
    (docs / "photo.png").write_bytes(b"not read")
    output = _on_a_terminal(
        [sys.executable, "-m", "alicerce", "ingest", str(docs), "-c", "kb"],
        os.environ | env | {"COLUMNS": "120", "LINES": "40"},
    )
    frames = [f for f in output.replace("\x1b[?25l", "").split("\r") if "Indexing" in f]
    assert frames, output
    assert "[#" in frames[-1] and "100%" in frames[-1]
    assert "3/3 files  2 chunks" in frames[-1] and "chunks/s" in frames[-1]
    assert any("0/3 files  0 chunks" in f and "0%" in f for f in frames)  # drawn at once
    # a line for the file skipped, written over the bar; none for the files indexed
    assert f"\x1b[2K[2/3] skipped {docs / 'photo.png'}: unsupported type '.png'" in output
    assert "] indexed" not in output
    assert "2 indexed (2 chunks," in output
