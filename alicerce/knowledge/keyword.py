"""Keyword terms and BM25, the same on both backends.

Text is folded the way SQLite's FTS5 tokenizer `unicode61 remove_diacritics 2` folds it (accents
removed, case folded, split on anything that is not a letter or a digit), so a query typed
without accents finds Portuguese text written with them, and the PostgreSQL index, fed the
folded terms, counts the same terms FTS5 does.

A BM25 score has no upper bound and its scale changes with the query, so it is reported as a
fraction of the best score the query could reach: `bm25 / sum(idf(t) * (k1 + 1))` over the query's
terms, in [0, 1]. A chunk matching every query term many times scores near 1; one matching only
a common term scores near 0.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# FTS5's bm25() defaults; PostgreSQL's ranking uses the same so the backends agree.
K1 = 1.2
B = 0.75
MAX_QUERY_TERMS = 32
# Scoring a matched row costs ~1.2-2.5 us in FTS5 and more in SQL: the terms a query searches
# are chosen rarest first while their rows add up to at most this many (see `plan`).
POSTINGS_BUDGET = 2_000

_WORD = re.compile(r"[^\W_]+")
# ASCII text splits the same way 3x faster: every ASCII character but letters and digits made a
# space, then `str.split` (a constant table, never changed).
_ASCII_SEPARATORS = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})
# The combining marks NFKD splits off Latin, Greek and Cyrillic letters (what FTS5's
# remove_diacritics folds); a regex keeps this in C, ~50x faster than a per-character loop.
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(text: str) -> str:
    """Lower case without accents: 'Organização' -> 'organizacao'."""
    if text.isascii():
        return text.lower()
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text)).casefold()


def terms(text: str) -> list[str]:
    """The keyword terms of `text`, in order, repeats kept (a document's term frequencies)."""
    return _split(fold(text))


def _split(folded: str) -> list[str]:
    if folded.isascii():
        return folded.translate(_ASCII_SEPARATORS).split()
    return _WORD.findall(folded)


def query_terms(query: str) -> list[str]:
    """The distinct terms of a query, first occurrence first, at most MAX_QUERY_TERMS."""
    seen: dict[str, None] = {}
    for term in terms(query):
        seen.setdefault(term, None)
    return list(seen)[:MAX_QUERY_TERMS]


def idf(rows: int, containing: int) -> float:
    """FTS5's IDF: a term in more than half the rows would go negative and counts ~nothing."""
    value = math.log((rows - containing + 0.5) / (containing + 0.5))
    return max(value, 1e-6)


def best_score(idfs: Iterable[float]) -> float:
    """The BM25 bound: every term present with a frequency tending to infinity."""
    return sum(value * (K1 + 1) for value in idfs)


def normalised(bm25: float, bound: float) -> float:
    return 0.0 if bound <= 0 else min(1.0, max(0.0, bm25 / bound))


@dataclass(frozen=True, slots=True)
class KeywordPlan:
    """What a keyword search matches and how its scores are normalised."""

    idfs: dict[str, float]  # the searched terms
    bound: float  # over every query term the index knows
    avgdl: float
    match_all: bool  # the rarest term alone is too common: require every searched term
    # The searched terms' rows in the searched collections are known to be within the budget;
    # when False (a query of common words only), the searcher must bound the match itself.
    within_budget: bool = True

    def score(self, text: str) -> float:
        """The normalised BM25 of a text the index did not rank (computed here, same formula).
        Most texts hold none of the searched terms, which a substring test tells without
        splitting them."""
        folded = fold(text)
        present = [term for term in self.idfs if term in folded]
        if not present:
            return 0.0
        words = _split(folded)
        norm = K1 * (1 - B + B * len(words) / self.avgdl)
        raw = 0.0
        for term in present:
            if count := words.count(term):
                raw += self.idfs[term] * count * (K1 + 1) / (count + norm)
        return normalised(raw, self.bound)


def plan(
    frequencies: dict[str, int],
    rows: int,
    avgdl: float,
    *,
    searched_rows: int | None = None,
    budget: int = POSTINGS_BUDGET,
) -> KeywordPlan | None:
    """The terms worth searching, from their document frequencies among `rows` rows.

    Terms in more than half the rows (IDF ~0) are never searched; of the rest, the rarest
    first while their rows add up to `budget`. Leaving out a common term changes the ranking
    little (its IDF is the lowest) and keeps a search over 100,000 chunks in budget. When the
    frequencies are over more rows than are searched (FTS5 counts every collection), a term's
    rows in the searched ones are estimated as their share (`searched_rows / rows`). When the
    rarest term alone passes the budget, every useful term must match, and the plan is not
    `within_budget`."""
    idfs = {term: idf(rows, df) for term, df in frequencies.items() if df > 0}
    if not idfs:
        return None
    bound = best_score(idfs.values())
    useful = sorted((t for t, value in idfs.items() if value > 1e-6), key=frequencies.__getitem__)
    if not useful:
        return None
    share = 1.0 if searched_rows is None else min(1.0, searched_rows / rows)
    searched, postings = [useful[0]], frequencies[useful[0]] * share
    for term in useful[1:]:
        if postings + frequencies[term] * share > budget:
            break
        searched.append(term)
        postings += frequencies[term] * share
    within_budget = postings <= budget
    match_all = not within_budget and len(useful) > 1
    if match_all:
        searched = useful
    return KeywordPlan(
        {t: idfs[t] for t in searched}, bound, max(avgdl, 1.0), match_all, within_budget
    )


def fts5_match(query: list[str], *, match_all: bool = False) -> str:
    """An FTS5 MATCH expression: any (or all) of the query terms."""
    return (" AND " if match_all else " OR ").join(f'"{term}"' for term in query)


KEY_BITS = 40  # a collection owns keys [number << 40, (number + 1) << 40)


def key_range(number: int) -> tuple[int, int]:
    """The chunk keys of collection `number`, inclusive."""
    return number << KEY_BITS, ((number + 1) << KEY_BITS) - 1
