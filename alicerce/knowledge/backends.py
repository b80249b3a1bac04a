"""Which keyword and vector index a database gets, and the search's own SQL on it: every
difference between the backends is decided here, once, when the store is made.

| database                    | keywords (`KeywordIndex`)        | vectors (`VectorIndex`)        |
| --------------------------- | -------------------------------- | ------------------------------ |
| SQLite                      | FTS5 (`keyword_fts5`)            | HNSW graphs (`vectors_graph`)  |
| PostgreSQL with pgvector    | BM25 in SQL (`keyword_postgres`) | pgvector (`vectors_pgvector`)  |
| PostgreSQL without pgvector | BM25 in SQL                      | HNSW graphs, over `bytea`      |

pgvector is used when the schema has the `embedding` column (migration 0002 adds it when the
server had the extension), so the store must be made after the migrations ran.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from alicerce.knowledge import keyword
from alicerce.knowledge.indexes import KeywordIndex, VectorIndex
from alicerce.knowledge.keyword_fts5 import Fts5Keywords
from alicerce.knowledge.keyword_postgres import PostgresKeywords
from alicerce.knowledge.vectors_graph import GraphVectors
from alicerce.knowledge.vectors_pgvector import PgvectorVectors
from alicerce.store import Database

# The columns a search reads of the collections it may search; `all_chunks` and `all_terms` are
# what the keyword index keeps its statistics over (FTS5: every collection; PostgreSQL's BM25:
# the searched ones).
_OWNED = (
    "SELECT id, dimensions, generation, number, chunk_count, term_count, next_key, "
    "embedding_model, settings, "
)
_ROWS = (
    "SELECT c.key, c.id, c.collection_id, c.document_id, c.text, c.heading_path, "
    "c.position, d.name, d.metadata AS doc_metadata, d.source_url FROM chunks c "
)


def _decoded(value: Any) -> Any:
    return None if value is None else json.loads(value)


def _as_json(items: Sequence[Any]) -> Any:
    return json.dumps(list(items))


def _as_array(items: Sequence[Any]) -> Any:
    return list(items)


def _as_read(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class SearchSql:
    """A search's own queries, as text compiled once per backend rather than ORM statements built
    for each search: lists go in as one parameter (`values`), so the SQL never changes with
    their length. JSON columns come back raw and are decoded (`json`) only for
    the rows that need them."""

    owned: sa.TextClause
    rows: sa.TextClause
    values: Callable[[Sequence[Any]], Any]
    json: Callable[[Any], Any]


SQLITE_SQL = SearchSql(
    owned=sa.text(
        _OWNED + "(SELECT coalesce(sum(chunk_count), 0) FROM collections) AS all_chunks, "
        "(SELECT coalesce(sum(term_count), 0) FROM collections) AS all_terms FROM collections "
        "WHERE account_id = :account AND id IN (SELECT value FROM json_each(:ids))"
    ),
    # The CROSS JOIN keeps this order (SQLite cannot tell how short the key list is, and walked
    # every ready document through the status index).
    rows=sa.text(
        _ROWS + "CROSS JOIN documents d ON d.id = c.document_id "
        "WHERE c.key IN (SELECT value FROM json_each(:keys)) "
        "AND c.collection_id IN (SELECT value FROM json_each(:ids)) AND d.status = 'ready'"
    ),
    values=_as_json,
    json=_decoded,
)
POSTGRES_SQL = SearchSql(
    owned=sa.text(
        _OWNED + "sum(chunk_count) OVER () AS all_chunks, sum(term_count) OVER () AS all_terms "
        "FROM collections WHERE account_id = :account AND id = ANY(:ids)"
    ),
    rows=sa.text(
        _ROWS + "JOIN documents d ON d.id = c.document_id "
        "WHERE c.key = ANY(:keys) AND c.collection_id = ANY(:ids) AND d.status = 'ready'"
    ),
    values=_as_array,
    json=_as_read,  # psycopg decodes JSON columns itself
)


@dataclass(frozen=True, slots=True)
class Backend:
    keywords: KeywordIndex
    vectors: VectorIndex
    sql: SearchSql


def open_backend(
    db: Database, *, index_dir: Path | None = None, keyword_budget: int = keyword.POSTINGS_BUDGET
) -> Backend:
    """The indexes for `db`. `index_dir`: where in-process graphs are saved and restored from;
    `keyword_budget`: the postings an FTS5 search may score in a collection (`keyword.plan`)."""
    if db.is_sqlite:
        return Backend(Fts5Keywords(keyword_budget), GraphVectors(db, index_dir), SQLITE_SQL)
    vectors: VectorIndex = PgvectorVectors() if _has_pgvector(db) else GraphVectors(db, index_dir)
    return Backend(PostgresKeywords(), vectors, POSTGRES_SQL)


def _has_pgvector(db: Database) -> bool:
    """Whether the schema has the pgvector `embedding` column."""
    with db.session() as session:
        found = session.execute(
            sa.text(
                "SELECT 1 FROM information_schema.columns "
                "WHERE table_name = 'chunks' AND column_name = 'embedding'"
            )
        ).first()
    return found is not None
