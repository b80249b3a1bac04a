"""The two seams of knowledge storage: a keyword index and a vector index.

`store` writes chunks and `search` reads them without knowing the database: each backend's
differences live in one implementation of each interface (`keyword_fts5`, `keyword_postgres`,
`vectors_graph`, `vectors_pgvector`), chosen once when the store is made (`backends`).

The `chunks` table is always the truth (text, terms count, float32 `vector`); an index keeps its
side either in a table of its own (FTS5) or in columns of `chunks` written in the same statement
as the row (PostgreSQL's `tsv`, pgvector's `embedding`: `Column`). Every write happens in the
store's transaction, so a document is searchable completely or not at all; an index kept in the
process (the HNSW graph) hears of a change only after its commit (`VectorIndex.applied`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from alicerce.knowledge.keyword import KeywordPlan

# What keyword search does with a query of common words only (over `keyword.plan`'s budget):
# hybrid skips the index (it scores the vector candidates by BM25 from their text), keyword-only
# search matches the newest chunks only.
OverBudget = Literal["skip", "newest"]
# A chunk row being written (`KnowledgeStore._chunk_row`): its columns, and what the indexes
# build theirs from: "keyword_text" (text with headings), "terms" (its keyword terms, folded)
# and "embedding" (the float32 vector).
ChunkValues = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Column:
    """A column of `chunks` that an index keeps, written with the row (INSERT) or the vector
    (UPDATE): its value is built as text in Python and cast in SQL."""

    name: str
    sql_type: str  # e.g. "tsvector", "vector"
    value: Callable[[ChunkValues], str]

    @property
    def param(self) -> str:
        return f"{self.name}_text"

    @property
    def sql(self) -> str:
        return f"CAST(:{self.param} AS {self.sql_type})"


@dataclass(frozen=True, slots=True)
class Searched:
    """What a search reads of each collection it may search (those the account owns)."""

    id: str
    dimensions: int
    generation: int
    number: int
    chunk_count: int
    term_count: int
    next_key: int
    embedding_model: str
    settings: dict[str, Any]


class KeywordIndex(Protocol):
    """BM25 over the chunks' text (with their heading path), keyed by chunk key."""

    columns: tuple[Column, ...]  # of `chunks`, where its side is kept with the row

    def insert(self, session: Session, rows: Sequence[ChunkValues]) -> None:
        """After the chunk rows were inserted: the index's own rows of them, if it has any."""

    def delete(self, session: Session, keys: list[int]) -> None:
        """Before the chunk rows of `keys` are deleted."""

    def delete_collection(self, session: Session, number: int) -> None:
        """Before the collection's chunk rows are deleted."""

    def search(
        self,
        connection: sa.Connection,
        owned: Sequence[Searched],
        totals: tuple[int, int],
        words: list[str],
        count: int,
        *,
        over_budget: OverBudget,
    ) -> tuple[dict[int, float], KeywordPlan | None]:
        """{key: normalised BM25} of the best `count` chunks of `owned` for the query terms
        `words`, and the plan that scored them. `totals`: the chunks and terms the index keeps
        its statistics over, as the search's `owned` query reads them (`backends.SearchSql`)."""
        ...


class VectorIndex(Protocol):
    """Nearest neighbours by cosine among the chunks' unit vectors, keyed by chunk key."""

    columns: tuple[Column, ...]  # of `chunks`, where it keeps the vector with the row

    def applied(
        self,
        collection_id: str,
        before: int,
        after: int,
        *,
        added: tuple[np.ndarray, np.ndarray] | None = None,
        removed: np.ndarray | None = None,
    ) -> None:
        """A change this process committed, moving the collection's generation from `before`
        to `after`: vectors of keys written, or keys removed."""

    def drop(self, collection_id: str) -> None:
        """After the commit that deleted the collection or replaced all of its vectors."""

    def nearest(
        self, connection: sa.Connection, owned: Sequence[Searched], vector: np.ndarray, count: int
    ) -> dict[int, float]:
        """The `count` best cosines over the collections, {key: cosine}."""
        ...

    def cosines(
        self,
        connection: sa.Connection,
        owned: Sequence[Searched],
        vector: np.ndarray,
        keys: list[int],
    ) -> dict[int, float]:
        """Exact cosines of `vector` with the given chunks (those keyword search found)."""
        ...

    def save_all(self) -> None:
        """At shutdown: whatever the index keeps outside the database, saved."""
