"""SQLite's keyword index (`indexes.KeywordIndex`): an FTS5 table beside `chunks` (migration
0002), rowid = chunk key, and the term statistics BM25 needs (`keyword_terms`, migration 0003),
moved in the same transaction.

A collection's chunk keys form one contiguous range (`keyword.key_range`), and FTS5 seeks a
rowid range inside its posting lists: a search over one collection of a large database reads
only that collection's postings. (A collection column in the MATCH cost ~10 ms over 100,000
rows: its own posting list is the whole collection.)

Document frequencies come from `keyword_terms` (a primary-key lookup a term) rather than from
`fts5vocab`, which walks a term's whole posting list to count it (2-12 ms for a common word over
100,000 chunks). The table counts, over every collection as FTS5's own bm25() does, the FTS5 rows
whose text holds each term as `keyword.terms` folds it; a removal re-reads the rows' FTS5 text,
so it takes away exactly what the insertion added.

The cost of a search is bounded by `keyword.plan`'s budget: FTS5 scores every row a MATCH
finds (~1.2-2.5 us each), and an AND walks every posting of its terms (~0.08 us each) with their
positions. A term's rows in the searched collections are estimated as its document frequency
times their share of the index (exact when they are the whole index). A plan of common words
only (`within_budget` false) is not matched by hybrid search at all, which scores the vector
candidates by BM25 from their text anyway; keyword-only search matches it in each collection's
newest keys only, as many as hold about `budget` of its terms' postings: it finds some chunks
holding every term, not the best of all of them.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from alicerce.knowledge import keyword
from alicerce.knowledge.indexes import ChunkValues, Column, OverBudget, Searched

RANK = "bm25(chunks_fts)"

_FREQUENCIES = sa.text(
    "SELECT term, chunks FROM keyword_terms WHERE term IN (SELECT value FROM json_each(:terms))"
)
_RANKED = sa.text(
    f"SELECT rowid, {RANK} FROM chunks_fts WHERE chunks_fts MATCH :m "
    f"AND rowid BETWEEN :low AND :high ORDER BY {RANK} LIMIT :n"
)
_COUNT_ADD = sa.text(
    "INSERT INTO keyword_terms (term, chunks) VALUES (:term, :n) "
    "ON CONFLICT (term) DO UPDATE SET chunks = chunks + excluded.chunks"
)
_COUNT_REMOVE = sa.text("UPDATE keyword_terms SET chunks = chunks - :n WHERE term = :term")
_COUNT_DROP = sa.text("DELETE FROM keyword_terms WHERE term = :term AND chunks <= 0")
_TEXTS_OF = sa.text("SELECT text FROM chunks_fts WHERE rowid IN :keys").bindparams(
    sa.bindparam("keys", expanding=True)
)
_DELETE = sa.text("DELETE FROM chunks_fts WHERE rowid IN :keys").bindparams(
    sa.bindparam("keys", expanding=True)
)
_INSERT = sa.text("INSERT INTO chunks_fts (rowid, text) VALUES (:key, :text)")
_COLLECTION_TEXTS = sa.text(
    "SELECT rowid, text FROM chunks_fts WHERE rowid > :after AND rowid <= :high "
    "ORDER BY rowid LIMIT :n"
)
_DELETE_RANGE = sa.text("DELETE FROM chunks_fts WHERE rowid BETWEEN :low AND :high")
_BATCH = 500


def _distinct_terms(texts: Iterable[str]) -> Counter[str]:
    """In how many of `texts` each term appears."""
    return _chunks_holding(keyword.terms(text) for text in texts)


def _chunks_holding(term_lists: Iterable[list[str]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for words in term_lists:
        counts.update(set(words))
    return counts


def _count(session: Session, counts: Counter[str], sign: int) -> None:
    if not counts:
        return
    params = [{"term": term, "n": n} for term, n in counts.items()]
    if sign > 0:
        session.execute(_COUNT_ADD, params)
    else:
        session.execute(_COUNT_REMOVE, params)
        session.execute(_COUNT_DROP, [{"term": term} for term in counts])


class Fts5Keywords:
    """`indexes.KeywordIndex` on SQLite. `budget`: the postings a search may score in a
    collection (`keyword.plan`)."""

    columns: tuple[Column, ...] = ()  # its rows are in `chunks_fts`

    def __init__(self, budget: int = keyword.POSTINGS_BUDGET) -> None:
        self.budget = budget

    def insert(self, session: Session, rows: Sequence[ChunkValues]) -> None:
        session.execute(_INSERT, [{"key": row["key"], "text": row["keyword_text"]} for row in rows])
        # `terms` are `keyword.terms(keyword_text)`, what a removal will count from the FTS5 text.
        _count(session, _chunks_holding(row["terms"] for row in rows), +1)

    def delete(self, session: Session, keys: list[int]) -> None:
        for start in range(0, len(keys), _BATCH):
            params = {"keys": keys[start : start + _BATCH]}
            _count(session, _distinct_terms(session.execute(_TEXTS_OF, params).scalars()), -1)
            session.execute(_DELETE, params)

    def delete_collection(self, session: Session, number: int) -> None:
        low, high = keyword.key_range(number)
        counts: Counter[str] = Counter()
        after = low - 1
        while True:  # a batch at a time: a large collection's text is not held in memory at once
            rows = session.execute(
                _COLLECTION_TEXTS, {"after": after, "high": high, "n": 2_000}
            ).all()
            if not rows:
                break
            counts += _distinct_terms(text for _, text in rows)
            after = rows[-1][0]
        _count(session, counts, -1)
        session.execute(_DELETE_RANGE, {"low": low, "high": high})

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
        """See the module's docstring for the budget. `totals`: the chunks and terms of the
        whole index, which FTS5 keeps its statistics over (every collection): the IDF and the
        average length we normalise with must be over the same rows."""
        rows_total, terms_total = int(totals[0]), int(totals[1])
        if not rows_total:
            return {}, None
        frequencies = document_frequencies(connection, words)
        budget = self.budget
        plan = keyword.plan(
            frequencies,
            rows_total,
            terms_total / rows_total,
            searched_rows=sum(row.chunk_count for row in owned),
            budget=budget,
        )
        if plan is None or (not plan.within_budget and over_budget == "skip"):
            return {}, plan
        match = keyword.fts5_match(list(plan.idfs), match_all=plan.match_all)
        postings = sum(frequencies[term] for term in plan.idfs)  # over every collection
        found: dict[int, float] = {}
        for row in owned:
            low, high = keyword.key_range(row.number)
            if not plan.within_budget:  # the newest keys, where its postings add up to the budget
                here = postings * row.chunk_count / rows_total
                low += row.next_key - math.ceil(row.next_key * min(1.0, budget / max(here, 1.0)))
            ranked = connection.execute(
                _RANKED, {"m": match, "low": low, "high": high, "n": count}
            ).all()
            found.update((int(key), keyword.normalised(-float(s), plan.bound)) for key, s in ranked)
        best = sorted(found.items(), key=lambda item: -item[1])[:count]
        return dict(best), plan


def document_frequencies(connection: sa.Connection, words: list[str]) -> dict[str, int]:
    """{term: chunks holding it} over the whole index, for the `words` it knows."""
    found = connection.execute(_FREQUENCIES, {"terms": json.dumps(words)})
    return {str(term): int(df) for term, df in found}
