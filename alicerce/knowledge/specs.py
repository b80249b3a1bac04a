"""The JSON bodies of the knowledge routes, validated by hand into 400s (never FastAPI's 422)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from alicerce.knowledge.modes import Mode
from alicerce.validation import LongName, Name, Strict, parse_body


class EmbeddingEndpoint(Strict):
    """An OpenAI-compatible `/embeddings` server for one collection (bring your own)."""

    base_url: str = Field(min_length=1, max_length=2000)
    api_key: str | None = Field(default=None, max_length=4000)
    model: str = Field(min_length=1, max_length=200)
    dimensions: int = Field(ge=1, le=8192)
    headers: dict[str, str] | None = None
    query_prefix: str = Field(default="", max_length=100)
    passage_prefix: str = Field(default="", max_length=100)


class Fusion(Strict):
    """How hybrid search merges the vector and keyword rankings (see `knowledge.fusion`)."""

    method: Literal["rrf", "convex"] = "convex"  # beats RRF in bench/retrieval_eval.py
    vector_weight: float = Field(default=0.5, ge=0, le=1)
    rrf_k: int = Field(default=60, ge=1, le=1000)


class CollectionCreate(Strict):
    name: Name
    description: str = Field(default="", max_length=10_000)
    embedding: EmbeddingEndpoint | None = None
    fusion: Fusion | None = None

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class CollectionUpdate(Strict):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)


class TextDocument(Strict):
    name: LongName
    content: str = Field(min_length=1)
    metadata: dict[str, Any] | None = None
    source_url: str | None = Field(default=None, max_length=2000)
    media_type: str | None = Field(default=None, max_length=200)


class SearchRequest(Strict):
    query: str
    top_k: int = Field(default=5, ge=1, le=50)
    mode: Mode = "hybrid"
    min_score: float = Field(default=0.0, ge=0, le=1)


class ReembedRequest(Strict):
    """The embedder to move the collection to; none means the local model."""

    embedding: EmbeddingEndpoint | None = None


parse = parse_body  # the name the knowledge modules know it by
