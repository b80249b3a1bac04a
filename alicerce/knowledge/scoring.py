"""What a chunk's `score` means: relevance in [0, 1], comparable across queries.

- Vector: the cosine similarity rescaled linearly from [low, high] to [0, 1] and clipped.
  Embedding models crowd their cosines into a narrow band (multilingual-e5-small puts unrelated
  pairs at 0.68-0.83 and related ones at 0.86-0.92, measured on a small pt/en sample), so a raw
  cosine of 0.8 says nothing; the rescaled one says "how far into the band of related pairs".
  Defaults: low 0.82, high 0.92 for the local e5 model; 0 and 1 (the plain cosine, clipped) for
  any other model until a collection sets its own `settings["vector_score"] = {"low", "high"}`.
- Keyword: BM25 as a fraction of the best the query could reach (see `keyword`).
- Hybrid: the weighted mean of the two (see `fusion`).

With these, `min_score` 0.2 keeps a chunk whose cosine to the query is above ~0.84 (e5), or that
matches a good part of the query's rarer words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alicerce.embeddings import LOCAL_EMBEDDING_MODEL

_DEFAULTS = {LOCAL_EMBEDDING_MODEL: (0.82, 0.92)}


@dataclass(frozen=True, slots=True)
class VectorCalibration:
    low: float = 0.0
    high: float = 1.0

    @classmethod
    def for_collection(cls, model: str, settings: Mapping[str, Any]) -> VectorCalibration:
        low, high = _DEFAULTS.get(model, (0.0, 1.0))
        own = settings.get("vector_score") or {}
        low, high = float(own.get("low", low)), float(own.get("high", high))
        if not low < high:
            raise ValueError("vector_score: low must be below high")
        return cls(low, high)

    def score(self, cosine: float) -> float:
        return min(1.0, max(0.0, (cosine - self.low) / (self.high - self.low)))
