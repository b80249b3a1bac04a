"""Knowledge without dangling state: a collection gateways use is not deleted from under them,
a failed document is indexed again, and queued work survives a killed server."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from alembic import command
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from alicerce.clock import utcnow
from alicerce.embeddings import LocalE5Embedder
from alicerce.knowledge.chunk_rows import EmbedderChanged
from alicerce.knowledge.store import KnowledgeStore, StoredChunk
from alicerce.store import Database
from alicerce.store.tables import AccountRow, GatewayRow
from tests import conftest
from tests.conftest import Account, Alicerce
from tests.knowledge_helpers import (
    DOCS,
    Piece,
    chunks_of,
    counted_from_chunks,
    ingest,
    new_account,
    new_collection,
    search,
    term_counts,
)
from tests.servers import ServerProcess
from tests.test_knowledge_api import HASH_DIMENSIONS, MANUAL_PT, RELEASE_NOTES, HashEmbedder

PRICING = "Pricing of the Acme Turbo plan: the Turbo plan costs 42 euros per month."


def _collection(client: httpx.Client, **spec: Any) -> dict[str, Any]:
    spec.setdefault("name", "kb-" + uuid.uuid4().hex[:8])
    response = client.post("/collections", json=spec)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _document(alicerce: Alicerce, client: httpx.Client, collection: str, doc: str) -> Any:
    """The document once the indexer's queue is empty."""
    alicerce.indexed()
    return client.get(f"/collections/{collection}/documents/{doc}").json()


def _knowledge_gateway(account: Account, *collections: str) -> dict[str, Any]:
    knowledge = {"collections": list(collections), "strategy": "always", "top_k": 1}
    return account.create_gateway(model="@mock/echo", knowledge=knowledge)


def _searches_billed(account: Account, gateway: dict[str, Any]) -> int:
    answer = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "What does Turbo cost?"}]
    )
    usage = answer.model_extra["generation_context"]["generated_usage"]  # type: ignore[index]
    return [item["sku"] for item in usage].count("knowledge.search")


# -- deleting a collection that gateways use -------------------------------------------------


def test_a_collection_gateways_use_is_refused_then_detached_with_force(account: Account) -> None:
    with account.http() as client:
        kb = _collection(client, name="pricing")["id"]
        other = _collection(client)["id"]
        added = client.post(
            f"/collections/{kb}/documents", json={"name": "p.md", "content": PRICING}
        )
        assert _document(account.alicerce, client, kb, added.json()["id"])["status"] == "ready"
        only = _knowledge_gateway(account, kb)
        both = _knowledge_gateway(account, kb, other)
        unrelated = account.create_gateway(model="@mock/echo")
        assert _searches_billed(account, only) == 1  # its gateway is cached now

        refused = client.delete(f"/collections/{kb}")
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert (error["code"], error["type"]) == ("collection_in_use", "invalid_request_error")
        assert error["gateways"] == [
            {"id": g["id"], "name": g["name"], "slug": g["slug"]} for g in (only, both)
        ]
        assert only["slug"] in error["message"] and "force=true" in error["message"]
        assert unrelated["slug"] not in error["message"]
        assert client.get(f"/collections/{kb}").status_code == 200  # nothing was deleted

        bad = client.delete(f"/collections/{kb}", params={"force": "maybe"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "force"

        assert client.delete(f"/collections/{kb}", params={"force": "true"}).status_code == 204
        assert client.get(f"/collections/{kb}").status_code == 404
        alone = client.get(f"/gateways/{only['id']}").json()["knowledge"]
        assert (alone["collections"], alone["strategy"]) == ([], "none")
        kept = client.get(f"/gateways/{both['id']}").json()["knowledge"]
        assert (kept["collections"], kept["strategy"]) == ([other], "always")
        assert _searches_billed(account, only) == 0  # the cached gateway was forgotten
        assert client.delete(f"/collections/{other}").status_code == 409  # `both` still uses it


def test_an_unused_collection_is_deleted_at_once(account: Account) -> None:
    with account.http() as client:
        kb = _collection(client)["id"]
        assert client.delete(f"/collections/{kb}").status_code == 204
        assert client.delete(f"/collections/{kb}", params={"force": "true"}).status_code == 404


def test_a_gateway_cannot_name_a_collection_that_is_not_there(
    account: Account, other_account: Account
) -> None:
    with other_account.http() as client:
        theirs = _collection(client)["id"]
    with account.http() as client:
        kb = _collection(client)["id"]
        for missing in (str(uuid.uuid4()), theirs):
            knowledge = {"collections": [kb, missing], "strategy": "always"}
            made = client.post(
                "/gateways", json={"name": "g", "model": "@mock/echo", "knowledge": knowledge}
            )
            assert made.status_code == 400
            assert made.json()["error"]["param"] == "knowledge.collections.1"
        gateway = _knowledge_gateway(account, kb)
        patched = client.patch(
            f"/gateways/{gateway['id']}", json={"knowledge": {"collections": [kb, theirs]}}
        )
        assert patched.status_code == 400
        assert patched.json()["error"]["param"] == "knowledge.collections.1"


def test_a_gateway_whose_collection_vanished_is_not_billed_for_searching_it(
    account: Account,
) -> None:
    """A collection gone by another path than the API's delete (a delete racing a gateway's
    save): the answer goes on without documents, and no search is billed."""
    with account.http() as client:
        kb = _collection(client)["id"]
        added = client.post(
            f"/collections/{kb}/documents", json={"name": "p.md", "content": PRICING}
        )
        _document(account.alicerce, client, kb, added.json()["id"])
    gateway = _knowledge_gateway(account, kb)
    assert _searches_billed(account, gateway) == 1
    assert account.alicerce.services.knowledge.store.delete_collection(account.id, kb)
    assert _searches_billed(account, gateway) == 0


def test_an_account_deleted_with_its_collections_leaves_no_keyword_rows(
    alicerce: Alicerce, account: Account, other_account: Account
) -> None:
    """The database's cascade removed an account's chunks but not their keyword (FTS5) rows:
    the next collection, given the deleted one's number, then failed to index."""
    with account.http() as client:
        kb = _collection(client)["id"]  # the newest collection: the highest number
        added = client.post(
            f"/collections/{kb}/documents", json={"name": "p.md", "content": PRICING}
        )
        assert _document(alicerce, client, kb, added.json()["id"])["status"] == "ready"
        _knowledge_gateway(account, kb)
    with alicerce.http(alicerce.root_key) as root:
        assert root.delete(f"/accounts/{account.id}").status_code == 204
    with alicerce.services.db.session() as session:
        orphans = session.execute(
            sa.text("SELECT count(*) FROM chunks_fts WHERE rowid NOT IN (SELECT key FROM chunks)")
        ).scalar_one()
    assert orphans == 0
    with other_account.http() as client:
        fresh = _collection(client)["id"]
        added = client.post(
            f"/collections/{fresh}/documents", json={"name": "p.md", "content": PRICING}
        )
        assert _document(alicerce, client, fresh, added.json()["id"])["status"] == "ready"


# -- documents that failed -------------------------------------------------------------------


class SwitchableEmbedder(HashEmbedder):
    """The hash embeddings server of `test_knowledge_api`, which can be turned off (503)."""

    def __init__(self) -> None:
        self.down = False
        super().__init__()

    async def _embeddings(self, request: Request) -> Response:
        if self.down:
            return JSONResponse({"error": {"message": "down for maintenance"}}, status_code=503)
        return await super()._embeddings(request)


@pytest.fixture
def switchable() -> Iterator[SwitchableEmbedder]:
    embedder = SwitchableEmbedder()
    embedder.server.start()
    yield embedder
    embedder.server.stop()


def test_a_failed_document_sent_again_is_indexed_again(account: Account) -> None:
    """Sent as a PDF it is not: failed. The same bytes named for what they are: queued again,
    202 like a new upload, the error cleared, then ready; once ready, the same bytes are 200."""
    with account.http() as client:
        kb = _collection(client)["id"]
        upload = client.post(
            f"/collections/{kb}/documents",
            files={"file": ("notes.pdf", RELEASE_NOTES.encode(), "application/pdf")},
        )
        failed = _document(account.alicerce, client, kb, upload.json()["id"])
        assert failed["status"] == "failed" and failed["error"]

        again = client.post(
            f"/collections/{kb}/documents",
            files={"file": ("notes.md", RELEASE_NOTES.encode(), "text/markdown")},
            data={"source_url": "https://acme.example/notes"},
        )
        assert again.status_code == 202, again.text
        body = again.json()
        assert body["id"] == failed["id"] and body["status"] == "queued"
        assert body["error"] is None and body["name"] == "notes.md"
        assert body["source_url"] == "https://acme.example/notes"
        ready = _document(account.alicerce, client, kb, body["id"])
        assert ready["status"] == "ready" and ready["chunks"] > 0

        twice = client.post(
            f"/collections/{kb}/documents", json={"name": "copy.md", "content": RELEASE_NOTES}
        )
        assert twice.status_code == 200 and twice.json()["id"] == ready["id"]
        assert twice.json()["name"] == "notes.md"  # the ready record, unchanged
        assert len(client.get(f"/collections/{kb}/documents").json()["data"]) == 1


def test_a_failed_document_can_be_retried(account: Account, switchable: SwitchableEmbedder) -> None:
    with account.http() as client:
        kb = _collection(client, embedding=switchable.endpoint())["id"]
        switchable.down = True
        added = client.post(
            f"/collections/{kb}/documents", json={"name": "z.md", "content": RELEASE_NOTES}
        )
        failed = _document(account.alicerce, client, kb, added.json()["id"])
        assert failed["status"] == "failed" and "hash-64" in failed["error"]

        switchable.down = False
        retried = client.post(f"/collections/{kb}/documents/{failed['id']}/retry")
        assert retried.status_code == 202, retried.text
        assert (retried.json()["status"], retried.json()["error"]) == ("queued", None)
        ready = _document(account.alicerce, client, kb, failed["id"])
        assert ready["status"] == "ready" and ready["chunks"] > 0
        hits = client.post(f"/collections/{kb}/search", json={"query": "mesh roaming"}).json()
        assert hits["data"][0]["document_id"] == ready["id"]

        again = client.post(f"/collections/{kb}/documents/{failed['id']}/retry")
        assert again.status_code == 409 and again.json()["error"]["code"] == "document_not_failed"
        unknown = client.post(f"/collections/{kb}/documents/{uuid.uuid4()}/retry")
        assert unknown.status_code == 404


def test_a_failed_reembedding_is_shown_and_can_be_retried(
    account: Account, switchable: SwitchableEmbedder
) -> None:
    with account.http() as client:
        kb = _collection(client)["id"]
        added = client.post(
            f"/collections/{kb}/documents", json={"name": "a.md", "content": MANUAL_PT}
        )
        document = _document(account.alicerce, client, kb, added.json()["id"])
        nothing = client.post(f"/collections/{kb}/reembed/retry")
        assert nothing.status_code == 409
        assert nothing.json()["error"]["code"] == "reembed_not_failed"

        switchable.down = True
        queued = client.post(
            f"/collections/{kb}/reembed", json={"embedding": switchable.endpoint()}
        )
        assert queued.status_code == 202 and queued.json()["status"] == "queued"
        account.alicerce.indexed()
        shown = client.get(f"/collections/{kb}").json()
        assert shown["embedding"]["model"] == "@local/multilingual-e5-small"  # unchanged
        assert shown["reembed"]["status"] == "failed"
        assert shown["reembed"]["embedding"] == {"model": "hash-64", "dimensions": HASH_DIMENSIONS}
        assert "hash-64" in shown["reembed"]["error"] and "sk-emb" not in str(shown)
        hits = client.post(
            f"/collections/{kb}/search", json={"query": "garantia", "mode": "vector"}
        )
        assert hits.json()["data"][0]["document_id"] == document["id"]  # the old vectors serve

        switchable.down = False
        retried = client.post(f"/collections/{kb}/reembed/retry")
        assert retried.status_code == 202 and retried.json()["embedding"]["model"] == "hash-64"
        account.alicerce.indexed()
        done = client.get(f"/collections/{kb}").json()
        assert done["embedding"]["model"] == "hash-64" and done["reembed"] is None
        hits = client.post(
            f"/collections/{kb}/search", json={"query": "garantia da cafeteira", "mode": "vector"}
        )
        assert hits.json()["data"][0]["document_id"] == document["id"]


# -- a server killed with work queued ---------------------------------------------------------


def _wait_until(check: Any, timeout: float = 120) -> Any:
    """Polls a server in another process (it has no event to wait on) until `check()` is
    truthy, which it returns."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.slow
def test_documents_and_a_reembedding_survive_a_killed_server(
    tmp_path: Path, switchable: SwitchableEmbedder
) -> None:
    database = f"sqlite:///{tmp_path / 'alicerce.db'}"
    conftest.create_database(database)
    env = {
        "ALICERCE_DATABASE_URL": database,
        "ALICERCE_ROOT_KEY": conftest.ROOT_KEY,
        "ALICERCE_SECRET_KEY": "kill-test",
        "ALICERCE_ALLOW_PRIVATE_UPSTREAMS": "true",
        "ALICERCE_UPSTREAM_READ_TIMEOUT_S": "30",
    }
    texts = {
        f"part-{n}.md": f"# Part {n}\n\n{RELEASE_NOTES}\n\nPart {n} covers channel {n}. {MANUAL_PT}"
        for n in range(6)
    }
    server = ServerProcess(env).wait_ready(timeout=60)
    try:
        root = {"authorization": f"Bearer {conftest.ROOT_KEY}"}
        made = httpx.post(server.url + "/api/v1/accounts", json={"name": "k"}, headers=root)
        admin = {"authorization": f"Bearer {made.json()['admin_key']}"}
        with httpx.Client(base_url=server.url + "/api/v1", headers=admin, timeout=60) as client:
            kb = _collection(client)["id"]
            ids = [
                client.post(f"/collections/{kb}/documents", json={"name": n, "content": t}).json()[
                    "id"
                ]
                for n, t in texts.items()
            ]
            queued = client.post(
                f"/collections/{kb}/reembed", json={"embedding": switchable.endpoint()}
            )
            assert queued.status_code == 202

            def indexing() -> bool:
                listed = client.get(f"/collections/{kb}/documents").json()["data"]
                return any(d["status"] == "indexing" for d in listed)

            _wait_until(indexing)  # one is mid-index (the model loads in it): kill now
            server.process.send_signal(signal.SIGKILL)
            server.process.communicate(timeout=30)
    finally:
        server.stop()
    engine = sa.create_engine(database)
    with engine.connect() as connection:
        left = connection.execute(
            sa.text("SELECT status, count(*) FROM documents GROUP BY status")
        ).all()
        reembed = connection.execute(sa.text("SELECT reembed_status FROM collections")).scalar_one()
    engine.dispose()
    assert "indexing" in dict(left), left  # what the kill interrupted
    assert reembed == "queued"

    restarted = ServerProcess(env).wait_ready(timeout=60)
    try:
        with httpx.Client(base_url=restarted.url + "/api/v1", headers=admin, timeout=60) as client:

            def done() -> dict[str, Any] | None:
                shown: dict[str, Any] = client.get(f"/collections/{kb}").json()
                return shown if shown["reembed"] is None else None

            collection = _wait_until(done)
            assert collection["embedding"]["model"] == "hash-64"
            listed = client.get(f"/collections/{kb}/documents").json()["data"]
            assert sorted(d["id"] for d in listed) == sorted(ids)
            assert {d["status"] for d in listed} == {"ready"}
            assert collection["chunks"] == sum(d["chunks"] for d in listed)
            hits = client.post(
                f"/collections/{kb}/search", json={"query": "channel 4", "mode": "keyword"}
            ).json()["data"]
            assert hits[0]["document_name"] == "part-4.md"
    finally:
        restarted.stop()
    engine = sa.create_engine(database)
    with engine.connect() as connection:
        sizes = connection.execute(sa.text("SELECT DISTINCT length(vector) FROM chunks")).all()
    engine.dispose()
    assert sizes == [(4 * HASH_DIMENSIONS,)]  # every vector the new embedder's, none of the old


# -- what earlier versions left behind, repaired by migration 0007 ---------------------------


def test_the_migration_repairs_dangling_references(db: Database, embedder: LocalE5Embedder) -> None:
    """Gateways naming collections deleted under them, and (SQLite) the keyword rows of an
    account deleted by the cascade alone, as earlier versions left them."""
    store = KnowledgeStore(db)
    kept = new_collection(store, new_account(db))
    ingest(store, embedder, kept, "senha.md", DOCS["senha.md"])
    doomed = new_collection(store, new_account(db))
    ingest(store, embedder, doomed, "paris.md", DOCS["paris.md"])
    now = utcnow()
    missing = str(uuid.uuid4())
    specs = {"both": [kept.id, missing], "gone": [missing]}
    with db.session() as session:
        for name, collections in specs.items():
            knowledge = {"collections": collections, "strategy": "always", "top_k": 5}
            session.add(
                GatewayRow(
                    id=str(uuid.uuid4()),
                    account_id=kept.account_id,
                    name=name,
                    spec={"name": name, "model": "@mock/echo", "knowledge": knowledge},
                    created_at=now,
                    updated_at=now,
                )
            )
    with db.session() as session:  # the account as the cascade alone deleted it
        session.execute(sa.delete(AccountRow).where(AccountRow.id == doomed.account_id))
    config = db.alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0006")
    db.migrate()

    with db.session() as session:
        found = {row.name: row.spec["knowledge"] for row in session.scalars(sa.select(GatewayRow))}
    assert found["both"]["collections"] == [kept.id]
    assert found["both"]["strategy"] == "always"
    assert (found["gone"]["collections"], found["gone"]["strategy"]) == ([], "none")
    if db.engine.dialect.name == "sqlite":
        with db.session() as session:
            keys = session.execute(sa.text("SELECT count(*) FROM chunks_fts")).scalar_one()
        assert keys == chunks_of(db, kept.id)
        assert term_counts(db) == counted_from_chunks(db)
    hits = search(KnowledgeStore(db), embedder, kept.account_id, [kept.id], "esqueci a senha")
    assert hits and hits[0].document_name == "senha.md"  # what was kept is still searchable


def test_the_store_swaps_vectors_only_for_the_chunks_and_the_token_it_was_given(
    db: Database, embedder: LocalE5Embedder
) -> None:
    """The checks of `reembeds` on each backend: a swap after a document was written is
    stale, a superseded token's is refused, vectors made before a swap are not written."""
    store = KnowledgeStore(db)
    collection = new_collection(store, new_account(db))
    account = collection.account_id
    ingest(store, embedder, collection, "senha.md", DOCS["senha.md"])
    state = store.request_reembed(account, collection.id, None)
    claimed = store.claim_reembed(collection.id, state.id)
    assert claimed is not None and store.claim_reembed(collection.id, state.id) is None
    before, token = claimed
    assert before.reembed is not None and before.reembed.status == "running"

    def chunks() -> tuple[int, list[StoredChunk]]:
        found = store.chunks_to_embed(account, collection.id)
        assert found is not None
        return found

    def swap(read: tuple[int, list[StoredChunk]], with_token: str) -> str:
        generation, stored = read
        return store.replace_vectors(
            account,
            collection.id,
            [c.id for c in stored],
            embedder.embed_sync([c.text for c in stored], kind="passage").vectors,
            embedding_model=before.embedding_model,
            dimensions=before.dimensions,
            token=with_token,
            generation=generation,
        )

    read = chunks()
    ingest(store, embedder, collection, "paris.md", DOCS["paris.md"])  # meanwhile
    assert swap(read, token) == "stale"
    read = chunks()
    assert swap(read, "another") == "superseded"
    assert swap(read, token) == "done"
    after = store.get_collection(account, collection.id)
    assert after is not None and after.reembed is None
    assert after.embedding_version == before.embedding_version + 1

    document, _ = store.add_document(
        account, collection.id, name="late.md", data=b"Late.", media_type=None,
        source_url=None, metadata=None,
    )  # fmt: skip
    assert store.claim(document)
    late = Piece("Late.", 0)
    vectors = embedder.embed_sync(["Late."], kind="passage").vectors
    with pytest.raises(EmbedderChanged):
        store.write_chunks(
            document.id, [late], vectors, 1, embedding_version=before.embedding_version
        )
    assert chunks_of(db, collection.id) == len(read[1])  # nothing of it was written
    store.write_chunks(document.id, [late], vectors, 1, embedding_version=after.embedding_version)
    assert chunks_of(db, collection.id) == len(read[1]) + 1

    store.request_reembed(account, collection.id, {"model": "m", "dimensions": 8})
    [(_, resumed, queued_token)] = [r for r in store.unfinished_reembeds() if r[1] == collection.id]
    store.fail_reembed(collection.id, queued_token, "down")
    failed = store.get_collection(account, collection.id)
    assert failed is not None and failed.reembed is not None
    assert (failed.reembed.status, failed.reembed.error) == ("failed", "down")
    assert failed.reembed.embedding == {"model": "m", "dimensions": 8}
    retried = store.retry_reembed(account, collection.id)
    assert (retried.status, retried.error, retried.embedding) == (
        "queued",
        None,
        {"model": "m", "dimensions": 8},
    )
    assert resumed == collection.id
