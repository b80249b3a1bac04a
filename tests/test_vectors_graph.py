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


def test_a_change_the_graph_already_synced_is_not_applied_twice() -> None:
    """The soak's "Duplicate keys not allowed" (documents that ended `failed` after their
    chunks were committed): a search reads generation 1, a writer commits generation 2, the
    search loads the keys (2's) and labels the graph 1; the writer then applies 1 -> 2, whose
    keys the graph already holds. The change is taken as done, not added again."""
    stored = np.eye(4, 8, dtype=np.float32)
    in_database = np.arange(2, dtype=np.uint64)

    def keys() -> np.ndarray:
        return in_database

    def rows(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return wanted, stored[wanted.astype(int)]

    graphs = vectors.Graphs()
    graphs.current("c", 8, 0, keys, rows)  # generation 0: keys 0 and 1
    # A writer commits 0 -> 1 (key 2); a search reads generation 1; another writer commits
    # 1 -> 2 (key 3) before the search loads the keys: the graph holds 0-3, labelled 1.
    in_database = np.arange(4, dtype=np.uint64)
    graph = graphs.current("c", 8, 1, keys, rows)
    assert len(graph) == 4 and graph.generation == 1
    graphs.applied("c", 0, 1, added=rows(np.array([2], dtype=np.uint64)))  # stale: skipped
    graphs.applied("c", 1, 2, added=rows(np.array([3], dtype=np.uint64)))  # already held
    assert graph.generation == 2 and len(graph) == 4
    assert graph.search(stored[3], 1)[0][0] == 3
    graphs.applied("c", 2, 3, removed=np.array([0, 9], dtype=np.uint64))  # 9: never held
    assert graph.generation == 3 and sorted(graph.index.keys) == [1, 2, 3]


def test_a_graph_that_fails_a_change_resyncs_instead_of_failing_the_write() -> None:
    """The database has the change; the graph is only a cache: an error applying it leaves the
    graph to be brought up to date by the next search, and the write stands."""
    stored = np.eye(3, 8, dtype=np.float32)

    def keys() -> np.ndarray:
        return np.arange(3, dtype=np.uint64)

    def rows(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return wanted, stored[wanted.astype(int)]

    graphs = vectors.Graphs()
    graph = graphs.current("c", 8, 0, lambda: np.arange(2, dtype=np.uint64), rows)
    graphs.applied("c", 0, 1, added=(np.array([2], dtype=np.uint64), np.ones((1, 5))))  # bad shape
    assert graph.generation == -1
    assert len(graphs.current("c", 8, 1, keys, rows)) == 3
