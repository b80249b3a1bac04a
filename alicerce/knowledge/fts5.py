"""SQLite's keyword index: an FTS5 table beside `chunks` (migration 0002), rowid = chunk key.

Each row carries its collection as one token in a second column (weighted 0 in `bm25()`), so
a search restricts itself to its collections inside the MATCH, where FTS5 intersects posting
lists, instead of filtering every matched row afterwards.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from alicerce.knowledge import keyword
from alicerce.store.tables import CollectionRow

RANK = "bm25(chunks_fts, 1.0, 0.0)"


def insert(session: Session, rows: list[dict[str, Any]], collection_id: str) -> None:
    token = keyword.collection_token(collection_id)
    session.execute(
        sa.text("INSERT INTO chunks_fts (rowid, text, collection) VALUES (:key, :text, :c)"),
        [{"key": row["key"], "text": row["text"], "c": token} for row in rows],
    )


def delete(session: Session, keys: list[int]) -> None:
    for start in range(0, len(keys), 500):
        session.execute(
            sa.text("DELETE FROM chunks_fts WHERE rowid IN :keys").bindparams(
                sa.bindparam("keys", expanding=True)
            ),
            {"keys": keys[start : start + 500]},
        )


def delete_collection(session: Session, collection_id: str) -> None:
    session.execute(
        sa.text(
            "DELETE FROM chunks_fts WHERE rowid IN "
            "(SELECT key FROM chunks WHERE collection_id = :c)"
        ),
        {"c": collection_id},
    )


def search(
    session: Session, collection_ids: list[str], words: list[str], count: int
) -> tuple[dict[int, float], keyword.KeywordPlan | None]:
    """{key: normalised BM25} of the best `count` chunks, and the plan that scored them."""
    # FTS5 keeps its statistics over the whole table (every collection): the IDF and the
    # average length we normalise with must be over the same rows.
    rows_total, terms_total = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(CollectionRow.chunk_count), 0),
            sa.func.coalesce(sa.func.sum(CollectionRow.term_count), 0),
        )
    ).one()
    if not rows_total:
        return {}, None
    # One `term = ?` lookup a term: fts5vocab answers those from the index, while
    # `term IN (...)` would scan the whole vocabulary.
    lookups = " UNION ALL ".join(
        f"SELECT term, doc FROM chunks_fts_vocab WHERE term = :t{i}" for i in range(len(words))
    )
    frequencies = {
        str(term): int(df)
        for term, df in session.execute(
            sa.text(lookups), {f"t{i}": term for i, term in enumerate(words)}
        ).all()
    }
    plan = keyword.plan(frequencies, int(rows_total), int(terms_total) / int(rows_total))
    if plan is None:
        return {}, None
    match = keyword.fts5_match(
        [keyword.collection_token(c) for c in collection_ids],
        list(plan.idfs),
        match_all=plan.match_all,
    )
    rows = session.execute(
        sa.text(
            f"SELECT rowid, {RANK} FROM chunks_fts WHERE chunks_fts MATCH :m "
            f"ORDER BY {RANK} LIMIT :n"
        ),
        {"m": match, "n": count},
    ).all()
    return {int(key): keyword.normalised(-float(s), plan.bound) for key, s in rows}, plan
