"""Keyword terms, folding and the search plan (`keyword`): the same on every backend."""

from __future__ import annotations

from alicerce.knowledge import keyword
from alicerce.knowledge.keyword import fold, plan, query_terms


def test_fold_and_query_terms() -> None:
    assert fold("Organização ÁGUA") == "organizacao agua"
    assert query_terms("O que é a organização? o QUE") == ["o", "que", "e", "a", "organizacao"]


def test_terms_split_ascii_like_the_regex() -> None:
    for text in ["a_b c-d  e\tf\x1cg 12x3 x.y@z", "naïve_Straße ÀÉ", "日本語 テキスト", "", "__"]:
        assert keyword.terms(text) == keyword._WORD.findall(fold(text)), text


def test_keyword_plan_estimates_rows_in_the_searched_collections() -> None:
    frequencies = {"python": 30_000, "list": 15_000, "zope": 80}
    everything = plan(frequencies, 100_000, avgdl=120)
    assert everything is not None and everything.within_budget and list(everything.idfs) == ["zope"]
    # a collection of 5,000 chunks of the 100,000: "list" ~750 there, "python" ~1,500
    small = plan(frequencies, 100_000, avgdl=120, searched_rows=5_000)
    assert small is not None and small.within_budget and list(small.idfs) == ["zope", "list"]
    common = plan({"python": 30_000, "list": 15_000}, 100_000, avgdl=120, budget=1_000)
    assert common is not None and not common.within_budget and common.match_all
    one = plan({"python": 30_000}, 100_000, avgdl=120, budget=1_000)
    assert one is not None and not one.within_budget and not one.match_all
    assert list(one.idfs) == ["python"]


def test_keyword_plan_searches_rare_terms_within_the_budget() -> None:
    rows = 100_000
    frequencies = {"the": 90_000, "python": 1_500, "list": 900, "sorted": 120}
    found = plan(frequencies, rows, avgdl=120)
    assert found is not None and not found.match_all
    assert list(found.idfs) == ["sorted", "list"]  # "python" would pass the budget
    assert found.bound > sum(found.idfs.values())  # normalised over every known term
    common = plan({"python": 5_000, "function": 8_000}, rows, avgdl=120)
    assert common is not None and common.match_all and set(common.idfs) == {"python", "function"}
    assert plan({"the": 90_000}, rows, avgdl=120) is None
    text_score = found.score("sorted list of sorted things")
    assert 0 < text_score < 1
