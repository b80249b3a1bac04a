"""The in-process HNSW graphs (`vectors_graph`): saved to and restored from `index_dir`, and
brought up to date from the database. The graph is the same code on every backend: SQLite's
database is enough."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from usearch.index import Index

from alicerce.embeddings import LocalE5Embedder
from alicerce.knowledge import vectors_graph as vectors
from alicerce.knowledge.store import KnowledgeStore
from alicerce.store import Database
from tests.knowledge_helpers import (
    DOCS,
    ingest,
    new_account,
    new_collection,
    search,
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'knowledge.db'}")
    database.migrate()
    yield database
    database.dispose()


def test_a_saved_graph_is_restored_and_brought_up_to_date(
    db: Database, embedder: LocalE5Embedder, tmp_path: Path
) -> None:
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
    graph = vectors.Graphs(tmp_path).current("c1", 8, 1, keys, rows)
    assert graph.index.dtype == vectors.DTYPE and len(graph) == 3
    assert graph.search(stored[2], 1)[0][0] == 2

    first = vectors.Graphs(tmp_path)
    first.current("c2", 8, 1, keys, rows)
    first.save_all()
    restored = vectors.Graphs(tmp_path).current("c2", 8, 1, keys, rows)
    assert len(restored) == 3 and restored.unsaved == 0  # nothing was missing from the file
    assert restored.index.expansion_search == vectors.EXPANSION_SEARCH
