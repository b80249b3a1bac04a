"""Issue 3's acceptance: a PDF and a Markdown file uploaded, questions answered only in them,
the answers citing the right document, through the `openai` SDK, streamed and not, on SQLite
and on PostgreSQL with pgvector."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from alicerce.api import create_app
from tests import conftest
from tests.conftest import ROOT_KEY, Account, Alicerce, Upstream, write_catalog
from tests.servers import ServerThread

PDF = Path(__file__).parent / "fixtures" / "knowledge" / "handbook.pdf"
PARKING_URL = "https://intranet.example/parking"
MARKDOWN = """# Parking

## Bicycles
Bicycles are parked in the basement rack; the code of the rack's padlock is 7781.

## Cars
Visitors leave their cars at the Rua Augusta garage, level -2.
"""


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("pgvector", marks=[pytest.mark.postgres, pytest.mark.slow])],
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, upstream: Upstream
) -> Iterator[Alicerce]:
    directory = tmp_path_factory.mktemp("e2e")
    overrides: dict[str, Any] = {"config": str(write_catalog(directory, upstream))}
    if request.param == "pgvector":
        overrides["database_url"] = request.getfixturevalue("pgvector_url")
    app = create_app(conftest.test_settings(directory, **overrides))
    thread = ServerThread(app).start()
    yield Alicerce(thread.url, ROOT_KEY, thread, app)
    thread.stop()


@pytest.fixture(scope="module")
def grounded(server: Alicerce, upstream: Upstream) -> tuple[Account, dict[str, Any]]:
    """An account with the two documents indexed and a gateway grounded in them."""
    with server.http(ROOT_KEY) as client:
        made = client.post("/accounts", json={"name": "e2e-" + uuid.uuid4().hex[:6]}).json()
    account = Account(made["id"], made["admin_key"], server, upstream)
    with account.http() as client:
        collection = client.post("/collections", json={"name": "handbook"}).json()["id"]
        documents = [
            client.post(
                f"/collections/{collection}/documents",
                files={"file": ("handbook.pdf", PDF.read_bytes(), "application/pdf")},
            ),
            client.post(
                f"/collections/{collection}/documents",
                files={"file": ("parking.md", MARKDOWN.encode(), "text/markdown")},
                data={"source_url": PARKING_URL, "metadata": '{"site": "Lisboa"}'},
            ),
        ]
        server.indexed()
        for response in documents:
            assert response.status_code == 202, response.text
            _assert_ready(client, collection, response.json()["id"])
    gateway = account.create_gateway(
        model="@mock/echo",
        instructions="Answer from the reference data.",
        knowledge={"collections": [collection], "strategy": "always", "top_k": 2},
    )
    return account, gateway


def _assert_ready(client: httpx.Client, collection: str, document: str) -> None:
    status = client.get(f"/collections/{collection}/documents/{document}").json()
    assert status["status"] == "ready", status
    assert status["chunks"] > 0


QUESTIONS = [
    ("Which entrance does the new member's badge open?", "handbook.pdf", "north entrance"),
    ("Quantos dias de férias por ano tem cada colaborador?", "handbook.pdf", "30 dias"),
    ("What is the code of the bicycle rack padlock?", "parking.md", "7781"),
]
BICYCLES = "What is the code of the bicycle rack padlock?"


@pytest.mark.parametrize(("question", "document", "fact"), QUESTIONS)
@pytest.mark.parametrize("stream", [False, True])
def test_the_answer_is_grounded_in_the_right_document(
    grounded: tuple[Account, dict[str, Any]], question: str, document: str, fact: str, stream: bool
) -> None:
    account, gateway = grounded
    messages = [{"role": "user", "content": question}]
    text, context = account.answer(stream=stream, model=gateway["slug"], messages=messages)
    # The echo model answers with what it was sent: the passages it was given.
    system = json.loads(text)["messages"][0]["content"]
    assert fact in system
    assert context["knowledge"][0]["document_name"] == document
    assert "knowledge.search" in [item["sku"] for item in context["generated_usage"]]
    cited = context["knowledge"][0]
    assert fact in cited["text"] and cited["headings"]  # the passage itself, and its section


@pytest.mark.parametrize("stream", [False, True])
def test_a_citation_links_to_its_source_and_its_chunk(
    grounded: tuple[Account, dict[str, Any]], stream: bool
) -> None:
    account, gateway = grounded
    messages = [{"role": "user", "content": BICYCLES}]
    _, context = account.answer(stream=stream, model=gateway["slug"], messages=messages)
    cited = context["knowledge"][0]
    assert cited["document_name"] == "parking.md" and "7781" in cited["text"]
    assert cited["headings"] == ["Parking", "Bicycles"]
    assert cited["source_url"] == PARKING_URL and cited["metadata"] == {"site": "Lisboa"}
    path = (
        f"/collections/{cited['collection_id']}/documents/{cited['document_id']}"
        f"/chunks/{cited['chunk_id']}"
    )
    with account.http() as client:
        response = client.get(path)
    assert response.status_code == 200, response.text
    chunk = response.json()
    assert chunk["object"] == "chunk" and chunk["id"] == cited["chunk_id"]
    assert chunk["text"] == cited["text"] and chunk["headings"] == cited["headings"]
    assert chunk["position"] == cited["position"] and chunk["tokens"] > 0
    assert chunk["document"]["id"] == cited["document_id"]
    assert chunk["document"]["source_url"] == PARKING_URL
