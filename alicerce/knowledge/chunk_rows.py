"""The chunk rows of the knowledge store, written with their keyword and vector sides.

Every write of chunks goes through here, in the store's transaction: the rows (with the columns
the indexes keep in them, `indexes.Column`), the keyword index's own rows, and one step of
`collections.generation` with the collection's counts; the vector index hears of the change
after the commit (`indexes.VectorIndex.applied`). The statements are built once, from the store's
columns and the backend's, when the store is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from alicerce.clock import utcnow
from alicerce.ids import new_id
from alicerce.knowledge import keyword
from alicerce.knowledge.backends import Backend
from alicerce.knowledge.chunking import with_headings
from alicerce.knowledge.indexes import Column
from alicerce.knowledge.records import ChunkLike
from alicerce.store import Database
from alicerce.store.tables import ChunkRow, CollectionRow, DocumentRow, DocumentSourceRow, JsonType

# The columns of `chunks` the store writes itself; the indexes may add theirs (`Column`).
CHUNK_COLUMNS = (
    "id",
    "key",
    "document_id",
    "collection_id",
    "position",
    "text",
    "heading_path",
    "tokens",
    "n_terms",
    "vector",
)


class EmbedderChanged(Exception):
    """A document's vectors were made for the embedder a re-embedding has since replaced:
    they are not written (the indexer embeds the document again)."""


def _insert_sql(columns: Sequence[Column]) -> sa.TextClause:
    names = ", ".join([*CHUNK_COLUMNS, *(column.name for column in columns)])
    values = ", ".join([*(f":{name}" for name in CHUNK_COLUMNS), *(c.sql for c in columns)])
    return sa.text(f"INSERT INTO chunks ({names}) VALUES ({values})").bindparams(
        sa.bindparam("heading_path", type_=JsonType), sa.bindparam("vector", type_=sa.LargeBinary)
    )


def _replace_sql(columns: Sequence[Column]) -> sa.TextClause:
    sets = ", ".join(["vector = :vector", *(f"{c.name} = {c.sql}" for c in columns)])
    return sa.text(f"UPDATE chunks SET {sets} WHERE id = :id AND collection_id = :c")


def _with_columns(row: dict[str, Any], columns: Sequence[Column]) -> dict[str, Any]:
    """`row` with the values of the index's columns (`Column.param`) added."""
    for column in columns:
        row[column.param] = column.value(row)
    return row


class ChunkRows:
    """The part of `KnowledgeStore` that writes and removes chunk rows; sync, like it."""

    def __init__(self, db: Database, backend: Backend) -> None:
        self.db = db
        self.keywords = backend.keywords
        self.vectors = backend.vectors  # `save_all()` at shutdown
        self._columns = (*self.keywords.columns, *self.vectors.columns)
        self._insert = _insert_sql(self._columns)
        self._replace = _replace_sql(self.vectors.columns)

    def write_chunks(
        self,
        document_id: str,
        chunks: Sequence[ChunkLike],
        vectors: np.ndarray,
        tokens: int,
        *,
        embedding_version: int | None = None,
    ) -> None:
        """Chunks, keyword rows, vectors and the `ready` status in ONE transaction; the source
        bytes are dropped in it too. A crash before the commit leaves none of it visible.
        `embedding_version`: the collection's when the vectors were made; if a re-embedding
        has swapped its embedder since, nothing is written (`EmbedderChanged`)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(chunks):
            raise ValueError(f"{len(chunks)} chunks but vectors of shape {vectors.shape}")
        with self.db.session() as session:
            document = session.get(DocumentRow, document_id)
            if document is None:  # deleted while it was being indexed
                return
            # The key range first: the update takes the collection row's lock, under which
            # its embedder is read, so no swap commits between the check and the write.
            first_key, version = self._reserve_keys(session, document.collection_id, len(chunks))
            if embedding_version is not None and version != embedding_version:
                raise EmbedderChanged(document.collection_id)
            collection = session.get(CollectionRow, document.collection_id)
            assert collection is not None
            if vectors.shape[1] != collection.dimensions:
                raise ValueError(
                    f"vectors have {vectors.shape[1]} dimensions, the collection "
                    f"{collection.dimensions}"
                )
            removed = self._remove_chunks(session, document)
            rows = [
                self._chunk_row(document, first_key + index, chunk, vector)
                for index, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))
            ]
            if rows:
                session.execute(self._insert, rows)
                self.keywords.insert(session, rows)
            before, after = self._bump(
                session,
                document.collection_id,
                chunks=len(rows),
                terms=sum(len(row["terms"]) for row in rows),
            )
            document.status, document.error = "ready", None
            document.chunks, document.tokens = len(rows), tokens
            document.updated_at = utcnow()
            session.execute(
                sa.delete(DocumentSourceRow).where(DocumentSourceRow.document_id == document_id)
            )
        self._applied(removed)  # a re-index: the removal moved the generation one step first
        keys = np.array([row["key"] for row in rows], dtype=np.uint64)
        self.vectors.applied(document.collection_id, before, after, added=(keys, vectors))

    def _chunk_row(
        self, document: DocumentRow, key: int, chunk: ChunkLike, vector: np.ndarray
    ) -> dict[str, Any]:
        """A chunk's row: its columns, the indexes' columns, and what those are built from."""
        heading_path = list(chunk.heading_path)
        # Keywords read the heading path too (the text returned stays the chunk's).
        keyword_text = with_headings(heading_path, chunk.text)
        terms = keyword.terms(keyword_text)
        row = {
            "id": new_id(),
            "key": key,
            "document_id": document.id,
            "collection_id": document.collection_id,
            "position": chunk.position,
            "text": chunk.text,
            "heading_path": heading_path,
            "tokens": chunk.tokens,
            "n_terms": len(terms),
            "vector": vector.tobytes(),
            "keyword_text": keyword_text,
            "terms": terms,
            "embedding": vector,
        }
        return _with_columns(row, self._columns)

    def _reserve_keys(self, session: Session, collection_id: str, count: int) -> tuple[int, int]:
        """The first of `count` fresh keys in the collection's range (see `CollectionRow`), and
        the collection's `embedding_version`, read under the row's lock this update takes."""
        number, end, version = session.execute(
            sa.update(CollectionRow)
            .where(CollectionRow.id == collection_id)
            .values(next_key=CollectionRow.next_key + count)
            .returning(
                CollectionRow.number, CollectionRow.next_key, CollectionRow.embedding_version
            )
        ).one()
        low, _high = keyword.key_range(number)
        return int(low + end - count), int(version)

    def _bump(
        self, session: Session, collection_id: str, *, chunks: int, terms: int
    ) -> tuple[int, int]:
        """Moves the collection's generation one step and its counts; (before, after)."""
        after = session.execute(
            sa.update(CollectionRow)
            .where(CollectionRow.id == collection_id)
            .values(
                generation=CollectionRow.generation + 1,
                chunk_count=CollectionRow.chunk_count + chunks,
                term_count=CollectionRow.term_count + terms,
            )
            .returning(CollectionRow.generation)
        ).scalar_one()
        return after - 1, after

    def _remove_chunks(
        self, session: Session, document: DocumentRow
    ) -> tuple[str, np.ndarray, int, int] | None:
        """Deletes a document's chunks and keyword rows; (collection, keys, before, after)
        for the in-process graph, or None when it had none."""
        found = session.execute(
            sa.select(ChunkRow.key, ChunkRow.n_terms).where(ChunkRow.document_id == document.id)
        ).all()
        if not found:
            return None
        keys = [key for key, _ in found]
        self.keywords.delete(session, keys)
        session.execute(sa.delete(ChunkRow).where(ChunkRow.document_id == document.id))
        before, after = self._bump(
            session,
            document.collection_id,
            chunks=-len(keys),
            terms=-sum(n for _, n in found),
        )
        return document.collection_id, np.array(keys, dtype=np.uint64), before, after

    def _applied(self, change: tuple[str, np.ndarray, int, int] | None) -> None:
        if change is not None:
            collection_id, keys, before, after = change
            self.vectors.applied(collection_id, before, after, removed=keys)

    def _write_vectors(
        self, session: Session, collection_id: str, chunk_ids: Sequence[str], vectors: np.ndarray
    ) -> None:
        """New vectors of the given chunks (the caller moves the generation and drops graphs)."""
        params = [
            _with_columns(
                {
                    "id": chunk_id,
                    "c": collection_id,
                    "vector": vector.tobytes(),
                    "embedding": vector,
                },
                self.vectors.columns,
            )
            for chunk_id, vector in zip(chunk_ids, vectors, strict=True)
        ]
        if params:
            session.execute(self._replace, params)
