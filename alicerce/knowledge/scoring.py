"""What a chunk's `score` means: where it stands among passages that really answer questions.

Raw similarities say little by themselves: multilingual-e5-small puts a question and its answer
at cosine 0.79-0.95 (the low end cross-lingual) and other passages at 0.73-0.89, and a BM25
fraction of 0.15 can be a good match. So each mode's raw value goes through a monotone
piecewise-linear map fitted on real questions (`bench/score_calibration.py`: the Debian FAQ in
English and Portuguese, the Python FAQ, and Portuguese questions against the English FAQ and
back; BENCHMARKS.md, "Score calibration"). In every mode the map puts the same marks at the same
places of the distribution of *relevant* top-5 hits:

| score | where |
| --- | --- |
| 0.2 | the weakest answers: at least 95% of each fitted eval set's answers score this or more |
| 0.5 | a typical answer: half of the answers score more |
| 0.8 | a strong answer: a tenth of the answers score more |
| 0 and 1 | the first and last segments carried on with their own slopes, then clipped |

So `min_score` 0.2 (a gateway's default, the SPEC's) keeps about 19 answers in 20 whatever the
mode, and a user who raises it to 0.5 knows they drop about half of them. It is a statement
about answers, not a probability: e5 gives unrelated passages on the same subject cosines close
to the answer's, so many of them score above 0.2 too (the let-through counts are in
BENCHMARKS.md).

- vector: the map of the cosine (`E5_VECTOR`). Other embedders are not calibrated: their score is
  the cosine clipped to [0, 1], or the collection's `settings["vector_score"] = {"low", "high"}`
  rescaled linearly from [low, high] to [0, 1] and clipped.
- keyword: the map of the BM25 fraction (see `keyword`): the same for every embedder.
- hybrid: fusion ranks by `w * (cosine - 0.82) / 0.10 + (1 - w) * bm25_fraction` (`fusion`; the
  features that measured best for nDCG, not clipped so that order survives outside the band),
  and the score is the map of that relevance (`E5_HYBRID`; for other embedders their linear
  vector rescaling and the relevance clipped).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from alicerce.embeddings import LOCAL_EMBEDDING_MODEL


@dataclass(frozen=True, slots=True)
class ScoreMap:
    """A non-decreasing piecewise-linear map through the knots `(xs[i], ys[i])`, flat before the
    first knot and after the last, so every value lands in [ys[0], ys[-1]] within [0, 1]."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.xs) != len(self.ys) or len(self.xs) < 2:
            raise ValueError("a score map needs two knots or more, as many xs as ys")
        if any(b <= a for a, b in pairwise(self.xs)):
            raise ValueError("a score map's xs must increase")
        if any(b < a for a, b in pairwise(self.ys)):
            raise ValueError("a score map's ys must not decrease")
        if self.ys[0] < 0.0 or self.ys[-1] > 1.0:
            raise ValueError("a score map's ys must lie in [0, 1]")

    @classmethod
    def linear(cls, low: float, high: float) -> ScoreMap:
        """`low` and below -> 0, `high` and above -> 1, a straight line between."""
        if not low < high:
            raise ValueError("vector_score: low must be below high")
        return cls((low, high), (0.0, 1.0))

    def __call__(self, raw: float) -> float:
        xs, ys = self.xs, self.ys
        i = bisect_right(xs, raw)
        if i == 0:
            return ys[0]
        if i == len(xs):
            return ys[-1]
        x0, y0 = xs[i - 1], ys[i - 1]
        return y0 + (ys[i] - y0) * (raw - x0) / (xs[i] - x0)


IDENTITY = ScoreMap.linear(0.0, 1.0)  # the raw value clipped to [0, 1]

# Fitted by `bench/score_calibration.py` (its output, pasted); see BENCHMARKS.md.
E5_VECTOR = ScoreMap((0.7691, 0.815, 0.8839, 0.917, 0.9391), (0.0, 0.2, 0.5, 0.8, 1.0))
KEYWORD = ScoreMap((0.0429, 0.1527, 0.3174, 0.479, 0.5867), (0.0, 0.2, 0.5, 0.8, 1.0))
E5_HYBRID = ScoreMap((-0.2555, 0.0224, 0.4393, 0.6503, 0.7909), (0.0, 0.2, 0.5, 0.8, 1.0))
E5_BAND = (0.82, 0.92)  # the cosines hybrid fusion rescales to its vector feature's [0, 1]


@dataclass(frozen=True, slots=True)
class Calibration:
    """One collection's scores: the maps of the three modes, and the vector feature of fusion."""

    vector: Callable[[float], float]  # cosine -> vector-mode score
    keyword: Callable[[float], float]  # BM25 fraction -> keyword-mode score
    hybrid: Callable[[float], float]  # fused relevance -> hybrid score
    band: tuple[float, float] = (0.0, 1.0)  # cosines rescaled to fusion's vector feature

    def fusion_vector(self, cosine: float) -> float:
        """What fusion weighs for the vector side: the cosine rescaled from `band`, not clipped."""
        low, high = self.band
        return (cosine - low) / (high - low)

    @classmethod
    def for_collection(cls, model: str, settings: Mapping[str, Any]) -> Calibration:
        own = settings.get("vector_score") or {}
        if own:
            low, high = float(own.get("low", 0.0)), float(own.get("high", 1.0))
            return cls(ScoreMap.linear(low, high), KEYWORD, IDENTITY, (low, high))
        if model == LOCAL_EMBEDDING_MODEL:
            return E5
        return OTHER


E5 = Calibration(E5_VECTOR, KEYWORD, E5_HYBRID, E5_BAND)
OTHER = Calibration(IDENTITY, KEYWORD, IDENTITY)  # an embedder nobody calibrated here
