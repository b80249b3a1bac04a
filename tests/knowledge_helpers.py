"""What the knowledge store's tests share: a few short documents, the real e5 model (each text
embedded once per test session), and the steps of writing and searching them."""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from alicerce.clock import utcnow
from alicerce.embeddings import (
    LOCAL_DIMENSIONS,
    LOCAL_EMBEDDING_MODEL,
    EmbeddingBatch,
    Kind,
    LocalE5Embedder,
)
from alicerce.knowledge import keyword
from alicerce.knowledge.chunking import with_headings
from alicerce.knowledge.store import Collection, KnowledgeStore
from alicerce.store import Database
from alicerce.store.tables import AccountRow, ChunkRow

DOCS = {
    "fotossintese.md": [
        "A fotossíntese converte luz solar em energia química nas plantas.",
        "A organização das células vegetais depende dos cloroplastos.",
    ],
    "paris.md": [
        "The Eiffel Tower is located in Paris and was completed in 1889.",
        "Refunds are processed within five business days after the return arrives.",
    ],
    "senha.md": ["Para redefinir sua senha, clique em 'Esqueci minha senha' na tela de login."],
}


@dataclass
class Piece:
    """What `write_chunks` reads of a chunk."""

    text: str
    position: int
    tokens: int = 12
    heading_path: list[str] = field(default_factory=lambda: ["Guia"])


class CachedEmbedder(LocalE5Embedder):
    """The real model, each text embedded once: the tests repeat the same few."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[tuple[str, str], np.ndarray] = {}

    def embed_sync(self, texts: Sequence[str], *, kind: Kind) -> EmbeddingBatch:
        missing = [text for text in texts if (kind, text) not in self._seen]
        if missing:
            fresh = super().embed_sync(missing, kind=kind).vectors
            self._seen.update({(kind, text): row for text, row in zip(missing, fresh, strict=True)})
        vectors = np.vstack([self._seen[(kind, text)] for text in texts])
        return EmbeddingBatch(vectors, 10 * len(texts))


def new_account(db: Database) -> str:
    account_id = str(uuid.uuid4())
    now = utcnow()
    with db.session() as session:
        session.add(AccountRow(id=account_id, name="acme", created_at=now, updated_at=now))
    return account_id


def new_collection(store: KnowledgeStore, account_id: str, **settings: Any) -> Collection:
    return store.create_collection(
        account_id,
        name="kb-" + uuid.uuid4().hex[:6],
        description=None,
        embedding_model=LOCAL_EMBEDDING_MODEL,
        dimensions=LOCAL_DIMENSIONS,
        settings=settings,
    )


def ingest(
    store: KnowledgeStore,
    embedder: LocalE5Embedder,
    collection: Collection,
    name: str,
    texts: list[str],
) -> str:
    document, created = store.add_document(
        collection.account_id,
        collection.id,
        name=name,
        data="\n\n".join(texts).encode(),
        media_type="text/markdown",
        source_url=None,
        metadata={"file": name},
    )
    assert created
    assert store.claim(document)
    batch = embedder.embed_sync(texts, kind="passage")
    pieces = [Piece(text, position) for position, text in enumerate(texts)]
    store.write_chunks(document.id, pieces, batch.vectors, batch.tokens)
    return document.id


def search(
    store: KnowledgeStore,
    embedder: LocalE5Embedder,
    account_id: str,
    collection_ids: list[str],
    query: str,
    mode: Any = "hybrid",
    top_k: int = 3,
) -> list[Any]:
    vector = embedder.embed_sync([query], kind="query").vectors[0]
    return store.search(
        account_id, collection_ids, query=query, vector=vector, top_k=top_k, mode=mode
    )


def chunks_of(db: Database, collection_id: str) -> int:
    with db.session() as session:
        query = sa.select(sa.func.count()).where(ChunkRow.collection_id == collection_id)
        return int(session.scalar(query) or 0)


def term_counts(db: Database) -> dict[str, int]:
    with db.session() as session:
        rows = session.execute(sa.text("SELECT term, chunks FROM keyword_terms")).all()
    return {str(term): int(n) for term, n in rows}


def counted_from_chunks(db: Database) -> dict[str, int]:
    """What `keyword_terms` must hold: in how many chunks each term is, recounted."""
    counts: Counter[str] = Counter()
    with db.session() as session:
        for heading_path, text in session.execute(sa.select(ChunkRow.heading_path, ChunkRow.text)):
            counts.update(set(keyword.terms(with_headings(heading_path, text))))
    return dict(counts)


@functools.cache
def shared_embedder() -> CachedEmbedder:
    """One model for the session's tests (loading it is what costs)."""
    return CachedEmbedder()
