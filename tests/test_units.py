"""Pure parts: ids, planning, billing, settings (the stream relay: test_relay.py)."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from alicerce.billing import LineItem, TokenUsage, inference_line_items
from alicerce.catalog import Catalog, CatalogError, CatalogModel, Provider
from alicerce.errors import InvalidRequest
from alicerce.gateways import GatewaySpec
from alicerce.ids import slug_for, uuid7
from alicerce.inference.plan import build_messages, plan_chat
from alicerce.inference.request import parse_chat_request


def test_uuid7_is_version_7_and_monotonic() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_slug_uses_last_four_hex_digits() -> None:
    assert slug_for("support-bot", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f50c3") == "support-bot:50c3"


def _request(**body: object) -> object:
    body.setdefault("model", "g")
    body.setdefault("messages", [{"role": "user", "content": "Q"}])
    return parse_chat_request(json.dumps(body).encode())


def test_build_messages_merges_leading_system_messages_only() -> None:
    messages = [
        {"role": "developer", "content": "dev"},
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": "u1"},
        {"role": "system", "content": "late"},
    ]
    built = build_messages("ops", messages)
    assert built[0] == {"role": "system", "content": "ops\n\ndev\n\nsys"}
    assert built[1:] == messages[2:]
    assert build_messages("", [{"role": "user", "content": "u"}]) == [
        {"role": "user", "content": "u"}
    ]
    assert build_messages("", [{"role": "system", "content": "s"}]) == [
        {"role": "system", "content": "s"}
    ]


def test_plan_applies_overridable_rule_and_prefill() -> None:
    spec = GatewaySpec(
        name="g",
        model="@local/smollm2-135m",
        instructions="I",
        parameters={"temperature": 0.2, "stop": ["END"], "prefill": "Sure:"},
        overridable=["stop"],
    )
    plan = plan_chat(
        spec,
        _request(temperature=1.0, stop="X", stream=True, stream_options={"include_usage": True}),
    )
    assert plan.body["temperature"] == 0.2
    assert plan.body["stop"] == "X"
    assert plan.body["messages"][-1] == {"role": "assistant", "content": "Sure:"}
    assert plan.prefill == "Sure:"
    assert plan.include_usage is True
    assert "metadata" not in plan.body  # recorded, never sent upstream


def test_parse_errors_name_the_param() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(b'{"model": "g", "messages": [{"role": "user"}], "top_p": 2}')
    assert caught.value.param == "top_p"
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(b"[1, 2]")
    assert caught.value.status == 400


def test_line_items_split_cached_tokens_and_are_exact() -> None:
    provider = Provider("openai", "openai", "https://api.example.com/v1")
    model = CatalogModel(
        "@openai/gpt-5-mini",
        provider,
        "gpt-5-mini",
        price_in=Decimal("0.25") / 1_000_000,
        price_out=Decimal("2") / 1_000_000,
        price_cached_in=Decimal("0.025") / 1_000_000,
    )
    items = inference_line_items(
        model, TokenUsage(prompt_tokens=100, completion_tokens=10, cached_tokens=40)
    )
    by_sku = {i.sku: i for i in items}
    assert by_sku["inference.chat_completions.in"].quantity == 60
    assert by_sku["inference.chat_completions.in.cached"].quantity == 40
    assert by_sku["inference.chat_completions.out"].amount == Decimal("0.00002")
    total = sum((i.amount for i in items), Decimal(0))
    assert total == Decimal("0.000015") + Decimal("0.000001") + Decimal("0.00002")
    assert inference_line_items(None, TokenUsage(10, 10)) == []  # bring your own: free
    item = LineItem("x", 3, Decimal("0.1"), "d")
    assert item.to_json()["amount"] == pytest.approx(0.3)
    assert item.to_record()["amount"] == "0.3"


def test_usage_from_upstream_is_validated() -> None:
    assert TokenUsage.from_openai(None) is None
    assert TokenUsage.from_openai({"prompt_tokens": "many"}) is None
    usage = TokenUsage.from_openai(
        {"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 9}}
    )
    assert usage == TokenUsage(5, 2, 0)  # cached can never exceed the prompt


def test_catalog_file_is_validated(tmp_path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        '[providers.openai]\nbase_url = "https://api.openai.com/v1"\napi_key_env = "OPENAI_KEY"\n'
        '[[models]]\nid = "@openai/gpt-5-mini"\nprovider = "openai"\n'
        "price_in = 0.25\nprice_out = 2.0\nprice_cached_in = 0.025\n"
    )
    catalog = Catalog.load(str(good), {"OPENAI_KEY": "sk-x"})
    model = catalog.get("@openai/gpt-5-mini")
    assert model is not None and model.upstream_model == "gpt-5-mini"
    assert model.price_in == Decimal("0.25") / 1_000_000
    assert "@local/smollm2-135m" in catalog
    with pytest.raises(CatalogError, match="OPENAI_KEY"):
        Catalog.load(str(good), {})
    bad = tmp_path / "bad.toml"
    bad.write_text('[[models]]\nid = "@x/y"\nprovider = "p"\nprice_in = -1\n')
    with pytest.raises(CatalogError, match="price_in"):
        Catalog.load(str(bad), {})


def test_token_counter_counts_with_a_real_tokenizer() -> None:
    from alicerce.tokens import TokenCounter

    counter = TokenCounter()
    assert counter.count("") == 0
    hello = counter.count("Hello world")
    assert 1 <= hello <= 4
    long_text = "The quick brown fox jumps over the lazy dog. " * 50
    assert 400 <= counter.count(long_text) <= 700  # ~10 tokens a sentence, not 4 chars a token
    usage = counter.estimate([{"role": "user", "content": "Hello world"}], "Hi!")
    assert usage.estimated and usage.prompt_tokens == hello + 4 and usage.completion_tokens >= 1
