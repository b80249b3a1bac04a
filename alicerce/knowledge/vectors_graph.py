"""Vectors searched in an in-process HNSW graph per collection (`indexes.VectorIndex` on SQLite,
and on a PostgreSQL without pgvector), kept in step with the database.

The database (the `chunks.vector` column) is the truth; this is a cache that answers nearest-
neighbour questions in a fraction of a millisecond (usearch HNSW, vectors kept as float16:
cosines within ~1e-3 of float32, half the memory). Brute force over 100,000 float32 vectors of
384 dimensions takes 8-35 ms on this machine (by its load); the graph answers in ~1 ms.

Consistency: every transaction that changes a collection's chunks bumps `collections.generation`.
A search passes the generation it read; an index that carries another one is brought up to date
by comparing its keys with the database's (cheap: integers only) and adding or removing the
difference, so several worker processes each keep a correct index without talking to each other.
A process that wrote the change applies it directly. With an `index_dir`, graphs are saved there
and restored at start (then synced the same way), so a restart does not rebuild them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

# usearch's wheel carries its own static libstdc++; imported before llama.cpp has loaded a
# model, it makes llama.cpp fail on every model with `std::bad_cast` while reading the
# vocabulary (the local chat model would never load in a server that has knowledge). The
# system's shared libstdc++ made global first gives both one runtime; measured, not guessed.
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        ctypes.CDLL("libstdc++.so.6", mode=os.RTLD_GLOBAL)

from usearch.compiled import ScalarKind
from usearch.index import Index

from alicerce.knowledge.indexes import Column, Searched
from alicerce.store import Database
from alicerce.store.tables import ChunkRow

log = logging.getLogger(__name__)

SAVE_AFTER_CHANGES = 2_000  # a graph that changed this much since its last save is saved again
# The graph's settings. Measured over 100,000 vectors (400 probes near the data, recall@10
# against exact search; one query after another): expansion 64 searches in 0.75 ms p50 with
# recall 0.94, 96 in 1.09 ms with 0.98. float32 was no faster (twice the memory to walk), int8
# faster but its coarse distances reorder the top 10 (recall 0.80).
DTYPE = ScalarKind.F16
CONNECTIVITY = 16
EXPANSION_SEARCH = 96

KeysLoader = Callable[[], np.ndarray]
VectorsLoader = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class Graph:
    """One collection's graph. Keys are chunks' 63-bit `key`s; scores are cosines."""

    def __init__(self, ndim: int, *, index: Index | None = None) -> None:
        self.ndim = ndim
        self.index = index or Index(
            ndim=ndim,
            metric="ip",
            dtype=DTYPE,
            connectivity=CONNECTIVITY,
            expansion_search=EXPANSION_SEARCH,
        )
        self.generation = -1
        self.unsaved = 0
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.index)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Adds the keys the graph does not hold yet (usearch refuses a key twice)."""
        if not len(keys):
            return
        keys = keys.astype(np.uint64)
        fresh = ~np.asarray(self.index.contains(keys), dtype=bool)
        if not fresh.all():
            keys, vectors = keys[fresh], np.asarray(vectors)[fresh]
        if len(keys):
            self.index.add(keys, np.asarray(vectors, dtype=np.float32))
            self.unsaved += len(keys)

    def remove(self, keys: np.ndarray) -> None:
        if len(keys):
            self.index.remove(keys.astype(np.uint64))
            self.unsaved += len(keys)

    def search(self, vector: np.ndarray, count: int) -> list[tuple[int, float]]:
        """The `count` nearest (key, cosine), best first."""
        if len(self.index) == 0 or count <= 0:
            return []
        matches = self.index.search(np.asarray(vector, dtype=np.float32), count)
        return [
            (int(key), 1.0 - float(distance))
            for key, distance in zip(matches.keys, matches.distances, strict=True)
        ]

    def cosines(self, vector: np.ndarray, keys: list[int]) -> dict[int, float]:
        """The cosine of `vector` with each of `keys` that the graph holds."""
        if not keys:
            return {}
        found: Any = self.index.get(np.asarray(keys, dtype=np.uint64))
        query = np.asarray(vector, dtype=np.float32)
        return {
            key: float(np.dot(stored.astype(np.float32), query))
            for key, stored in zip(keys, found, strict=True)
            if stored is not None
        }


class Graphs:
    """The graphs of one process, one per collection, loaded on first use."""

    def __init__(self, index_dir: Path | None = None) -> None:
        self._dir = index_dir
        self._indexes: dict[str, Graph] = {}
        self._lock = threading.Lock()
        if index_dir is not None:
            index_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, collection_id: str) -> Path | None:
        return None if self._dir is None else self._dir / f"{collection_id}.usearch"

    def _slot(self, collection_id: str, ndim: int) -> Graph:
        with self._lock:
            found = self._indexes.get(collection_id)
            if found is None or found.ndim != ndim:
                found = Graph(ndim, index=self._restore(collection_id, ndim))
                self._indexes[collection_id] = found
            return found

    def _restore(self, collection_id: str, ndim: int) -> Index | None:
        path = self._path(collection_id)
        if path is None or not path.exists():
            return None
        try:
            restored = Index.restore(str(path))
        except Exception:  # a torn or foreign file is only a cache: rebuild
            log.warning("ignoring unreadable vector index %s", path)
            return None
        if restored is None or restored.ndim != ndim or restored.dtype != DTYPE:
            return None  # of another shape or element type: rebuilt from the database
        # Not kept in the file: a restored graph searched at usearch's default (64) until now.
        restored.expansion_search = EXPANSION_SEARCH  # type: ignore[misc]  # it has a setter
        return restored

    def current(
        self,
        collection_id: str,
        ndim: int,
        generation: int,
        load_keys: KeysLoader,
        load_vectors: VectorsLoader,
    ) -> Graph:
        """The collection's graph, brought up to `generation` if it is behind.

        `generation` must have been read before `load_keys` runs, so a graph is never labelled
        newer than what it holds (at worst it syncs once more, finding nothing to do)."""
        slot = self._slot(collection_id, ndim)
        with slot.lock:
            if slot.generation != generation:
                db_keys = np.asarray(load_keys(), dtype=np.uint64)
                held = np.asarray(slot.index.keys, dtype=np.uint64)
                slot.remove(np.setdiff1d(held, db_keys, assume_unique=True))
                missing = np.setdiff1d(db_keys, held, assume_unique=True)
                for start in range(0, len(missing), 10_000):
                    keys, vectors = load_vectors(missing[start : start + 10_000])
                    slot.add(keys, vectors)
                slot.generation = generation
                if slot.unsaved >= SAVE_AFTER_CHANGES:
                    self._save(collection_id, slot)
        return slot

    def applied(
        self,
        collection_id: str,
        before: int,
        after: int,
        *,
        added: tuple[np.ndarray, np.ndarray] | None = None,
        removed: np.ndarray | None = None,
    ) -> None:
        """A change this process committed (`before` -> `after`); applied if the graph is loaded
        and was at `before`, otherwise left for the next sync.

        A graph labelled `before` may already hold this change: a search that read `before`
        and then loaded the keys after this commit synced them (its label is only a lower
        bound). So what is already there is not added again (usearch refused it: the soak's
        "Duplicate keys" failures), and what is already gone is not removed."""
        with self._lock:
            slot = self._indexes.get(collection_id)
        if slot is None:
            return
        with slot.lock:
            if slot.generation != before:
                return
            try:
                if removed is not None:
                    slot.remove(removed)
                if added is not None:
                    slot.add(*added)
            except Exception:  # the change is committed; the cache must not fail it
                log.exception("vector graph of collection %s out of step; resyncing", collection_id)
                slot.generation = -1  # the next search brings it up to date from the database
                return
            slot.generation = after

    def drop(self, collection_id: str) -> None:
        with self._lock:
            self._indexes.pop(collection_id, None)
        path = self._path(collection_id)
        if path is not None:
            path.unlink(missing_ok=True)

    def _save(self, collection_id: str, slot: Graph) -> None:
        path = self._path(collection_id)
        if path is None:
            return
        partial = path.with_suffix(f".{os.getpid()}.tmp")  # workers may save the same graph
        slot.index.save(str(partial))
        partial.replace(path)  # atomic: a crash leaves the old file or the new one
        slot.unsaved = 0

    def save_all(self) -> None:
        """Saves every graph with unsaved changes (at shutdown)."""
        with self._lock:
            slots = list(self._indexes.items())
        for collection_id, slot in slots:
            with slot.lock:
                if slot.unsaved:
                    self._save(collection_id, slot)


class GraphVectors(Graphs):
    """`indexes.VectorIndex` over this process's graphs, synced from the `chunks` table."""

    columns: tuple[Column, ...] = ()  # the graph reads `chunks.vector`, the store's own column

    def __init__(self, db: Database, index_dir: Path | None = None) -> None:
        super().__init__(index_dir)
        self.db = db

    def nearest(
        self, connection: sa.Connection, owned: Sequence[Searched], vector: np.ndarray, count: int
    ) -> dict[int, float]:
        found: list[tuple[int, float]] = []
        for row in owned:
            graph = self._current(row)
            with graph.lock:
                found += graph.search(vector, count)
        found.sort(key=lambda item: -item[1])
        return dict(found[:count])

    def cosines(
        self,
        connection: sa.Connection,
        owned: Sequence[Searched],
        vector: np.ndarray,
        keys: list[int],
    ) -> dict[int, float]:
        if not keys:
            return {}
        result: dict[int, float] = {}
        for row in owned:
            graph = self._current(row)
            with graph.lock:
                result.update(graph.cosines(vector, keys))
        return result

    def _current(self, row: Searched) -> Graph:
        collection_id = row.id

        def keys() -> np.ndarray:
            with self.db.session() as session:
                found = session.scalars(
                    sa.select(ChunkRow.key).where(ChunkRow.collection_id == collection_id)
                ).all()
            return np.array(found, dtype=np.uint64)

        def vectors(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with self.db.session() as session:
                found = session.execute(
                    sa.select(ChunkRow.key, ChunkRow.vector).where(
                        ChunkRow.collection_id == collection_id,
                        ChunkRow.key.in_([int(k) for k in wanted]),
                    )
                ).all()
            if not found:
                return np.empty(0, dtype=np.uint64), np.empty((0, 0), dtype=np.float32)
            return (
                np.array([key for key, _ in found], dtype=np.uint64),
                np.vstack([np.frombuffer(blob, dtype=np.float32) for _, blob in found]),
            )

        return self.current(collection_id, row.dimensions, row.generation, keys, vectors)
