"""Fusing the vector and keyword rankings (`fusion`)."""

from __future__ import annotations

import pytest

from alicerce.knowledge.fusion import FusionSettings, fuse_rankings


def test_rrf_orders_by_ranks_and_never_raises_a_score_down_the_list() -> None:
    vector = {1: 0.9, 2: 0.5, 3: 0.1}
    keyword = {1: 0.0, 2: 0.8, 3: 0.9}
    ranked = fuse_rankings(vector, keyword, [1, 2, 3], [3, 2], FusionSettings(method="rrf"))
    keys = [key for key, _ in ranked]
    assert keys == [3, 2, 1]  # found by both sides beats found by one
    scores = [score for _, score in ranked]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    convex = fuse_rankings(
        vector, keyword, [1, 2, 3], [3, 2], FusionSettings(method="convex", vector_weight=0.5)
    )
    assert convex[0] == (2, pytest.approx(0.65))


def test_fusion_settings_are_checked() -> None:
    assert FusionSettings.from_settings({"fusion": {"method": "convex"}}).method == "convex"
    with pytest.raises(ValueError):
        FusionSettings.from_settings({"fusion": {"method": "max"}})
    with pytest.raises(ValueError):
        FusionSettings.from_settings({"fusion": {"vector_weight": 2}})
