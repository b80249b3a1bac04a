"""PostgreSQL's side of the knowledge store: chunk rows with their `tsvector`, BM25 in SQL, and
pgvector's HNSW search (when migration 0002 found pgvector).

BM25 is computed from the `tsvector` the application builds from the folded terms (`keyword`),
k1 1.2 and b 0.75 and FTS5's IDF, so it ranks and normalises as SQLite does. Document
frequencies are counted at query time through the GIN index, over the searched collections
only: no statistics table to keep in step, and another account's text never weighs on a ranking.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from alicerce.knowledge import keyword

INDEXED_DIMENSIONS = 384  # the HNSW index covers rows of this size (the local model's)


def tsvector_literal(words: list[str]) -> str:
    """A tsvector literal from already-folded terms (no parser in between, so the lexemes are
    exactly `keyword.terms`); at most 256 positions a lexeme, as PostgreSQL keeps."""
    positions: dict[str, list[int]] = {}
    for index, term in enumerate(words, start=1):
        held = positions.setdefault(term, [])
        if len(held) < 256:
            held.append(min(index, 16383))
    return " ".join(f"'{term}':{','.join(map(str, at))}" for term, at in positions.items())


def vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


def insert_chunks(session: Session, rows: list[dict[str, Any]], *, pgvector: bool) -> None:
    columns = (
        "id, key, document_id, collection_id, position, text, heading_path, tokens, "
        "n_terms, vector, tsv" + (", embedding" if pgvector else "")
    )
    values = (
        ":id, :key, :document_id, :collection_id, :position, :text, "
        "CAST(:heading_path AS jsonb), :tokens, :n_terms, :vector, CAST(:tsv AS tsvector)"
        + (", CAST(:embedding AS vector)" if pgvector else "")
    )
    params = [
        {
            **{k: v for k, v in row.items() if k not in ("terms", "embedding", "keyword_text")},
            "heading_path": json.dumps(row["heading_path"]),
            "tsv": tsvector_literal(row["terms"]),
            **({"embedding": vector_literal(row["embedding"])} if pgvector else {}),
        }
        for row in rows
    ]
    session.execute(sa.text(f"INSERT INTO chunks ({columns}) VALUES ({values})"), params)


def nearest(
    connection: sa.Connection,
    collection_ids: list[str],
    dimensions: set[int],
    vector: np.ndarray,
    n: int,
) -> dict[int, float]:
    """pgvector: the `n` best {key: cosine} over the collections."""
    if dimensions == {INDEXED_DIMENSIONS}:  # through the HNSW index (migration 0002)
        connection.execute(sa.text("SET LOCAL hnsw.ef_search = 100"))
        if _iterative_scan(connection):
            connection.execute(sa.text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
        sql = (
            "SELECT key, 1 - (embedding::vector(384) <=> CAST(:v AS vector(384))) FROM chunks "
            "WHERE collection_id = ANY(:ids) AND vector_dims(embedding) = 384 "
            "ORDER BY embedding::vector(384) <=> CAST(:v AS vector(384)) LIMIT :n"
        )
    else:  # other sizes: exact, over the collections' rows
        sql = (
            "SELECT key, 1 - (embedding <=> CAST(:v AS vector)) FROM chunks "
            "WHERE collection_id = ANY(:ids) "
            "ORDER BY embedding <=> CAST(:v AS vector) LIMIT :n"
        )
    params = {"v": vector_literal(vector), "ids": collection_ids, "n": n}
    return {int(k): float(c) for k, c in connection.execute(sa.text(sql), params).all()}


def cosines(connection: sa.Connection, vector: np.ndarray, keys: list[int]) -> dict[int, float]:
    """pgvector: exact cosines of `vector` with the given chunks."""
    rows = connection.execute(
        sa.text(
            "SELECT key, 1 - (embedding <=> CAST(:v AS vector)) FROM chunks WHERE key = ANY(:keys)"
        ),
        {"v": vector_literal(vector), "keys": keys},
    ).all()
    return {int(key): float(cos) for key, cos in rows}


def _iterative_scan(connection: sa.Connection) -> bool:
    """pgvector 0.8 can keep walking the graph until the collection filter is satisfied."""
    version = connection.execute(
        sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    ).scalar()
    major, minor = (int(part) for part in str(version or "0.0").split(".")[:2])
    return (major, minor) >= (0, 8)


def bm25(
    connection: sa.Connection,
    collection_ids: list[str],
    totals: tuple[int, int],
    words: list[str],
    count: int,
) -> tuple[dict[int, float], keyword.KeywordPlan | None]:
    """{key: normalised BM25} of the best `count` chunks, and the plan that scored them;
    `totals`: the chunks and keyword terms of the searched collections."""
    rows_total, terms_total = totals
    if not rows_total:
        return {}, None
    frequencies = {
        str(term): int(df)
        for term, df in connection.execute(
            sa.text(
                "SELECT t, (SELECT count(*) FROM chunks WHERE collection_id = ANY(:ids) "
                "AND tsv @@ CAST(quote_literal(t) AS tsquery)) "
                "FROM unnest(CAST(:terms AS text[])) AS t"
            ),
            {"ids": collection_ids, "terms": words},
        ).all()
    }
    plan = keyword.plan(frequencies, int(rows_total), int(terms_total) / int(rows_total))
    if plan is None:
        return {}, None
    searched = list(plan.idfs)
    tsquery = (" & " if plan.match_all else " | ").join(f"'{term}'" for term in searched)
    sql = (
        "SELECT c.key, sum(q.idf * (cardinality(u.positions) * (:k1 + 1)) / "
        "(cardinality(u.positions) + :k1 * (1 - :b + :b * c.n_terms / :avgdl))) AS s "
        "FROM chunks c CROSS JOIN LATERAL unnest(c.tsv) AS u(lexeme, positions, weights) "
        "JOIN unnest(CAST(:terms AS text[]), CAST(:idfs AS float8[])) AS q(term, idf) "
        "ON q.term = u.lexeme "
        "WHERE c.collection_id = ANY(:ids) AND c.tsv @@ CAST(:q AS tsquery) "
        "GROUP BY c.key ORDER BY s DESC LIMIT :n"
    )
    params: dict[str, Any] = {
        "k1": keyword.K1,
        "b": keyword.B,
        "avgdl": plan.avgdl,
        "terms": searched,
        "idfs": [plan.idfs[term] for term in searched],
        "ids": collection_ids,
        "q": tsquery,
        "n": count,
    }
    rows = connection.execute(sa.text(sql), params).all()
    return {int(key): keyword.normalised(float(s), plan.bound) for key, s in rows}, plan
