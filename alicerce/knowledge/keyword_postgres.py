"""PostgreSQL's keyword index (`indexes.KeywordIndex`): BM25 computed in SQL from a `tsvector`
column of `chunks`, written with the row.

BM25 is computed from the `tsvector` the application builds from the folded terms (`keyword`),
k1 1.2 and b 0.75 and FTS5's IDF, so it ranks and normalises as SQLite does. Document
frequencies are counted at query time through the GIN index, over the searched collections
only: no statistics table to keep in step, and another account's text never weighs on a ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from alicerce.knowledge import keyword
from alicerce.knowledge.indexes import ChunkValues, Column, OverBudget, Searched

_FREQUENCIES = sa.text(
    "SELECT t, (SELECT count(*) FROM chunks WHERE collection_id = ANY(:ids) "
    "AND tsv @@ CAST(quote_literal(t) AS tsquery)) "
    "FROM unnest(CAST(:terms AS text[])) AS t"
)
_RANKED = sa.text(
    "SELECT c.key, sum(q.idf * (cardinality(u.positions) * (:k1 + 1)) / "
    "(cardinality(u.positions) + :k1 * (1 - :b + :b * c.n_terms / :avgdl))) AS s "
    "FROM chunks c CROSS JOIN LATERAL unnest(c.tsv) AS u(lexeme, positions, weights) "
    "JOIN unnest(CAST(:terms AS text[]), CAST(:idfs AS float8[])) AS q(term, idf) "
    "ON q.term = u.lexeme "
    "WHERE c.collection_id = ANY(:ids) AND c.tsv @@ CAST(:q AS tsquery) "
    "GROUP BY c.key ORDER BY s DESC LIMIT :n"
)


def tsvector_literal(words: list[str]) -> str:
    """A tsvector literal from already-folded terms (no parser in between, so the lexemes are
    exactly `keyword.terms`); at most 256 positions a lexeme, as PostgreSQL keeps."""
    positions: dict[str, list[int]] = {}
    for index, term in enumerate(words, start=1):
        held = positions.setdefault(term, [])
        if len(held) < 256:
            held.append(min(index, 16383))
    return " ".join(f"'{term}':{','.join(map(str, at))}" for term, at in positions.items())


def _tsv(row: ChunkValues) -> str:
    return tsvector_literal(row["terms"])


class PostgresKeywords:
    """`indexes.KeywordIndex` on PostgreSQL: its side is the `tsv` column, so rows come and go
    with the chunks'. It ranks the whole match (FTS5's posting budget does not apply)."""

    columns: tuple[Column, ...] = (Column("tsv", "tsvector", _tsv),)

    def insert(self, session: Session, rows: Sequence[ChunkValues]) -> None:
        """Nothing: `tsv` went in with the rows."""

    def delete(self, session: Session, keys: list[int]) -> None:
        """Nothing: `tsv` goes with the rows."""

    def delete_collection(self, session: Session, number: int) -> None:
        """Nothing: `tsv` goes with the rows."""

    def search(
        self,
        connection: sa.Connection,
        owned: Sequence[Searched],
        totals: tuple[int, int],
        words: list[str],
        count: int,
        *,
        over_budget: OverBudget,
    ) -> tuple[dict[int, float], keyword.KeywordPlan | None]:
        """`totals`: the chunks and keyword terms of the searched collections."""
        rows_total, terms_total = int(totals[0]), int(totals[1])
        if not rows_total:
            return {}, None
        ids = [row.id for row in owned]
        frequencies = {
            str(term): int(df)
            for term, df in connection.execute(_FREQUENCIES, {"ids": ids, "terms": words}).all()
        }
        plan = keyword.plan(frequencies, rows_total, terms_total / rows_total)
        if plan is None:
            return {}, None
        searched = list(plan.idfs)
        tsquery = (" & " if plan.match_all else " | ").join(f"'{term}'" for term in searched)
        params: dict[str, Any] = {
            "k1": keyword.K1,
            "b": keyword.B,
            "avgdl": plan.avgdl,
            "terms": searched,
            "idfs": [plan.idfs[term] for term in searched],
            "ids": ids,
            "q": tsquery,
            "n": count,
        }
        rows = connection.execute(_RANKED, params).all()
        return {int(key): keyword.normalised(float(s), plan.bound) for key, s in rows}, plan
