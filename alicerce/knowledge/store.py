"""Collections, documents and chunks in the database (searched by `search.ChunkSearch`).

One database is the source of truth: documents, their original bytes until indexed, chunks with
their float32 vectors, and the keyword index, all written in one transaction, so a document is
searchable completely or not at all, also after a crash.

The keyword and vector sides are written through two interfaces (`indexes`), with one
implementation per backend chosen when the store is made (`backends`): FTS5 or BM25 in SQL for
keywords, an in-process HNSW graph per collection (kept in step through
`collections.generation`) or pgvector for vectors. Chunk rows are written by the base class,
`chunk_rows.ChunkRows`, re-embeddings kept by `reembeds.ReembedRows`; what the store hands out
is in `records`.

Tenancy: every public method that a request reaches takes `account_id` and filters by it; the
worker-side methods (`load_source`, `mark_*`, `write_chunks`) take ids the worker got from them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alicerce.clock import utcnow
from alicerce.errors import Conflict, NotFound
from alicerce.ids import new_id
from alicerce.knowledge import keyword
from alicerce.knowledge.backends import open_backend
from alicerce.knowledge.records import (
    ChunkLike,
    Collection,
    Document,
    DocumentChunk,
    StoredChunk,
    collection_of,
    document_of,
)
from alicerce.knowledge.reembeds import ReembedRows
from alicerce.knowledge.search import ChunkSearch
from alicerce.store import Database
from alicerce.store.tables import (
    ChunkRow,
    CollectionRow,
    DocumentRow,
    DocumentSourceRow,
)

__all__ = ["ChunkLike", "Collection", "Document", "KnowledgeStore", "StoredChunk"]

UNFINISHED = ("queued", "indexing")


class KnowledgeStore(ReembedRows):
    """Sync methods; async callers use `asyncio.to_thread`."""

    def __init__(
        self,
        db: Database,
        *,
        index_dir: Path | None = None,
        keyword_budget: int = keyword.POSTINGS_BUDGET,
    ) -> None:
        backend = open_backend(db, index_dir=index_dir, keyword_budget=keyword_budget)
        super().__init__(db, backend)
        self.searcher = ChunkSearch(db, backend)
        self.search = self.searcher.search  # what a search reads lives in `search`

    # -- collections -------------------------------------------------------------------------

    def create_collection(
        self,
        account_id: str,
        *,
        name: str,
        description: str | None,
        embedding_model: str,
        dimensions: int,
        settings: dict[str, Any],
    ) -> Collection:
        now = utcnow()
        row = CollectionRow(
            id=new_id(),
            account_id=account_id,
            name=name,
            description=description,
            embedding_model=embedding_model,
            dimensions=dimensions,
            settings=settings,
            next_key=0,
            generation=0,
            chunk_count=0,
            term_count=0,
            created_at=now,
            updated_at=now,
        )
        for _attempt in range(5):  # two creations at once may pick the same number: retry
            try:
                with self.db.session() as session:
                    row.number = 1 + int(
                        session.execute(
                            sa.select(sa.func.coalesce(sa.func.max(CollectionRow.number), 0))
                        ).scalar_one()
                    )
                    session.add(row)
                return collection_of(row)
            except IntegrityError:
                if self._named(account_id, name):
                    raise Conflict(
                        f"A collection named {name!r} already exists.", param="name"
                    ) from None
        raise Conflict("The collection could not be created; try again.")  # pragma: no cover

    def _named(self, account_id: str, name: str) -> bool:
        with self.db.session() as session:
            found = session.execute(
                sa.select(CollectionRow.id).where(
                    CollectionRow.account_id == account_id, CollectionRow.name == name
                )
            ).first()
            return found is not None

    def _owned(self, session: Session, account_id: str, collection_id: str) -> CollectionRow | None:
        row = session.get(CollectionRow, collection_id)
        return row if row is not None and row.account_id == account_id else None

    def get_collection(self, account_id: str, collection_id: str) -> Collection | None:
        with self.db.session() as session:
            row = self._owned(session, account_id, collection_id)
            return None if row is None else collection_of(row)

    def list_collections(self, account_id: str) -> list[Collection]:
        with self.db.session() as session:
            rows = session.scalars(
                sa.select(CollectionRow)
                .where(CollectionRow.account_id == account_id)
                .order_by(CollectionRow.id)
            )
            return [collection_of(row) for row in rows]

    def update_collection(
        self,
        account_id: str,
        collection_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Collection | None:
        try:
            with self.db.session() as session:
                row = self._owned(session, account_id, collection_id)
                if row is None:
                    return None
                if name is not None:
                    row.name = name
                if description is not None:
                    row.description = description
                row.updated_at = utcnow()
                session.flush()
                return collection_of(row)
        except IntegrityError:
            raise Conflict(f"A collection named {name!r} already exists.", param="name") from None

    def delete_collection(self, account_id: str, collection_id: str) -> bool:
        with self.db.session() as session:
            row = self._owned(session, account_id, collection_id)
            if row is None:
                return False
            self.keywords.delete_collection(session, row.number)
            session.execute(sa.delete(ChunkRow).where(ChunkRow.collection_id == collection_id))
            session.delete(row)  # documents and their sources go by cascade
        self.vectors.drop(collection_id)
        return True

    def delete_account_collections(self, account_id: str) -> int:
        """Every collection of the account, deleted as `delete_collection` does (before the
        account itself: the database's cascade would leave their keyword rows and vector
        graphs behind). How many there were."""
        collections = self.list_collections(account_id)
        for collection in collections:
            self.delete_collection(account_id, collection.id)
        return len(collections)

    # -- documents ---------------------------------------------------------------------------

    def add_document(
        self,
        account_id: str,
        collection_id: str,
        *,
        name: str,
        data: bytes,
        media_type: str | None,
        source_url: str | None,
        metadata: dict[str, Any] | None,
    ) -> tuple[Document, bool]:
        """A new `queued` document with its bytes, True; when the collection already holds
        the same content, the existing document and False, unless it had failed: then it is
        queued again with these bytes and this upload's name and fields, True (a re-upload is
        a retry)."""
        digest = hashlib.sha256(data).hexdigest()
        fields = {
            "name": name,
            "media_type": media_type,
            "source_url": source_url,
            "doc_metadata": metadata or {},
        }
        for _attempt in range(2):  # a concurrent twin may win the unique constraint once
            existing = self._by_hash(account_id, collection_id, digest)
            if existing is not None and existing.status == "failed":
                requeued = self._requeue(existing.id, data, fields)
                return (requeued, True) if requeued is not None else (existing, False)
            if existing is not None:
                return existing, False
            now = utcnow()
            row = DocumentRow(
                id=new_id(),
                collection_id=collection_id,
                account_id=account_id,
                name=name,
                content_hash=digest,
                media_type=media_type,
                size_bytes=len(data),
                source_url=source_url,
                doc_metadata=metadata or {},
                status="queued",
                error=None,
                chunks=0,
                tokens=0,
                created_at=now,
                updated_at=now,
            )
            try:
                with self.db.session() as session:
                    session.add(row)
                    session.flush()
                    session.add(DocumentSourceRow(document_id=row.id, data=data))
                return document_of(row), True
            except IntegrityError:
                continue
        raise Conflict("The document could not be stored; try again.")  # pragma: no cover

    def retry_document(self, account_id: str, collection_id: str, document_id: str) -> Document:
        """The failed document queued again with the bytes it kept (404 if there is none,
        409 `document_not_failed` unless it failed, 409 `document_source_missing` if it
        failed before failed documents kept their bytes)."""
        found = self.get_document(account_id, collection_id, document_id)
        if found is None:
            raise NotFound(f"No document {document_id!r} in this collection.")
        if found.status != "failed":
            raise Conflict(
                f"Document {found.name!r} is {found.status}; only a failed document is retried.",
                code="document_not_failed",
            )
        requeued = self._requeue(document_id, None, {})
        if requeued is None:
            raise Conflict(
                f"The bytes of document {found.name!r} were not kept; upload it again.",
                code="document_source_missing",
            )
        return requeued

    def _requeue(
        self, document_id: str, data: bytes | None, fields: dict[str, Any]
    ) -> Document | None:
        """A `failed` document back to `queued`, its error cleared, with `data` as its bytes
        (None: those it kept); None when it is not failed any more (a twin request won) or
        has no bytes to index."""
        with self.db.session() as session:
            if data is None and session.get(DocumentSourceRow, document_id) is None:
                return None
            result = session.execute(
                sa.update(DocumentRow)
                .where(DocumentRow.id == document_id, DocumentRow.status == "failed")
                .values(
                    status="queued", error=None, chunks=0, tokens=0, updated_at=utcnow(), **fields
                )
            )
            if getattr(result, "rowcount", 0) != 1:
                return None
            if data is not None:
                source = session.get(DocumentSourceRow, document_id)
                if source is None:
                    session.add(DocumentSourceRow(document_id=document_id, data=data))
                else:
                    source.data = data
            row = session.get(DocumentRow, document_id)
            assert row is not None
            return document_of(row)

    def _by_hash(self, account_id: str, collection_id: str, digest: str) -> Document | None:
        with self.db.session() as session:
            if self._owned(session, account_id, collection_id) is None:
                raise NotFound(f"No collection {collection_id!r}.", param="collection_id")
            row = session.scalars(
                sa.select(DocumentRow).where(
                    DocumentRow.collection_id == collection_id,
                    DocumentRow.content_hash == digest,
                )
            ).first()
            return None if row is None else document_of(row)

    def get_document(
        self, account_id: str, collection_id: str, document_id: str
    ) -> Document | None:
        with self.db.session() as session:
            row = session.get(DocumentRow, document_id)
            if row is None or row.account_id != account_id or row.collection_id != collection_id:
                return None
            return document_of(row)

    def get_chunk(
        self, account_id: str, collection_id: str, document_id: str, chunk_id: str
    ) -> DocumentChunk | None:
        """The chunk `chunk_id` of that document of that collection of the account, or None."""
        with self.db.session() as session:
            chunk = session.get(ChunkRow, chunk_id)
            if chunk is None or chunk.document_id != document_id:
                return None
            row = session.get(DocumentRow, document_id)
            if row is None or row.account_id != account_id or row.collection_id != collection_id:
                return None
            return DocumentChunk(
                chunk.id,
                chunk.text,
                list(chunk.heading_path or []),
                chunk.position,
                chunk.tokens,
                document_of(row),
            )

    def list_documents(self, account_id: str, collection_id: str) -> list[Document]:
        with self.db.session() as session:
            rows = session.scalars(
                sa.select(DocumentRow)
                .where(
                    DocumentRow.account_id == account_id,
                    DocumentRow.collection_id == collection_id,
                )
                .order_by(DocumentRow.id)
            )
            return [document_of(row) for row in rows]

    def delete_document(self, account_id: str, collection_id: str, document_id: str) -> bool:
        """Removes the document, its chunks, their keyword rows and vectors in one go."""
        with self.db.session() as session:
            row = session.get(DocumentRow, document_id)
            if row is None or row.account_id != account_id or row.collection_id != collection_id:
                return False
            change = self._remove_chunks(session, row)
            session.delete(row)
        self._applied(change)
        return True

    def unfinished_documents(self) -> list[Document]:
        """Documents a stopped process left `queued` or `indexing`, oldest first."""
        with self.db.session() as session:
            rows = session.scalars(
                sa.select(DocumentRow)
                .where(DocumentRow.status.in_(UNFINISHED))
                .order_by(DocumentRow.created_at, DocumentRow.id)
            )
            return [document_of(row) for row in rows]

    # -- the ingestion worker's side ---------------------------------------------------------

    def load_source(self, document_id: str) -> bytes:
        with self.db.session() as session:
            row = session.get(DocumentSourceRow, document_id)
            if row is None:
                raise NotFound(f"The bytes of document {document_id!r} are gone.")
            return bytes(row.data)

    def claim(self, document: Document) -> bool:
        """Marks `document` indexing unless someone changed it since it was read (its
        `updated_at` is the version): of several processes resuming the same unfinished
        document at start (`serve --workers N`), exactly one wins it."""
        with self.db.session() as session:
            result = session.execute(
                sa.update(DocumentRow)
                .where(
                    DocumentRow.id == document.id,
                    DocumentRow.updated_at == document.updated_at,
                    DocumentRow.status.in_(UNFINISHED),
                )
                .values(status="indexing", error=None, updated_at=utcnow())
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def is_indexing(self, document_id: str) -> bool:
        """Whether the document is still there and being indexed (not deleted meanwhile)."""
        with self.db.session() as session:
            status = session.scalar(
                sa.select(DocumentRow.status).where(DocumentRow.id == document_id)
            )
            return status == "indexing"

    def mark_failed(self, document_id: str, error: str) -> None:
        """Failed, with the reason; any chunks it had are removed. Its bytes are kept, so it
        can be retried (`retry_document`) until it is indexed or deleted."""
        change = None
        with self.db.session() as session:
            row = session.get(DocumentRow, document_id)
            if row is None:
                return
            change = self._remove_chunks(session, row)
            row.status, row.error, row.chunks, row.tokens = "failed", error, 0, 0
            row.updated_at = utcnow()
        self._applied(change)
