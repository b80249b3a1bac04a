"""Vectors searched by pgvector's HNSW index (`indexes.VectorIndex` on a PostgreSQL whose
schema has the `embedding` column: migration 0002 adds it when the server has pgvector).

The `embedding` column is written with the chunk row and with every re-embedding (`Column`), in
the store's transaction: nothing to keep in step after a commit, nothing to save at shutdown.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa

from alicerce.knowledge.indexes import ChunkValues, Column, Searched

INDEXED_DIMENSIONS = 384  # the HNSW index covers rows of this size (the local model's)

_INDEXED = sa.text(
    "SELECT key, 1 - (embedding::vector(384) <=> CAST(:v AS vector(384))) FROM chunks "
    "WHERE collection_id = ANY(:ids) AND vector_dims(embedding) = 384 "
    "ORDER BY embedding::vector(384) <=> CAST(:v AS vector(384)) LIMIT :n"
)
_EXACT = sa.text(  # other sizes: exact, over the collections' rows
    "SELECT key, 1 - (embedding <=> CAST(:v AS vector)) FROM chunks "
    "WHERE collection_id = ANY(:ids) "
    "ORDER BY embedding <=> CAST(:v AS vector) LIMIT :n"
)
_COSINES = sa.text(
    "SELECT key, 1 - (embedding <=> CAST(:v AS vector)) FROM chunks WHERE key = ANY(:keys)"
)


def vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


def _embedding(row: ChunkValues) -> str:
    return vector_literal(row["embedding"])


class PgvectorVectors:
    """`indexes.VectorIndex` over pgvector."""

    columns: tuple[Column, ...] = (Column("embedding", "vector", _embedding),)

    def applied(
        self,
        collection_id: str,
        before: int,
        after: int,
        *,
        added: tuple[np.ndarray, np.ndarray] | None = None,
        removed: np.ndarray | None = None,
    ) -> None:
        """Nothing: the change was in the rows."""

    def drop(self, collection_id: str) -> None:
        """Nothing: the vectors went with the rows."""

    def save_all(self) -> None:
        """Nothing: the index is the database's."""

    def nearest(
        self, connection: sa.Connection, owned: Sequence[Searched], vector: np.ndarray, count: int
    ) -> dict[int, float]:
        if {row.dimensions for row in owned} == {INDEXED_DIMENSIONS}:  # the HNSW index
            connection.execute(sa.text("SET LOCAL hnsw.ef_search = 100"))
            if _iterative_scan(connection):
                connection.execute(sa.text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            sql = _INDEXED
        else:
            sql = _EXACT
        params = {"v": vector_literal(vector), "ids": [row.id for row in owned], "n": count}
        return {int(k): float(c) for k, c in connection.execute(sql, params).all()}

    def cosines(
        self,
        connection: sa.Connection,
        owned: Sequence[Searched],
        vector: np.ndarray,
        keys: list[int],
    ) -> dict[int, float]:
        if not keys:
            return {}
        rows = connection.execute(_COSINES, {"v": vector_literal(vector), "keys": keys}).all()
        return {int(key): float(cos) for key, cos in rows}


def _iterative_scan(connection: sa.Connection) -> bool:
    """pgvector 0.8 can keep walking the graph until the collection filter is satisfied."""
    version = connection.execute(
        sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    ).scalar()
    major, minor = (int(part) for part in str(version or "0.0").split(".")[:2])
    return (major, minor) >= (0, 8)
