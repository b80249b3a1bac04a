"""What the knowledge store hands out: collections, documents and chunks as plain frozen
values, read from their rows inside a session so callers never hold ORM objects.

Split from `store` so the modules that only pass these around (`service`, `batch`, `api`) need
not know how they are written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from alicerce.store.tables import CollectionRow, DocumentRow


class ChunkLike(Protocol):
    """What `write_chunks` reads of `alicerce.knowledge.chunking.Chunk`."""

    text: str
    heading_path: list[str]
    position: int
    tokens: int


@dataclass(frozen=True, slots=True)
class ReembedState:
    """A collection's re-embedding not done yet: queued, running, or failed with `error`."""

    id: str  # the job's token: a new request, or a claim, changes it
    status: str  # queued | running | failed
    embedding: dict[str, Any] | None  # the target endpoint's settings; None: the local model
    error: str | None


@dataclass(frozen=True, slots=True)
class Collection:
    id: str
    account_id: str
    name: str
    description: str | None
    embedding_model: str
    dimensions: int
    settings: dict[str, Any]
    chunk_count: int
    created_at: datetime
    updated_at: datetime
    embedding_version: int = 0
    reembed: ReembedState | None = None


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    collection_id: str
    account_id: str
    name: str
    content_hash: str
    media_type: str | None
    size_bytes: int
    source_url: str | None
    metadata: dict[str, Any]
    status: str
    error: str | None
    chunks: int
    tokens: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as re-embedding needs it."""

    id: str
    text: str
    heading_path: list[str]
    position: int


@dataclass(frozen=True, slots=True)
class DocumentChunk:
    """A chunk as the API shows it (the one a citation names), with its document."""

    id: str
    text: str
    heading_path: list[str]
    position: int
    tokens: int
    document: Document


def collection_of(row: CollectionRow) -> Collection:
    return Collection(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        description=row.description,
        embedding_model=row.embedding_model,
        dimensions=row.dimensions,
        settings=dict(row.settings or {}),
        chunk_count=row.chunk_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
        embedding_version=row.embedding_version or 0,
        reembed=reembed_of(row),
    )


def reembed_of(row: CollectionRow) -> ReembedState | None:
    if row.reembed_status is None or row.reembed_id is None:
        return None
    embedding = dict(row.reembed_embedding) if row.reembed_embedding else None
    return ReembedState(row.reembed_id, row.reembed_status, embedding, row.reembed_error)


def document_of(row: DocumentRow) -> Document:
    return Document(
        id=row.id,
        collection_id=row.collection_id,
        account_id=row.account_id,
        name=row.name,
        content_hash=row.content_hash,
        media_type=row.media_type,
        size_bytes=row.size_bytes,
        source_url=row.source_url,
        metadata=dict(row.doc_metadata or {}),
        status=row.status,
        error=row.error,
        chunks=row.chunks,
        tokens=row.tokens,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
