"""Properties of the pure parts, for inputs nobody thought to write down (hypothesis): how
hybrid search fuses its two rankings, how tokens are priced and merged, how documents are
chunked, and how stream events are framed and read back."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alicerce import json_input
from alicerce.api.http import chat_sse
from alicerce.billing import LineItem, TokenUsage, inference_line_items, merged
from alicerce.catalog import CatalogModel, Provider
from alicerce.errors import InvalidRequest
from alicerce.inference.relay import Closing
from alicerce.knowledge.chunking import chunk
from alicerce.knowledge.extract import Block
from alicerce.knowledge.fusion import FusionSettings, fuse_rankings
from alicerce.upstreams.http import OpenAIHttpUpstream

settings.register_profile("alicerce", max_examples=150, deadline=None)
settings.load_profile("alicerce")

# -- fusion ------------------------------------------------------------------------------

scores = st.dictionaries(st.integers(0, 40), st.floats(0, 1), max_size=25)


@given(scores, scores, st.sampled_from(["rrf", "convex"]), st.floats(0, 1))
def test_fusion_ranks_every_candidate_once_best_first_within_zero_and_one(
    vector: dict[int, float], keyword: dict[int, float], method: str, weight: float
) -> None:
    vector_ranking = sorted(vector, key=lambda k: (-vector[k], k))
    keyword_ranking = sorted(keyword, key=lambda k: (-keyword[k], k))
    fused = fuse_rankings(
        vector,
        keyword,
        vector_ranking,
        keyword_ranking,
        FusionSettings(method=method, vector_weight=weight),  # type: ignore[arg-type]
    )
    keys = [key for key, _ in fused]
    assert sorted(keys) == sorted(set(vector) | set(keyword))  # each candidate, once
    relevance = [value for _, value in fused]
    assert all(-1e-12 <= value <= 1 + 1e-12 for value in relevance)
    assert relevance == sorted(relevance, reverse=True)  # a score never rises down the list


@given(scores.filter(bool), scores)
def test_convex_fusion_with_all_weight_on_vectors_is_the_vector_ranking(
    vector: dict[int, float], keyword: dict[int, float]
) -> None:
    ranking = sorted(vector, key=lambda k: (-vector[k], k))
    fused = fuse_rankings(vector, {}, ranking, [], FusionSettings("convex", 1.0))
    assert [key for key, _ in fused] == ranking


# -- pricing -----------------------------------------------------------------------------

prices = st.decimals(min_value=0, max_value=100, places=6, allow_nan=False)


@st.composite
def usages(draw: Any) -> TokenUsage:
    prompt = draw(st.integers(0, 2_000_000))
    return TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=draw(st.integers(0, 2_000_000)),
        cached_tokens=draw(st.integers(0, prompt)),
    )


@given(usages(), prices, prices, prices)
def test_tokens_are_priced_exactly_and_each_token_once(
    usage: TokenUsage, price_in: Decimal, price_cached: Decimal, price_out: Decimal
) -> None:
    model = CatalogModel(
        id="@p/m",
        provider=Provider("p", "openai", "http://p"),
        upstream_model="m",
        price_in=price_in / 1_000_000,
        price_cached_in=price_cached / 1_000_000,
        price_out=price_out / 1_000_000,
    )
    items = inference_line_items(model, usage)
    assert sum(i.quantity for i in items) == usage.prompt_tokens + usage.completion_tokens
    expected = (
        (usage.prompt_tokens - usage.cached_tokens) * model.price_in
        + usage.cached_tokens * model.price_cached_in
        + usage.completion_tokens * model.price_out
    )
    assert sum((i.amount for i in items), Decimal(0)) == expected  # exact: no float anywhere
    for item in items:  # the ledger's form and the answer's form keep every digit
        assert LineItem.from_record(item.to_record()).amount == item.amount
        shown = json.loads(json.dumps(item.to_json(), default=str), parse_float=Decimal)
        assert Decimal(str(shown["amount"])) == item.amount


@given(
    st.lists(
        st.builds(
            LineItem,
            st.sampled_from(["a.in", "a.out", "knowledge.search"]),
            st.integers(0, 10_000),
            st.sampled_from([Decimal("0.000001"), Decimal("0.0025"), Decimal(0)]),
            st.sampled_from(["x", "y"]),
        ),
        max_size=30,
    )
)
def test_merging_line_items_keeps_every_quantity_and_amount(items: list[LineItem]) -> None:
    together = merged(items)
    assert sum((i.amount for i in together), Decimal(0)) == sum(
        (i.amount for i in items), Decimal(0)
    )
    keys = [(i.sku, i.unit_price, i.description) for i in together]
    assert len(keys) == len(set(keys))


# -- chunking ----------------------------------------------------------------------------

words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Z"]), min_size=1)


def count_words(text: str) -> int:
    return len(text.split())


@given(
    st.lists(
        st.tuples(st.sampled_from(["heading", "text"]), st.lists(words, min_size=1, max_size=60)),
        min_size=1,
        max_size=12,
    ),
    st.integers(8, 64),
    st.integers(0, 16),
)
def test_chunks_are_bounded_in_order_and_lose_no_word(
    raw: list[tuple[str, list[str]]], max_tokens: int, overlap: int
) -> None:
    blocks = [
        Block("heading", " ".join(ws), 1) if kind == "heading" else Block("text", " ".join(ws))
        for kind, ws in raw
    ]
    chunks = chunk(blocks, count_tokens=count_words, max_tokens=max_tokens, overlap_tokens=overlap)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(c.tokens == count_words(c.text) <= max_tokens for c in chunks)
    text_words = [w for b in blocks if b.kind == "text" for w in b.text.split()]
    chunked = " ".join(c.text for c in chunks).split()
    position = 0  # every word of the text, in reading order (overlaps may repeat some)
    for word in text_words:
        while position < len(chunked) and chunked[position] != word:
            position += 1
        assert position < len(chunked), f"{word!r} was lost"


# -- stream framing ----------------------------------------------------------------------

json_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]))
deltas = st.fixed_dictionaries(
    {
        "id": st.just("c1"),
        "object": st.just("chat.completion.chunk"),
        "choices": st.lists(
            st.fixed_dictionaries(
                {"index": st.just(0), "delta": st.fixed_dictionaries({"content": json_text})}
            ),
            max_size=1,
        ),
    }
)


@given(st.lists(deltas, min_size=1, max_size=8), st.integers(1, 64))
def test_stream_events_read_back_as_written_however_the_bytes_arrive(
    chunks: list[dict[str, Any]], cut: int
) -> None:
    """What Alicerce writes (`chat_sse`) and what it reads from an upstream (line by line, as
    aiohttp hands over a stream) agree for any text: newlines, `data:` and `\\n\\n` inside
    content never split an event."""
    wire = b"".join(chat_sse([c]) for c in chunks[:-1]) + chat_sse(Closing([chunks[-1]]))
    reader = OpenAIHttpUpstream(
        None,  # type: ignore[arg-type]  # reading lines needs no session
        base_url="http://u",
        model="m",
        api_key=None,
        headers=None,
        label="u",
    )
    pieces = [wire[i : i + cut] for i in range(0, len(wire), cut)]  # the network's cuts
    lines = re.findall(rb"[^\n]*\n", b"".join(pieces))  # rejoined into lines, as aiohttp does
    read = [reader._parse_event_line(line) for line in lines]
    events = [e for e in read if isinstance(e, dict)]
    assert events == chunks
    assert lines[-2:] == [b"data: [DONE]\n", b"\n"]


# -- untrusted JSON: the fast reader agrees with the exact one --------------------------------

_KEYS = st.sampled_from(["a", "b", "model", "x:y", "é", "\\u0061", "\\u003a", "\\\\u003a", "k"])
_SCALARS = st.sampled_from(
    ["1", "-0", "1.5", "1e400", "-1e400", "1e-400", "9" * 30, "9" * 5000, "true", "null",
     "NaN", "Infinity", '"s"', '"a:b"', '"\\u003a"', '"\\ud800"', '"\\ud83d\\ude00"',
     '"\\u00e9"', '"é"', '"\\n"', '"\\\\"', '"\x01"', "01", "1.", "[", "}"]
)  # fmt: skip


def _json_text(depth: int = 0) -> st.SearchStrategy[str]:
    """JSON-ish text, valid or not: objects whose keys may repeat (raw or escaped), the
    numbers and strings the rules are about, and some that are not JSON at all."""
    if depth >= 3:
        return _SCALARS
    inner = st.deferred(lambda: _json_text(depth + 1))
    space = st.sampled_from(["", " ", "\n", "\t"])
    pairs = st.lists(st.tuples(_KEYS, space, inner), max_size=4)
    objects = pairs.map(lambda ps: "{" + ",".join(f'"{k}"{s}:{s}{v}' for k, s, v in ps) + "}")
    arrays = st.lists(inner, max_size=4).map(lambda vs: "[" + ",".join(vs) + "]")
    return st.one_of(_SCALARS, objects, arrays)


@given(_json_text(), st.sampled_from([b"", b" ", b"\xef\xbb\xbf", b"\xff"]))
@settings(max_examples=600)
def test_the_fast_json_reader_accepts_only_what_the_exact_one_reads_the_same(
    text: str, prefix: bytes
) -> None:
    """`load_json`'s msgspec path either steps aside or returns what the stdlib parser with
    every rule (duplicate keys, depth, finite numbers, Unicode) returns for the same body."""
    raw = prefix + text.encode()
    fast = json_input._read_fast(raw)
    try:
        exact: Any = json_input._read_exact(raw)
    except InvalidRequest:
        exact = "refused"
    if fast is not json_input._UNSURE:
        assert exact != "refused", raw
        assert json.dumps(fast, sort_keys=True) == json.dumps(exact, sort_keys=True), raw
    assert json_input._read_fast(b'{"a": 1, "a": 1}') is json_input._UNSURE
    assert json_input._read_fast(b'{"a": {"b": ":", "b": 2}}') is json_input._UNSURE
