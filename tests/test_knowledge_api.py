"""Knowledge collections through HTTP (SPEC section 3), the indexing worker, and `alicerce ingest`.

Documents are embedded by the real local model (multilingual-e5-small), so they are kept short.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alicerce.api import create_app
from alicerce.cli import main
from alicerce.services import Services
from alicerce.settings import Settings
from tests import conftest
from tests.conftest import Account, Alicerce
from tests.servers import ServerThread

MANUAL_PT = """# Manual da Cafeteira Aurora

## Limpeza

Descalcifique a cafeteira Aurora a cada três meses com uma solução de ácido cítrico.

## Garantia

A garantia da cafeteira Aurora é de dezoito meses a partir da data da compra.
"""
RELEASE_NOTES = """Release notes of the Zephyr router.

Version 4.2 adds mesh roaming between access points and fixes the 5 GHz channel selection.
"""
FAQ_HTML = """<html><head><title>FAQ</title><script>var x = 1;</script></head><body>
<h1>Orbital Bakery FAQ</h1>
<h2>Opening hours</h2><p>The Orbital Bakery opens at seven in the morning, Tuesday to Sunday.</p>
</body></html>"""


def _collection(client: httpx.Client, **spec: Any) -> dict[str, Any]:
    spec.setdefault("name", "kb-" + uuid.uuid4().hex[:8])
    response = client.post("/collections", json=spec)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _ready(
    alicerce: Alicerce, client: httpx.Client, collection_id: str, document_id: str
) -> dict[str, Any]:
    """The document once indexing has ended (ready or failed)."""
    alicerce.indexed()
    return client.get(f"/collections/{collection_id}/documents/{document_id}").json()  # type: ignore[no-any-return]


def _add(
    alicerce: Alicerce, client: httpx.Client, collection_id: str, **body: Any
) -> dict[str, Any]:
    response = client.post(f"/collections/{collection_id}/documents", json=body)
    assert response.status_code == 202, response.text
    return _ready(alicerce, client, collection_id, response.json()["id"])


def _search(client: httpx.Client, collection_id: str, **body: Any) -> list[dict[str, Any]]:
    response = client.post(f"/collections/{collection_id}/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def test_collections_crud(account: Account) -> None:
    with account.http() as client:
        created = _collection(client, name="manuals", description="Product manuals")
        assert created["object"] == "collection"
        assert created["embedding"] == {"model": "@local/multilingual-e5-small", "dimensions": 384}
        again = client.post("/collections", json={"name": "manuals"})
        assert again.status_code == 409 and again.json()["error"]["param"] == "name"
        nameless = client.post("/collections", json={"description": "x"})
        assert nameless.status_code == 400 and nameless.json()["error"]["param"] == "name"
        assert [c["id"] for c in client.get("/collections").json()["data"]] == [created["id"]]
        patched = client.patch(f"/collections/{created['id']}", json={"name": "guides"})
        assert patched.status_code == 200 and patched.json()["name"] == "guides"
        assert client.get(f"/collections/{created['id']}").json()["name"] == "guides"
        assert client.delete(f"/collections/{created['id']}").status_code == 204
        gone = client.get(f"/collections/{created['id']}")
        assert gone.status_code == 404 and gone.json()["error"]["type"] == "not_found_error"


def test_text_and_files_are_indexed_and_found(account: Account) -> None:
    with account.http() as client:
        collection = _collection(client)["id"]
        accepted = client.post(
            f"/collections/{collection}/documents",
            json={"name": "aurora.md", "content": MANUAL_PT, "metadata": {"lang": "pt"}},
        )
        assert accepted.status_code == 202
        assert accepted.json()["status"] in ("queued", "indexing", "ready")
        upload = client.post(
            f"/collections/{collection}/documents",
            files={"file": ("zephyr.txt", RELEASE_NOTES.encode(), "text/plain")},
            data={"metadata": json.dumps({"product": "zephyr"})},
        )
        assert upload.status_code == 202, upload.text
        html = client.post(
            f"/collections/{collection}/documents",
            files={"file": ("faq.html", FAQ_HTML.encode(), "text/html")},
        )
        assert html.status_code == 202, html.text
        for document in (accepted.json(), upload.json(), html.json()):
            done = _ready(account.alicerce, client, collection, document["id"])
            assert done["status"] == "ready", done
            assert done["chunks"] >= 1 and done["tokens"] > 0 and done["error"] is None

        hits = _search(client, collection, query="qual é a garantia da cafeteira?")
        assert hits[0]["document_name"] == "aurora.md"
        assert "dezoito meses" in hits[0]["text"]
        assert hits[0]["metadata"] == {"lang": "pt"}
        assert 0 <= hits[-1]["score"] <= hits[0]["score"] <= 1
        # accent-insensitive keywords: "tres" finds "três"
        keyword = _search(client, collection, query="tres meses", mode="keyword")
        assert keyword and keyword[0]["document_name"] == "aurora.md"
        vector = _search(client, collection, query="mesh roaming", mode="vector", top_k=1)
        assert [h["document_name"] for h in vector] == ["zephyr.txt"]
        hours = _search(client, collection, query="When does the bakery open?", top_k=1)
        assert hours[0]["document_name"] == "faq.html" and "var x" not in hours[0]["text"]
        listed = client.get(f"/collections/{collection}/documents").json()["data"]
        assert sorted(d["name"] for d in listed) == ["aurora.md", "faq.html", "zephyr.txt"]
        total = sum(d["chunks"] for d in listed)
        assert client.get(f"/collections/{collection}").json()["chunks"] == total


def test_the_same_content_is_not_indexed_twice(account: Account) -> None:
    with account.http() as client:
        collection = _collection(client)["id"]
        first = _add(account.alicerce, client, collection, name="notes.md", content=RELEASE_NOTES)
        again = client.post(
            f"/collections/{collection}/documents",
            json={"name": "copy.md", "content": RELEASE_NOTES},
        )
        assert again.status_code == 200
        assert again.json()["id"] == first["id"] and again.json()["status"] == "ready"
        assert len(client.get(f"/collections/{collection}/documents").json()["data"]) == 1


def test_bad_documents_fail_clearly_and_change_nothing_else(account: Account) -> None:
    with account.http() as client:
        collection = _collection(client)["id"]
        good = _add(account.alicerce, client, collection, name="aurora.md", content=MANUAL_PT)
        before = _search(client, collection, query="garantia")

        def upload(name: str, data: bytes, media_type: str) -> httpx.Response:
            return client.post(
                f"/collections/{collection}/documents", files={"file": (name, data, media_type)}
            )

        unsupported = upload("sheet.xls", b"\xd0\xcf\x11\xe0 not really", "application/x-excel")
        assert unsupported.status_code == 400
        assert unsupported.json()["error"]["code"] == "unsupported_file_type"
        assert ".pdf" in unsupported.json()["error"]["message"]
        empty = upload("empty.txt", b"", "text/plain")
        assert empty.status_code == 400 and empty.json()["error"]["param"] == "file"
        not_json = client.post(
            f"/collections/{collection}/documents",
            content=b"{nope",
            headers={"content-type": "application/json"},
        )
        assert not_json.status_code == 400
        no_content = client.post(f"/collections/{collection}/documents", json={"name": "x.md"})
        assert no_content.status_code == 400
        assert no_content.json()["error"]["param"] == "content"

        corrupt = upload("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", "application/pdf")
        assert corrupt.status_code == 202
        failed = _ready(account.alicerce, client, collection, corrupt.json()["id"])
        assert failed["status"] == "failed" and failed["chunks"] == 0
        assert "PDF" in failed["error"]
        assert _search(client, collection, query="garantia") == before
        still = client.get(f"/collections/{collection}/documents/{good['id']}").json()
        assert still["status"] == "ready" and still["chunks"] == good["chunks"]


def test_oversized_documents_are_refused(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    knowledge = account.alicerce.services.knowledge
    monkeypatch.setattr(knowledge, "max_document_bytes", 2048)
    with account.http() as client:
        collection = _collection(client)["id"]
        big = b"word " * 1000
        upload = client.post(
            f"/collections/{collection}/documents", files={"file": ("big.txt", big, "text/plain")}
        )
        assert upload.status_code == 413, upload.text
        assert upload.json()["error"]["type"] == "invalid_request_error"
        text = client.post(
            f"/collections/{collection}/documents",
            json={"name": "big.md", "content": big.decode()},
        )
        assert text.status_code == 413
        assert client.get(f"/collections/{collection}/documents").json()["data"] == []


def test_search_needs_a_query(account: Account) -> None:
    with account.http() as client:
        collection = _collection(client)["id"]
        for body in ({"query": "   "}, {"query": ""}, {}):
            response = client.post(f"/collections/{collection}/search", json=body)
            assert response.status_code == 400, response.text
            assert response.json()["error"]["param"] == "query"
        bad_mode = client.post(
            f"/collections/{collection}/search", json={"query": "x", "mode": "?"}
        )
        assert bad_mode.status_code == 400 and bad_mode.json()["error"]["param"] == "mode"


def test_another_accounts_collection_is_not_found(account: Account, other_account: Account) -> None:
    with account.http() as client:
        collection = _collection(client)["id"]
        document = _add(account.alicerce, client, collection, name="aurora.md", content=MANUAL_PT)
    with other_account.http() as client:
        paths = [
            ("GET", f"/collections/{collection}", None),
            ("PATCH", f"/collections/{collection}", {"name": "mine"}),
            ("DELETE", f"/collections/{collection}", None),
            ("GET", f"/collections/{collection}/documents", None),
            ("GET", f"/collections/{collection}/documents/{document['id']}", None),
            ("DELETE", f"/collections/{collection}/documents/{document['id']}", None),
            ("POST", f"/collections/{collection}/documents", {"name": "a.md", "content": "hi"}),
            ("POST", f"/collections/{collection}/search", {"query": "garantia"}),
        ]
        for method, path, body in paths:
            response = client.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
        assert client.get("/collections").json()["data"] == []
        gateway = client.post(
            "/gateways",
            json={
                "name": "thief",
                "model": "@mock/echo",
                "knowledge": {"collections": [collection], "strategy": "always"},
            },
        )
        assert gateway.status_code == 400
        assert gateway.json()["error"]["param"] == "knowledge.collections.0"
        theirs = other_account.create_gateway()
        patched = client.patch(
            f"/gateways/{theirs['id']}", json={"knowledge": {"collections": [collection]}}
        )
        assert patched.status_code == 400, patched.text
    own = account.create_gateway(knowledge={"collections": [collection], "strategy": "always"})
    assert own["knowledge"]["collections"] == [collection]
    with account.http() as client:  # a patch keeps collections that were attached before
        patched = client.patch(f"/gateways/{own['id']}", json={"instructions": "Be brief."})
        assert patched.status_code == 200, patched.text


def test_deleting_a_document_removes_its_chunks(account: Account) -> None:
    with account.http() as client:
        collection = _collection(client)["id"]
        aurora = _add(account.alicerce, client, collection, name="aurora.md", content=MANUAL_PT)
        _add(account.alicerce, client, collection, name="zephyr.md", content=RELEASE_NOTES)
        assert any(
            h["document_id"] == aurora["id"] for h in _search(client, collection, query="garantia")
        )
        deleted = client.delete(f"/collections/{collection}/documents/{aurora['id']}")
        assert deleted.status_code == 204
        for mode in ("hybrid", "vector", "keyword"):
            hits = _search(client, collection, query="garantia da cafeteira", mode=mode)
            assert all(h["document_id"] != aurora["id"] for h in hits)
        gone = client.get(f"/collections/{collection}/documents/{aurora['id']}")
        assert gone.status_code == 404


def test_indexing_and_searches_are_in_the_usage_ledger(account: Account) -> None:
    with account.http() as client:
        collection = _collection(client)["id"]
        document = _add(
            account.alicerce, client, collection, name="zephyr.md", content=RELEASE_NOTES
        )
        _search(client, collection, query="router")
        account.alicerce.flushed()
        usage = client.get("/usage", params={"group_by": "sku"}).json()
        skus = {row["sku"]: row for row in usage["data"]}
    assert skus["knowledge.indexing"]["quantity"] == document["tokens"]
    assert skus["knowledge.search"]["quantity"] == 1, usage["data"]


@pytest.mark.slow
def test_the_local_chat_model_loads_beside_the_knowledge_store(tmp_path: Path) -> None:
    """usearch (the vector index) once broke llama.cpp's model loading in the same process."""
    script = (
        "import asyncio\n"
        "from alicerce.services import Services\n"
        "from alicerce.settings import Settings\n"
        f"s = Services.build(Settings(database_url='sqlite:///{tmp_path}/x.db', secret_key='x'),"
        " create_database=True)\n"
        "asyncio.run(s.local.warm_up())\n"
        "print('loaded')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-2000:]


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize(
    "backend", ["postgres_url", pytest.param("pgvector_url", marks=pytest.mark.slow)]
)
def test_the_whole_flow_on_postgresql(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(backend)
    app = create_app(conftest.test_settings(tmp_path, database_url=url))
    server = ServerThread(app).start()
    alicerce = Alicerce(server.url, conftest.ROOT_KEY, server, app)
    try:
        with httpx.Client(
            base_url=server.url + "/api/v1",
            headers={"authorization": f"Bearer {conftest.ROOT_KEY}"},
            timeout=60,
        ) as root:
            created = root.post("/accounts", json={"name": "pg-" + uuid.uuid4().hex[:6]})
            key = created.json()["admin_key"]
        with httpx.Client(
            base_url=server.url + "/api/v1", headers={"authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            collection = _collection(client)["id"]
            aurora = _add(alicerce, client, collection, name="aurora.md", content=MANUAL_PT)
            upload = client.post(
                f"/collections/{collection}/documents",
                files={"file": ("zephyr.txt", RELEASE_NOTES.encode(), "text/plain")},
            )
            zephyr = _ready(alicerce, client, collection, upload.json()["id"])
            assert aurora["status"] == zephyr["status"] == "ready"
            again = client.post(
                f"/collections/{collection}/documents",
                json={"name": "again.md", "content": MANUAL_PT},
            )
            assert again.status_code == 200 and again.json()["id"] == aurora["id"]
            assert (
                _search(client, collection, query="garantia da cafeteira")[0]["document_id"]
                == (aurora["id"])
            )
            keyword = _search(client, collection, query="tres meses", mode="keyword")
            assert keyword[0]["document_id"] == aurora["id"]
            vector = _search(client, collection, query="mesh roaming", mode="vector", top_k=1)
            assert vector[0]["document_id"] == zephyr["id"]
            deleted = client.delete(f"/collections/{collection}/documents/{aurora['id']}")
            assert deleted.status_code == 204
            for mode in ("hybrid", "vector", "keyword"):
                hits = _search(client, collection, query="garantia", mode=mode)
                assert all(h["document_id"] != aurora["id"] for h in hits)
    finally:
        server.stop()


# -- another embedder ----------------------------------------------------------------------

HASH_DIMENSIONS = 64


async def _hash_embeddings(request: Request) -> JSONResponse:
    """An OpenAI-compatible embeddings server: each word hashed into one of 64 dimensions."""
    if request.headers.get("authorization") != "Bearer sk-emb":
        return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
    body = await request.json()
    data = []
    for index, text in enumerate(body["input"]):
        vector = np.zeros(HASH_DIMENSIONS)
        for word in text.lower().split():
            vector[zlib.crc32(word.strip(".,?!").encode()) % HASH_DIMENSIONS] += 1
        data.append({"index": index, "embedding": vector.tolist()})
    words = sum(len(t.split()) for t in body["input"])
    return JSONResponse({"data": data, "usage": {"prompt_tokens": words, "total_tokens": words}})


@pytest.fixture(scope="module")
def hash_embedder() -> Iterator[str]:
    server = ServerThread(
        Starlette(routes=[Route("/v1/embeddings", _hash_embeddings, methods=["POST"])])
    ).start()
    yield server.url + "/v1"
    server.stop()


def _endpoint(url: str, key: str = "sk-emb") -> dict[str, Any]:
    return {"base_url": url, "api_key": key, "model": "hash-64", "dimensions": HASH_DIMENSIONS}


class HashEmbedder:
    """The hash embeddings server on a thread of its own, for tests that change how it answers
    (they override `_embeddings`); `endpoint()` is a collection's `embedding` for it."""

    def __init__(self) -> None:
        self.server = ServerThread(
            Starlette(routes=[Route("/v1/embeddings", self._embeddings, methods=["POST"])])
        )

    async def _embeddings(self, request: Request) -> Response:
        return await _hash_embeddings(request)

    def endpoint(self) -> dict[str, Any]:
        return _endpoint(self.server.url + "/v1")


def test_a_collection_can_use_an_embeddings_endpoint(account: Account, hash_embedder: str) -> None:
    with account.http() as client:
        created = _collection(client, embedding=_endpoint(hash_embedder))
        assert created["embedding"] == {
            "model": "hash-64",
            "dimensions": HASH_DIMENSIONS,
            "base_url": hash_embedder,
            "api_key_set": True,
        }
        assert "sk-emb" not in json.dumps(client.get(f"/collections/{created['id']}").json())
        document = _add(
            account.alicerce, client, created["id"], name="zephyr.md", content=RELEASE_NOTES
        )
        assert document["status"] == "ready"
        hits = _search(client, created["id"], query="mesh roaming", mode="vector")
        assert hits[0]["document_id"] == document["id"]

        wrong_key = _collection(client, embedding=_endpoint(hash_embedder, "sk-wrong"))
        failed = _add(
            account.alicerce, client, wrong_key["id"], name="zephyr.md", content=RELEASE_NOTES
        )
        assert failed["status"] == "failed" and "hash-64" in failed["error"]
        assert "sk-wrong" not in failed["error"]
        relative = client.post("/collections", json={"name": "x", "embedding": _endpoint("/v1")})
        assert relative.status_code == 400
        assert relative.json()["error"]["param"] == "embedding.base_url"


def test_a_collection_can_be_embedded_again(account: Account, hash_embedder: str) -> None:
    with account.http() as client:
        collection = _collection(client)["id"]
        document = _add(account.alicerce, client, collection, name="aurora.md", content=MANUAL_PT)

        def moved_to(model: str) -> dict[str, Any]:
            account.alicerce.indexed()  # the re-embedding is queued after the documents
            current: dict[str, Any] = client.get(f"/collections/{collection}").json()
            assert current["embedding"]["model"] == model
            return current

        queued = client.post(
            f"/collections/{collection}/reembed", json={"embedding": _endpoint(hash_embedder)}
        )
        assert queued.status_code == 202, queued.text
        assert queued.json()["embedding"] == {"model": "hash-64", "dimensions": HASH_DIMENSIONS}
        assert moved_to("hash-64")["embedding"]["api_key_set"] is True
        hits = _search(client, collection, query="garantia da cafeteira", mode="vector")
        assert hits[0]["document_id"] == document["id"]

        back = client.post(f"/collections/{collection}/reembed")
        assert back.status_code == 202
        assert moved_to("@local/multilingual-e5-small")["embedding"]["dimensions"] == 384
        hits = _search(client, collection, query="quanto tempo dura a garantia?", mode="vector")
        assert hits[0]["document_id"] == document["id"]


# -- the command line ----------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ALICERCE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("ALICERCE_SECRET_KEY", "cli-secret")
    monkeypatch.delenv("ALICERCE_ROOT_KEY", raising=False)
    monkeypatch.delenv("ALICERCE_CONFIG", raising=False)
    conftest.create_database(f"sqlite:///{tmp_path / 'cli.db'}")
    return tmp_path


@pytest.mark.slow
def test_demo_grounds_its_gateway_in_the_samples(cli_env: Path) -> None:
    runner = CliRunner()
    for _ in range(2):  # the second run finds everything in place
        done = runner.invoke(main, ["demo", "--no-serve"])
        assert done.exit_code == 0, done.output
        assert "grounded in the sample documents" in done.output
        console = re.search(r"Console: (\S+)\n.*admin key[^:]*: (alc_\S+)", done.output)
        assert console and console[1].endswith("/console/"), done.output
        admin_key = console[2]

    async def check() -> tuple[list[str], Any, list[str]]:
        services = Services.build(Settings())
        try:
            [account] = services.keys.list_accounts()
            assert services.keys.authenticate(admin_key).role == "admin"
            gateway = services.gateways.resolve(account["id"], "demo")
            assert gateway is not None
            [collection] = await services.knowledge.list_collections(account["id"])
            documents = await services.knowledge.list_documents(account["id"], collection.id)
            hits = await services.knowledge.search(
                account["id"], [collection.id], "O que é o Alicerce?"
            )
            assert [d.status for d in documents] == ["ready"] * len(documents)
            return (
                gateway.spec.knowledge.collections,
                gateway.spec.knowledge.strategy,
                [h.document_name for h in hits.hits],
            )
        finally:
            services.db.dispose()

    collections, strategy, names = asyncio.run(check())
    assert len(collections) == 1 and strategy == "always"
    assert names


def test_a_sections_title_is_found_by_keyword_search(account: Account) -> None:
    """The subject is often named only in the heading: keywords read the heading path too,
    and the text found is the chunk's own."""
    with account.http() as client:
        collection = _collection(client)["id"]
        content = (
            "# Cobrança\n\nOs preços são por milhão de tokens.\n\n# Férias\n\nSão 30 dias.\n\n"
            "# Horário\n\nDas 9h às 18h.\n\n# Endereço\n\nRua Augusta, 100."
        )
        _add(account.alicerce, client, collection, name="manual.md", content=content)
        [hit] = _search(client, collection, query="cobranca", mode="keyword")
    assert hit["text"] == "Os preços são por milhão de tokens."
    assert hit["heading_path"] == ["Cobrança"]
