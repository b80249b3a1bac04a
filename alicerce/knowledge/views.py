"""Collections and documents as JSON objects: the shapes the API answers and `alicerce
collections --json` prints, defined once so both say the same thing."""

from __future__ import annotations

from typing import Any

from alicerce.clock import rfc3339
from alicerce.embeddings import LOCAL_DIMENSIONS, LOCAL_EMBEDDING_MODEL
from alicerce.knowledge.records import Collection, Document, DocumentChunk, ReembedState
from alicerce.knowledge.specs import Fusion


def collection_view(collection: Collection) -> dict[str, Any]:
    endpoint = collection.settings.get("embedding")
    embedding: dict[str, Any] = {
        "model": collection.embedding_model,
        "dimensions": collection.dimensions,
    }
    if endpoint:
        embedding |= {
            "base_url": endpoint["base_url"],
            "api_key_set": bool(endpoint.get("api_key_encrypted")),
        }
    return {
        "id": collection.id,
        "object": "collection",
        "name": collection.name,
        "description": collection.description,
        "embedding": embedding,
        "chunks": collection.chunk_count,
        "fusion": collection.settings.get("fusion") or Fusion().model_dump(),
        "reembed": _reembed_view(collection.reembed),
        "created_at": rfc3339(collection.created_at),
        "updated_at": rfc3339(collection.updated_at),
    }


def _target(embedding: dict[str, Any] | None) -> dict[str, Any]:
    """The embedder a re-embedding moves to, as the API names it (never its key)."""
    if not embedding:
        return {"model": LOCAL_EMBEDDING_MODEL, "dimensions": LOCAL_DIMENSIONS}
    return {"model": embedding["model"], "dimensions": int(embedding["dimensions"])}


def _reembed_view(state: ReembedState | None) -> dict[str, Any] | None:
    """A re-embedding not done yet (`queued`, `running`, or `failed` with its `error`);
    None once done or when there was none."""
    if state is None:
        return None
    return {"status": state.status, "embedding": _target(state.embedding), "error": state.error}


def reembed_job_view(collection_id: str, state: ReembedState) -> dict[str, Any]:
    """What `POST .../reembed` (and its retry) answer."""
    return {
        "object": "collection.reembed",
        "collection_id": collection_id,
        "status": state.status,
        "embedding": _target(state.embedding),
    }


def document_view(document: Document) -> dict[str, Any]:
    return {
        "id": document.id,
        "object": "document",
        "collection_id": document.collection_id,
        "name": document.name,
        "status": document.status,
        "chunks": document.chunks,
        "tokens": document.tokens,
        "error": document.error,
        "media_type": document.media_type,
        "size_bytes": document.size_bytes,
        "content_hash": document.content_hash,
        "source_url": document.source_url,
        "metadata": document.metadata,
        "created_at": rfc3339(document.created_at),
        "updated_at": rfc3339(document.updated_at),
    }


def chunk_view(chunk: DocumentChunk) -> dict[str, Any]:
    """One chunk, whole, as a citation names it (`headings`, as citations say), with its
    document."""
    document = chunk.document
    return {
        "id": chunk.id,
        "object": "chunk",
        "collection_id": document.collection_id,
        "document_id": document.id,
        "document_name": document.name,
        "text": chunk.text,
        "headings": chunk.heading_path,
        "position": chunk.position,
        "tokens": chunk.tokens,
        "document": document_view(document),
    }
