"""Collections and documents as JSON objects: the shapes the API answers and `alicerce
collections --json` prints, defined once so both say the same thing."""

from __future__ import annotations

from typing import Any

from alicerce.clock import rfc3339
from alicerce.knowledge.records import Collection, Document, DocumentChunk
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
        "created_at": rfc3339(collection.created_at),
        "updated_at": rfc3339(collection.updated_at),
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
