"""Search over a store's chunks: the keyword side, the vector side, their fusion.

Split from `store` (which writes what this reads) so each stays readable; `KnowledgeStore.search`
is `ChunkSearch.search`. Which indexes answer each side, and the search's own SQL, are the
backend's (`backends`); the queries are text compiled once per backend on a plain connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from alicerce.knowledge import keyword
from alicerce.knowledge.backends import Backend
from alicerce.knowledge.chunking import with_headings
from alicerce.knowledge.fusion import FusionSettings, fuse_rankings
from alicerce.knowledge.indexes import Searched
from alicerce.knowledge.modes import Mode
from alicerce.knowledge.scoring import Calibration
from alicerce.store import Database

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
    source_url: str | None = None  # the document's

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


class ChunkSearch:
    """Sync methods; async callers use `asyncio.to_thread`."""

    def __init__(self, db: Database, backend: Backend) -> None:
        self.db = db
        self.keywords = backend.keywords
        self.vectors = backend.vectors
        self._sql = backend.sql
        # Which score maps a collection's searches use; the calibration bench swaps in the raw
        # ones to measure what the maps are fitted on.
        self.calibration = Calibration.for_collection

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
        sql = self._sql
        with self.db.engine.connect() as connection:
            found = connection.execute(
                sql.owned, {"account": account_id, "ids": sql.values(collection_ids)}
            ).all()
            if not found:
                return []
            owned = [
                Searched(
                    row.id,
                    row.dimensions,
                    row.generation,
                    row.number,
                    row.chunk_count,
                    row.term_count,
                    row.next_key,
                    row.embedding_model,
                    sql.json(row.settings) or {},
                )
                for row in found
            ]
            wanted = max(MIN_CANDIDATES, 4 * top_k)
            keyword_scores: dict[int, float] = {}
            plan: keyword.KeywordPlan | None = None
            words = keyword.query_terms(query) if mode != "vector" else []
            if words:
                totals = (found[0].all_chunks, found[0].all_terms)
                keyword_scores, plan = self.keywords.search(
                    connection,
                    owned,
                    totals,
                    words,
                    wanted,
                    over_budget="newest" if mode == "keyword" else "skip",
                )
            cosines: dict[int, float] = {}
            if mode != "keyword":
                cosines = self.vectors.nearest(connection, owned, vector, wanted)
            return self._ranked(
                connection, owned, mode, top_k, vector, cosines, keyword_scores, plan
            )

    def _ranked(
        self,
        connection: sa.Connection,
        owned: list[Searched],
        mode: Mode,
        top_k: int,
        vector: np.ndarray,
        cosines: dict[int, float],
        keyword_scores: dict[int, float],
        plan: keyword.KeywordPlan | None,
    ) -> list[Hit]:
        first = owned[0]
        calibration = self.calibration(first.embedding_model, first.settings or {})
        fusion = FusionSettings.from_settings(first.settings or {})
        ids = [row.id for row in owned]
        vector_ranking = sorted(cosines, key=lambda key: -cosines[key])
        keyword_ranking = sorted(keyword_scores, key=lambda key: -keyword_scores[key])

        if mode == "vector":
            ranked = [(key, calibration.vector(cosines[key])) for key in vector_ranking]
            return self._hits(ranked, self._rows(connection, ids, ranked[: 2 * top_k]), top_k)
        if mode == "keyword":
            ranked = [(key, calibration.keyword(keyword_scores[key])) for key in keyword_ranking]
            return self._hits(ranked, self._rows(connection, ids, ranked[: 2 * top_k]), top_k)
        # Hybrid: each side's score for the chunks only the other side found (the graph
        # holds every vector; BM25 is computed here from the chunk's text, same formula).
        rows = self._rows(connection, ids, [(key, 0.0) for key in {*cosines, *keyword_scores}])
        only_keyword = [key for key in keyword_ranking if key not in cosines]
        cosines.update(self.vectors.cosines(connection, owned, vector, only_keyword))
        decode = self._sql.json
        for key in vector_ranking:
            if key not in keyword_scores and key in rows:
                indexed = with_headings(decode(rows[key].heading_path) or [], rows[key].text)
                keyword_scores[key] = plan.score(indexed) if plan else 0.0
        vector_features = {key: calibration.fusion_vector(c) for key, c in cosines.items()}
        fused = fuse_rankings(
            vector_features, keyword_scores, vector_ranking, keyword_ranking, fusion
        )
        ranked = [(key, calibration.hybrid(relevance)) for key, relevance in fused]
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

    def _hits(self, ranked: list[tuple[int, float]], rows: dict[int, Any], k: int) -> list[Hit]:
        """The first k ranked keys that have a row (a graph a moment behind the database may
        name a chunk just deleted: it is skipped)."""
        decode = self._sql.json
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
                    metadata=dict(decode(row.doc_metadata) or {}),
                    heading_path=list(decode(row.heading_path) or []),
                    position=row.position,
                    source_url=row.source_url,
                )
            )
            if len(hits) == k:
                break
        return hits
