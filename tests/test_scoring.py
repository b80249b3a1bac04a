"""The score maps (`knowledge.scoring`): monotone, within [0, 1], through their documented knots."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from alicerce.embeddings import LOCAL_EMBEDDING_MODEL
from alicerce.knowledge import scoring
from alicerce.knowledge.scoring import E5, E5_HYBRID, E5_VECTOR, KEYWORD, Calibration, ScoreMap

SHIPPED = {"vector": E5_VECTOR, "keyword": KEYWORD, "hybrid": E5_HYBRID}


@pytest.mark.parametrize("mode", SHIPPED)
def test_shipped_maps_are_monotone_and_within_0_and_1(mode: str) -> None:
    score_map = SHIPPED[mode]
    raw = np.linspace(-3.0, 3.0, 6001)
    scores = [score_map(float(x)) for x in raw]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(b >= a for a, b in pairwise(scores))
    assert scores[0] == 0.0 and scores[-1] == 1.0


@pytest.mark.parametrize("mode", SHIPPED)
def test_shipped_maps_put_the_documented_marks_at_their_knots(mode: str) -> None:
    """0.2, 0.5 and 0.8 at the floor, the median and the 90th percentile of the answers
    (BENCHMARKS.md, "Score calibration"); 0 and 1 at the ends."""
    score_map = SHIPPED[mode]
    assert score_map.ys == (0.0, 0.2, 0.5, 0.8, 1.0)
    for x, y in zip(score_map.xs, score_map.ys, strict=True):
        assert score_map(x) == pytest.approx(y)


def test_the_documented_e5_anchor_points() -> None:
    """docs/knowledge.md's table, which a user reads to choose `min_score`."""
    assert E5_VECTOR(0.815) == pytest.approx(0.2)
    assert E5_VECTOR(0.8839) == pytest.approx(0.5)
    assert E5_VECTOR(0.917) == pytest.approx(0.8)
    assert E5_VECTOR(0.95) == 1.0 and E5_VECTOR(0.75) == 0.0
    assert KEYWORD(0.1527) == pytest.approx(0.2) and KEYWORD(0.3174) == pytest.approx(0.5)
    assert E5_HYBRID(0.0224) == pytest.approx(0.2) and E5_HYBRID(0.4393) == pytest.approx(0.5)


def test_a_related_pair_under_the_old_band_still_scores() -> None:
    """The old map clipped every cosine under 0.82 to 0: a real answer at 0.81 scored nothing."""
    assert 0.15 < E5_VECTOR(0.81) < 0.2
    assert E5_VECTOR(0.80) > E5_VECTOR(0.79) > 0


def test_interpolation_is_linear_between_knots_and_flat_outside() -> None:
    score_map = ScoreMap((0.0, 1.0, 2.0), (0.1, 0.5, 0.7))
    assert score_map(0.5) == pytest.approx(0.3)
    assert score_map(1.5) == pytest.approx(0.6)
    assert score_map(-5) == 0.1 and score_map(9) == 0.7
    assert score_map(1.0) == 0.5


@pytest.mark.parametrize(
    ("xs", "ys"),
    [
        ((0.0,), (0.0,)),
        ((0.0, 1.0), (0.0,)),
        ((0.0, 0.0), (0.0, 1.0)),
        ((1.0, 0.0), (0.0, 1.0)),
        ((0.0, 1.0), (0.6, 0.4)),
        ((0.0, 1.0), (-0.1, 1.0)),
        ((0.0, 1.0), (0.0, 1.5)),
    ],
)
def test_a_bad_map_is_refused(xs: tuple[float, ...], ys: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        ScoreMap(xs, ys)


def test_each_collection_gets_its_embedders_calibration() -> None:
    assert Calibration.for_collection(LOCAL_EMBEDDING_MODEL, {}) is E5
    other = Calibration.for_collection("text-embedding-3-small", {})
    assert other.vector(0.42) == pytest.approx(0.42) and other.vector(-0.3) == 0.0
    assert other.keyword is KEYWORD  # BM25 does not depend on the embedder
    assert other.hybrid(0.3) == pytest.approx(0.3)
    own = Calibration.for_collection("any", {"vector_score": {"low": 0.5, "high": 0.9}})
    assert own.vector(0.7) == pytest.approx(0.5) and own.vector(0.95) == 1.0
    assert own.fusion_vector(0.4) == pytest.approx(-0.25)  # fusion keeps the order below
    with pytest.raises(ValueError, match="low must be below high"):
        Calibration.for_collection("any", {"vector_score": {"low": 0.9, "high": 0.5}})


def test_fusion_rescales_e5_cosines_without_clipping() -> None:
    low, high = scoring.E5_BAND
    assert E5.fusion_vector(low) == 0.0 and E5.fusion_vector(high) == pytest.approx(1.0)
    assert E5.fusion_vector(0.80) < E5.fusion_vector(0.81) < 0  # still ordered under the band
    assert E5.fusion_vector(0.95) > 1
