"""SQLite's keyword index: an FTS5 table beside `chunks` (migration 0002), rowid = chunk key.

A collection's chunk keys form one contiguous range (`keyword.key_range`), and FTS5 seeks a
rowid range inside its posting lists: a search over one collection of a large database reads
only that collection's postings. (A collection column in the MATCH cost ~10 ms over 100,000
rows: its own posting list is the whole collection.)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from alicerce.knowledge import keyword
from alicerce.store.tables import CollectionRow

RANK = "bm25(chunks_fts)"


def insert(session: Session, rows: list[dict[str, Any]]) -> None:
    session.execute(
        sa.text("INSERT INTO chunks_fts (rowid, text) VALUES (:key, :text)"),
        [{"key": row["key"], "text": row["keyword_text"]} for row in rows],
    )


def delete(session: Session, keys: list[int]) -> None:
    for start in range(0, len(keys), 500):
        session.execute(
            sa.text("DELETE FROM chunks_fts WHERE rowid IN :keys").bindparams(
                sa.bindparam("keys", expanding=True)
            ),
            {"keys": keys[start : start + 500]},
        )


def delete_collection(session: Session, number: int) -> None:
    low, high = keyword.key_range(number)
    session.execute(
        sa.text("DELETE FROM chunks_fts WHERE rowid BETWEEN :low AND :high"),
        {"low": low, "high": high},
    )


def search(
    session: Session, numbers: list[int], words: list[str], count: int
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
    match = keyword.fts5_match(list(plan.idfs), match_all=plan.match_all)
    found: dict[int, float] = {}
    for number in numbers:
        low, high = keyword.key_range(number)
        rows = session.execute(
            sa.text(
                f"SELECT rowid, {RANK} FROM chunks_fts WHERE chunks_fts MATCH :m "
                f"AND rowid BETWEEN :low AND :high ORDER BY {RANK} LIMIT :n"
            ),
            {"m": match, "low": low, "high": high, "n": count},
        ).all()
        found.update((int(key), keyword.normalised(-float(s), plan.bound)) for key, s in rows)
    best = sorted(found.items(), key=lambda item: -item[1])[:count]
    return dict(best), plan
