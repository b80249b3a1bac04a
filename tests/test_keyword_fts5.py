"""SQLite's keyword index (`keyword_fts5`): the term statistics it keeps beside FTS5 stay exact
through every write, and a query of common words is searched within the postings budget
(PostgreSQL counts document frequencies through its GIN index and ranks the whole match)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from alicerce.embeddings import LOCAL_DIMENSIONS, LOCAL_EMBEDDING_MODEL, LocalE5Embedder
from alicerce.knowledge import keyword
from alicerce.knowledge.store import Collection, KnowledgeStore
from alicerce.store import Database
from alicerce.store.database import MIGRATIONS
from tests.knowledge_helpers import (
    DOCS,
    Piece,
    counted_from_chunks,
    ingest,
    new_account,
    new_collection,
    search,
    term_counts,
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'knowledge.db'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def store(db: Database, tmp_path: Path) -> KnowledgeStore:
    return KnowledgeStore(db, index_dir=tmp_path / "indexes")


def test_term_counts_stay_exact(
    store: KnowledgeStore, db: Database, embedder: LocalE5Embedder
) -> None:
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
    assert (
        store.replace_vectors(
            account,
            first.id,
            [c.id for c in chunks],
            embedder.embed_sync([c.text for c in chunks], kind="passage").vectors,
            embedding_model=LOCAL_EMBEDDING_MODEL,
            dimensions=LOCAL_DIMENSIONS,
        )
        == "done"
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
