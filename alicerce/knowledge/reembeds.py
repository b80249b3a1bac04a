"""A collection's re-embedding as the database keeps it: asked for, claimed, swapped in, failed.

The state is on the collection's row (migration 0007), not in a process's memory, so a restart
resumes a re-embedding and a failure stays visible until it is retried:

- `request_reembed`: a new token, `queued`, the target embedder. It supersedes any earlier
  request, whose worker then finds its token gone and drops its work.
- `claim_reembed`: `running` under a fresh token, if the token read is still there: of several
  processes resuming the same re-embedding at start (`serve --workers N`), one wins it.
- `replace_vectors`: the new vectors, model and settings, and `embedding_version` one step on,
  in ONE transaction, and only if the token is still the worker's and the collection's chunks
  are those it embedded (`generation` unchanged). Otherwise nothing is written: `stale` (chunks
  came or went meanwhile: embed the new ones and try again) or `superseded`. A collection is
  never searched with vectors of two embedders.
- `fail_reembed`: `failed` with the reason (the vectors are untouched); `retry_reembed` queues
  the same target again.

A document embedded while a swap commits is caught the other way round: `write_chunks` is told
the `embedding_version` its vectors were made for and refuses to write them under another.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa

from alicerce.clock import utcnow
from alicerce.errors import Conflict, NotFound
from alicerce.ids import new_id
from alicerce.knowledge.chunk_rows import ChunkRows
from alicerce.knowledge.records import Collection, ReembedState, StoredChunk, collection_of
from alicerce.store.tables import ChunkRow, CollectionRow

Swap = Literal["done", "stale", "superseded"]
UNFINISHED_REEMBEDS = ("queued", "running")


class ReembedRows(ChunkRows):
    """The part of `KnowledgeStore` that keeps re-embeddings; sync, like it."""

    def request_reembed(
        self, account_id: str, collection_id: str, embedding: dict[str, Any] | None
    ) -> ReembedState:
        """Queues a re-embedding to `embedding` (None: the local model), replacing any other
        not done yet."""
        token = new_id()
        with self.db.session() as session:
            row = session.get(CollectionRow, collection_id)
            if row is None or row.account_id != account_id:
                raise NotFound(f"No collection {collection_id!r}.")
            row.reembed_id, row.reembed_status = token, "queued"
            row.reembed_embedding, row.reembed_error = embedding, None
            row.updated_at = utcnow()
        return ReembedState(token, "queued", embedding, None)

    def retry_reembed(self, account_id: str, collection_id: str) -> ReembedState:
        """The failed re-embedding queued again, to the same target, under a new token."""
        token = new_id()
        with self.db.session() as session:
            row = session.get(CollectionRow, collection_id)
            if row is None or row.account_id != account_id:
                raise NotFound(f"No collection {collection_id!r}.")
            if row.reembed_status != "failed":
                state = row.reembed_status or "none"
                raise Conflict(
                    f"The collection has no failed re-embedding to retry (re-embedding: {state}).",
                    code="reembed_not_failed",
                )
            row.reembed_id, row.reembed_status, row.reembed_error = token, "queued", None
            row.updated_at = utcnow()
            embedding = dict(row.reembed_embedding) if row.reembed_embedding else None
        return ReembedState(token, "queued", embedding, None)

    def claim_reembed(self, collection_id: str, token: str) -> tuple[Collection, str] | None:
        """The collection and a fresh token, the re-embedding now `running` under it; None
        when `token` is no longer the collection's (superseded, claimed elsewhere, done) or the
        collection is gone."""
        claimed = new_id()
        with self.db.session() as session:
            result = session.execute(
                sa.update(CollectionRow)
                .where(
                    CollectionRow.id == collection_id,
                    CollectionRow.reembed_id == token,
                    CollectionRow.reembed_status.in_(UNFINISHED_REEMBEDS),
                )
                .values(reembed_id=claimed, reembed_status="running")
            )
            if getattr(result, "rowcount", 0) != 1:
                return None
            row = session.get(CollectionRow, collection_id)
            assert row is not None
            return collection_of(row), claimed

    def fail_reembed(self, collection_id: str, token: str, error: str) -> None:
        """`failed` with the reason, unless another request has taken over meanwhile."""
        with self.db.session() as session:
            session.execute(
                sa.update(CollectionRow)
                .where(CollectionRow.id == collection_id, CollectionRow.reembed_id == token)
                .values(reembed_status="failed", reembed_error=error)
            )

    def unfinished_reembeds(self) -> list[tuple[str, str, str]]:
        """(account, collection, token) of the re-embeddings a stopped process left queued or
        running, oldest request first."""
        with self.db.session() as session:
            rows = session.execute(
                sa.select(CollectionRow.account_id, CollectionRow.id, CollectionRow.reembed_id)
                .where(CollectionRow.reembed_status.in_(UNFINISHED_REEMBEDS))
                .order_by(CollectionRow.reembed_id)
            ).all()
        return [(account, collection, str(token)) for account, collection, token in rows]

    # -- the chunks and their new vectors ----------------------------------------------------

    def chunks_to_embed(
        self, account_id: str, collection_id: str
    ) -> tuple[int, list[StoredChunk]] | None:
        """The collection's `generation` and its chunks as of it; None if it is gone."""
        with self.db.session() as session:
            row = session.get(CollectionRow, collection_id)
            if row is None or row.account_id != account_id:
                return None
            rows = session.execute(
                sa.select(ChunkRow.id, ChunkRow.text, ChunkRow.heading_path, ChunkRow.position)
                .where(ChunkRow.collection_id == collection_id)
                .order_by(ChunkRow.document_id, ChunkRow.position)
            ).all()
            return int(row.generation), [StoredChunk(*found) for found in rows]

    def chunk_vectors(
        self, account_id: str, collection_id: str, *, batch: int = 256
    ) -> Iterator[list[StoredChunk]]:
        """The collection's chunks in batches, for embedding them again."""
        found = self.chunks_to_embed(account_id, collection_id)
        chunks = found[1] if found is not None else []
        for start in range(0, len(chunks), batch):
            yield chunks[start : start + batch]

    def replace_vectors(
        self,
        account_id: str,
        collection_id: str,
        chunk_ids: Sequence[str],
        vectors: np.ndarray,
        *,
        embedding_model: str,
        dimensions: int,
        settings: dict[str, Any] | None = None,
        token: str | None = None,
        generation: int | None = None,
    ) -> Swap:
        """Every chunk's new vector and the collection's new model, in one transaction, if
        the collection is still at `generation` and its re-embedding still `token` (each
        checked when given); see the module's docstring."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(chunk_ids), dimensions):
            raise ValueError(f"expected {len(chunk_ids)} x {dimensions} vectors")
        values: dict[str, Any] = {
            "embedding_model": embedding_model,
            "dimensions": dimensions,
            "generation": CollectionRow.generation + 1,
            "embedding_version": CollectionRow.embedding_version + 1,
            "updated_at": utcnow(),
        }
        if settings is not None:
            values["settings"] = settings
        where = [CollectionRow.id == collection_id, CollectionRow.account_id == account_id]
        if token is not None:
            where.append(CollectionRow.reembed_id == token)
            values |= {"reembed_id": None, "reembed_status": None, "reembed_error": None}
            values["reembed_embedding"] = sa.null()
        if generation is not None:
            where.append(CollectionRow.generation == generation)
        with self.db.session() as session:
            # The conditional update first: it takes the row's lock, so no chunk is written
            # between the check and the new vectors.
            result = session.execute(sa.update(CollectionRow).where(*where).values(**values))
            if getattr(result, "rowcount", 0) != 1:
                current = session.get(CollectionRow, collection_id)
                ours = current is not None and (token is None or current.reembed_id == token)
                return "stale" if ours else "superseded"
            self._write_vectors(session, collection_id, chunk_ids, vectors)
        self.vectors.drop(collection_id)  # a graph is rebuilt from them on the next search
        return "done"
