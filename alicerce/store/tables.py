"""The schema. Changes go through a new Alembic migration in `migrations/versions/`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine


class _Json(TypeDecorator[Any]):
    """JSON, as JSONB on PostgreSQL: `JSON().with_variant(JSONB(), "postgresql")`, but with the
    PostgreSQL dialect imported only when a PostgreSQL database is used (it is a tenth of the
    schema's import, and every CLI command imports the schema)."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


JsonType = _Json()
# Money is kept as decimal text: SQLite has no exact decimal type (its NUMERIC is a float), and
# sums are computed exactly as sum(quantity * unit_price) (see `usage.py`), never by adding floats.
Money = String(64)


class Base(DeclarativeBase):
    pass


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # NULL only for the operator's root key, which belongs to no account.
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(32))
    gateways: Mapped[list[str] | None] = mapped_column(JsonType)
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    monthly_budget: Mapped[str | None] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # NULL: never


class GatewayRow(Base):
    __tablename__ = "gateways"
    __table_args__ = (UniqueConstraint("account_id", "name", name="uq_gateways_account_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # The gateway's definition without secrets; the upstream key is kept encrypted apart.
    spec: Mapped[dict[str, Any]] = mapped_column(JsonType)
    endpoint_api_key: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RequestLogRow(Base):
    """One row per inference request, whatever its outcome (SPEC section 5)."""

    __tablename__ = "request_log"
    __table_args__ = (
        Index("ix_request_log_account_created", "account_id", "created_at"),
        Index("ix_request_log_gateway_created", "gateway_id", "created_at"),
        Index("ix_request_log_account_id", "account_id", "id"),  # its pages (migration 0008)
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(36))
    key_id: Mapped[str | None] = mapped_column(String(36))
    gateway_id: Mapped[str | None] = mapped_column(String(36))
    model: Mapped[str | None] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(64))
    stream: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    tokens_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    amount: Mapped[str] = mapped_column(Money, default="0")
    line_items: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    request_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonType)
    # Upstream tries that failed before the answer (retries, fallbacks), or None: none failed.
    attempts: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonType)
    # `@auto` only: how it was routed (`generation_context.routing`), or None (migration 0009).
    routing: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LineItemRow(Base):
    """The usage ledger: one row per priced line item, written with its request's record."""

    __tablename__ = "line_items"
    __table_args__ = (
        Index("ix_line_items_account_created", "account_id", "created_at"),
        Index("ix_line_items_key_created", "key_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), index=True)
    account_id: Mapped[str | None] = mapped_column(String(36))
    key_id: Mapped[str | None] = mapped_column(String(36))
    gateway_id: Mapped[str | None] = mapped_column(String(36))
    model: Mapped[str | None] = mapped_column(String(200))  # its request's (migration 0006)
    sku: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(BigInteger)
    unit_price: Mapped[str] = mapped_column(Money)
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# -- knowledge collections (migration 0002) ----------------------------------------------------
# Keyword indexes live beside these tables and are written with them in one transaction: on
# SQLite the FTS5 table `chunks_fts` (rowid = chunks.key), on PostgreSQL the `chunks.tsv`
# column (and `chunks.embedding` when pgvector is installed). Both are created in the migration
# only, so they do not appear here.


class CollectionRow(Base):
    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("account_id", "name", name="uq_collections_account_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    embedding_model: Mapped[str] = mapped_column(String(200))
    dimensions: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # Chunk keys are `number << 40 | n`, n counting up from `next_key`: each collection owns
    # one contiguous range of keys, which keyword search uses to keep to its collections.
    number: Mapped[int] = mapped_column(BigInteger, unique=True)
    next_key: Mapped[int] = mapped_column(BigInteger, default=0)
    # Bumped in every transaction that changes the collection's chunks, so each process can tell
    # cheaply whether its in-memory vector index is stale.
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    chunk_count: Mapped[int] = mapped_column(BigInteger, default=0)
    term_count: Mapped[int] = mapped_column(BigInteger, default=0)  # for BM25's average length
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Migration 0007. Moved at each swap of the vectors for another embedder: a document
    # embedded before it is not written after it (`knowledge.reembeds`).
    embedding_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The re-embedding asked for and not done yet, kept so a restart resumes it: its token
    # (a new one at each claim), `queued` | `running` | `failed` (NULL: none), the target
    # embedder (the endpoint's settings; NULL for the local model) and why it failed.
    reembed_id: Mapped[str | None] = mapped_column(String(36))
    reembed_status: Mapped[str | None] = mapped_column(String(16))
    reembed_embedding: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    reembed_error: Mapped[str | None] = mapped_column(Text)


class DocumentRow(Base):
    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("collection_id", "content_hash", name="uq_documents_collection_hash"),
        Index("ix_documents_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    collection_id: Mapped[str] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str | None] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    source_url: Mapped[str | None] = mapped_column(Text)
    doc_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonType)
    status: Mapped[str] = mapped_column(String(16))  # queued, indexing, ready, failed
    error: Mapped[str | None] = mapped_column(Text)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DocumentSourceRow(Base):
    """A document's original bytes, kept until it is indexed so a restart can resume."""

    __tablename__ = "document_sources"

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ChunkRow(Base):
    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_collection_key", "collection_id", "key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The chunk's integer key in the vector and keyword indexes (FTS5 rowid, usearch keys):
    # `collection.number << 40 | n`.
    key: Mapped[int] = mapped_column(BigInteger, unique=True)
    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    collection_id: Mapped[str] = mapped_column(String(36))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    heading_path: Mapped[list[str]] = mapped_column(JsonType)
    tokens: Mapped[int] = mapped_column(Integer)
    n_terms: Mapped[int] = mapped_column(Integer)  # keyword terms, BM25's document length
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, unit length: the truth
