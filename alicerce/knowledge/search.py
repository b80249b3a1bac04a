"""Search over a store's chunks: the keyword side, the vector side, their fusion.

Split from `store` (which writes what this reads) so each stays readable; `KnowledgeStore.search`
is `ChunkSearch.search`. The queries of a search are text SQL compiled
once per backend on a plain connection: building ORM statements cost ~2 ms of a 4 ms search.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa

from alicerce.knowledge import fts5, keyword, postgres
from alicerce.knowledge.chunking import with_headings
from alicerce.knowledge.fusion import FusionSettings, fuse_rankings
from alicerce.knowledge.scoring import VectorCalibration
from alicerce.knowledge.vectors import VectorIndexes
from alicerce.store import Database
from alicerce.store.tables import ChunkRow

Mode = Literal["hybrid", "vector", "keyword"]
MIN_CANDIDATES = 30  # each side hands fusion at least this many, or 4 x top_k


@dataclass(frozen=True, slots=True)
class Hit:
    collection_id: str
    document_id: str
    document_name: str
    chunk_id: str
    text: str
    score: float  # relevance in [0, 1], comparable across queries: see `scoring`
    metadata: dict[str, Any]
    heading_path: list[str] = field(default_factory=list)
    position: int = 0

    def citation(self) -> dict[str, Any]:
        """Which chunk this is, and how relevant: what answers cite
        (`generation_context.knowledge`) and search results start with."""
        return {
            "collection_id": self.collection_id,
            "document_id": self.document_id,
            "document_name": self.document_name,
            "chunk_id": self.chunk_id,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True, slots=True)
class _SearchSql:
    """A search's own queries, as text compiled once per backend (building ORM statements cost
    ~1 ms a search): lists go in as one parameter, so the SQL never changes with their length.
    JSON columns come back raw and are decoded only for the rows that need them."""

    owned: sa.TextClause
    rows: sa.TextClause
    sqlite: bool

    def values(self, items: Sequence[Any]) -> Any:
        return json.dumps(list(items)) if self.sqlite else list(items)

    @classmethod
    def build(cls, sqlite: bool) -> _SearchSql:
        def among(column: str, param: str) -> str:
            if sqlite:
                return f"{column} IN (SELECT value FROM json_each(:{param}))"
            return f"{column} = ANY(:{param})"

        return cls(
            owned=sa.text(
                "SELECT id, dimensions, generation, number, chunk_count, term_count, next_key, "
                "embedding_model, settings"
                + (
                    ", (SELECT coalesce(sum(chunk_count), 0) FROM collections) AS all_chunks"
                    ", (SELECT coalesce(sum(term_count), 0) FROM collections) AS all_terms"
                    if sqlite
                    else ""
                )
                + f" FROM collections WHERE account_id = :account AND {among('id', 'ids')}"
            ),
            # SQLite's CROSS JOIN keeps this order (it cannot tell how short the key list is,
            # and walked every ready document through the status index).
            rows=sa.text(
                "SELECT c.key, c.id, c.collection_id, c.document_id, c.text, c.heading_path, "
                "c.position, d.name, d.metadata AS doc_metadata FROM chunks c "
                f"{'CROSS JOIN' if sqlite else 'JOIN'} documents d ON d.id = c.document_id "
                f"WHERE {among('c.key', 'keys')} AND {among('c.collection_id', 'ids')} "
                "AND d.status = 'ready'"
            ),
            sqlite=sqlite,
        )


def _json(value: Any) -> Any:
    """A JSON column as read by text SQL: a string on SQLite, already decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


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


@dataclass(frozen=True, slots=True)
class KeywordCandidates:
    """The keyword side of one search, and the collections it may search."""

    top_k: int
    mode: Mode
    owned: tuple[Searched, ...]
    scores: Mapping[int, float]  # {chunk key: normalised BM25}
    plan: keyword.KeywordPlan | None


class ChunkSearch:
    """Sync methods; async callers use `asyncio.to_thread`."""

    def __init__(
        self,
        db: Database,
        vectors: VectorIndexes,
        *,
        uses_pgvector: Callable[[], bool],
        keyword_budget: int = keyword.POSTINGS_BUDGET,
    ) -> None:
        self.db = db
        self.vectors = vectors
        self.keyword_budget = keyword_budget  # rows a keyword search may score a collection
        self._uses_pgvector = uses_pgvector
        self._sql = _SearchSql.build(db.is_sqlite)

    def search(
        self,
        account_id: str,
        collection_ids: list[str],
        *,
        query: str,
        vector: np.ndarray,
        top_k: int = 5,
        mode: Mode = "hybrid",
    ) -> list[Hit]:
        """The best `top_k` chunks of the account's collections among `collection_ids`, best
        first; collections the account does not own are ignored. Fusion, weight and score
        calibration come from the first collection's settings (callers group collections by
        embedding model). `score`: see `scoring`."""
        if top_k <= 0 or not collection_ids:
            return []
        with self.db.engine.connect() as connection:
            keyword = self._keyword_candidates(
                connection, account_id, collection_ids, query, top_k, mode
            )
            return self._search(connection, keyword, vector)

    def _keyword_candidates(
        self,
        connection: sa.Connection,
        account_id: str,
        collection_ids: list[str],
        query: str,
        top_k: int,
        mode: Mode,
    ) -> KeywordCandidates:
        found = connection.execute(
            self._sql.owned, {"account": account_id, "ids": self._sql.values(collection_ids)}
        ).all()
        owned = tuple(
            Searched(
                row.id,
                row.dimensions,
                row.generation,
                row.number,
                row.chunk_count,
                row.term_count,
                row.next_key,
                row.embedding_model,
                _json(row.settings) or {},
            )
            for row in found
        )
        if not owned or mode == "vector":
            return KeywordCandidates(top_k, mode, owned, {}, None)
        wanted = max(MIN_CANDIDATES, 4 * top_k)
        # SQLite's FTS5 keeps its statistics over every collection; PostgreSQL's BM25 over the
        # searched ones.
        totals = (found[0].all_chunks, found[0].all_terms) if self.db.is_sqlite else None
        scores, plan = self._keyword(connection, owned, totals, query, wanted, mode)
        return KeywordCandidates(top_k, mode, owned, scores, plan)

    def _search(
        self, connection: sa.Connection, keyword: KeywordCandidates, vector: np.ndarray
    ) -> list[Hit]:
        owned = keyword.owned
        if not owned:
            return []
        top_k, mode = keyword.top_k, keyword.mode
        first = owned[0]
        calibration = VectorCalibration.for_collection(first.embedding_model, first.settings)
        fusion = FusionSettings.from_settings(first.settings or {})
        wanted = max(MIN_CANDIDATES, 4 * top_k)
        ids = [row.id for row in owned]

        cosines: dict[int, float] = {}
        if mode != "keyword":
            cosines = self._nearest(connection, owned, vector, wanted)
        keyword_scores = dict(keyword.scores)
        plan = keyword.plan
        vector_ranking = sorted(cosines, key=lambda key: -cosines[key])
        keyword_ranking = sorted(keyword_scores, key=lambda key: -keyword_scores[key])

        if mode == "vector":
            ranked = [(key, calibration.score(cosines[key])) for key in vector_ranking]
            return self._hits(ranked, self._rows(connection, ids, ranked[: 2 * top_k]), top_k)
        if mode == "keyword":
            ranked = [(key, keyword_scores[key]) for key in keyword_ranking]
            return self._hits(ranked, self._rows(connection, ids, ranked[: 2 * top_k]), top_k)
        # Hybrid: each side's score for the chunks only the other side found (the graph
        # holds every vector; BM25 is computed here from the chunk's text, same formula).
        rows = self._rows(connection, ids, [(key, 0.0) for key in {*cosines, *keyword_scores}])
        only_keyword = [key for key in keyword_ranking if key not in cosines]
        cosines.update(self._cosines(connection, owned, vector, only_keyword))
        for key in vector_ranking:
            if key not in keyword_scores and key in rows:
                indexed = with_headings(_json(rows[key].heading_path) or [], rows[key].text)
                keyword_scores[key] = plan.score(indexed) if plan else 0.0
        vector_scores = {key: calibration.score(c) for key, c in cosines.items()}
        ranked = fuse_rankings(
            vector_scores, keyword_scores, vector_ranking, keyword_ranking, fusion
        )
        return self._hits(ranked, rows, top_k)

    def _rows(
        self, connection: sa.Connection, collection_ids: list[str], ranked: list[tuple[int, float]]
    ) -> dict[int, Any]:
        """The chunks (with their document) of the given keys that are still there and ready."""
        if not ranked:
            return {}
        rows = connection.execute(
            self._sql.rows,
            {
                "keys": self._sql.values([key for key, _ in ranked]),
                "ids": self._sql.values(collection_ids),
            },
        ).all()
        return {row.key: row for row in rows}

    @staticmethod
    def _hits(ranked: list[tuple[int, float]], rows: dict[int, Any], k: int) -> list[Hit]:
        """The first k ranked keys that have a row (a graph a moment behind the database may
        name a chunk just deleted: it is skipped)."""
        hits = []
        for key, score in ranked:
            row = rows.get(key)
            if row is None:
                continue
            hits.append(
                Hit(
                    collection_id=row.collection_id,
                    document_id=row.document_id,
                    document_name=row.name,
                    chunk_id=row.id,
                    text=row.text,
                    score=score,
                    metadata=dict(_json(row.doc_metadata) or {}),
                    heading_path=list(_json(row.heading_path) or []),
                    position=row.position,
                )
            )
            if len(hits) == k:
                break
        return hits

    # -- vectors -----------------------------------------------------------------------------

    def _graph_loaders(self, collection_id: str) -> tuple[Any, Any]:
        def keys() -> np.ndarray:
            with self.db.session() as session:
                found = session.scalars(
                    sa.select(ChunkRow.key).where(ChunkRow.collection_id == collection_id)
                ).all()
            return np.array(found, dtype=np.uint64)

        def vectors(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with self.db.session() as session:
                found = session.execute(
                    sa.select(ChunkRow.key, ChunkRow.vector).where(
                        ChunkRow.collection_id == collection_id,
                        ChunkRow.key.in_([int(k) for k in wanted]),
                    )
                ).all()
            if not found:
                return np.empty(0, dtype=np.uint64), np.empty((0, 0), dtype=np.float32)
            return (
                np.array([key for key, _ in found], dtype=np.uint64),
                np.vstack([np.frombuffer(blob, dtype=np.float32) for _, blob in found]),
            )

        return keys, vectors

    def _nearest(
        self, connection: sa.Connection, owned: Sequence[Searched], vector: np.ndarray, count: int
    ) -> dict[int, float]:
        """The `count` best cosines over the collections, {key: cosine}."""
        if self._uses_pgvector():
            ids = [row.id for row in owned]
            dimensions = {r.dimensions for r in owned}
            return postgres.nearest(connection, ids, dimensions, vector, count)
        found: list[tuple[int, float]] = []
        for row in owned:
            graph = self.vectors.current(
                row.id, row.dimensions, row.generation, *self._graph_loaders(row.id)
            )
            with graph.lock:
                found += graph.search(vector, count)
        found.sort(key=lambda item: -item[1])
        return dict(found[:count])

    def _cosines(
        self,
        connection: sa.Connection,
        owned: Sequence[Searched],
        vector: np.ndarray,
        keys: list[int],
    ) -> dict[int, float]:
        """Exact cosines of `vector` with the given chunks (those keyword search found)."""
        if not keys:
            return {}
        if self._uses_pgvector():
            return postgres.cosines(connection, vector, keys)
        result: dict[int, float] = {}
        for row in owned:
            graph = self.vectors.current(
                row.id, row.dimensions, row.generation, *self._graph_loaders(row.id)
            )
            with graph.lock:
                result.update(graph.cosines(vector, keys))
        return result

    # -- keywords ----------------------------------------------------------------------------

    def _keyword(
        self,
        connection: sa.Connection,
        owned: Sequence[Searched],
        totals: tuple[int, int] | None,
        query: str,
        count: int,
        mode: Mode,
    ) -> tuple[dict[int, float], keyword.KeywordPlan | None]:
        """{key: normalised BM25} of the best `count` chunks, and the plan that scored them."""
        words = keyword.query_terms(query)
        if not words:
            return {}, None
        if totals is not None:
            return fts5.search(
                connection,
                [(row.number, row.chunk_count, row.next_key) for row in owned],
                totals,
                words,
                count,
                over_budget="newest" if mode == "keyword" else "skip",
                budget=self.keyword_budget,
            )
        searched = (sum(row.chunk_count for row in owned), sum(row.term_count for row in owned))
        return postgres.bm25(connection, [row.id for row in owned], searched, words, count)
