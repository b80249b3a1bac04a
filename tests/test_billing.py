"""Catalog models: exact line items, fallbacks, `@auto` routing, and the usage ledger."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import openai
import pytest

from alicerce.api.json import encode
from alicerce.billing import LineItem, TokenUsage, inference_line_items
from alicerce.catalog import CatalogModel, Provider
from alicerce.money import Money, plain
from tests.conftest import Account

MILLION = Decimal(1_000_000)


def _items(completion: Any) -> dict[str, dict[str, Any]]:
    context = completion.model_extra["generation_context"]
    return {item["sku"]: item for item in context["generated_usage"]}


def _exact(amount: float) -> Decimal:
    return Decimal(repr(amount))


def test_catalog_model_line_items_split_cached_tokens(account: Account) -> None:
    gateway = account.create_gateway(model="@mock/priced")
    completion = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "What is billing?"}]
    )
    usage = completion.usage
    items = _items(completion)
    assert set(items) == {
        "inference.chat_completions.in",
        "inference.chat_completions.out",
        "inference.chat_completions.in.cached",
    }
    assert items["inference.chat_completions.in"]["quantity"] == usage.prompt_tokens - 8
    assert items["inference.chat_completions.in.cached"]["quantity"] == 8
    assert items["inference.chat_completions.out"]["quantity"] == usage.completion_tokens
    for item, price in (
        (items["inference.chat_completions.in"], Decimal("2.5")),
        (items["inference.chat_completions.in.cached"], Decimal("1.25")),
        (items["inference.chat_completions.out"], Decimal("10")),
    ):
        assert _exact(item["unit_price"]) == price / MILLION
        assert _exact(item["amount"]) == item["quantity"] * price / MILLION
        assert item["description"] == "Inference for AI model '@mock/priced'"


def test_streaming_bills_like_non_streaming(account: Account) -> None:
    gateway = account.create_gateway(model="@mock/priced")
    client = account.openai()
    messages = [{"role": "user", "content": "Same question"}]
    whole = client.chat.completions.create(model=gateway["id"], messages=messages)
    chunks = list(
        client.chat.completions.create(model=gateway["id"], messages=messages, stream=True)
    )
    streamed = chunks[-1].model_extra["generation_context"]["generated_usage"]
    assert streamed == whole.model_extra["generation_context"]["generated_usage"]


def test_unreported_usage_is_estimated_and_labelled(account: Account) -> None:
    gateway = account.create_gateway(model="@mock/nousage")
    completion = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Hello there"}]
    )
    assert completion.usage.completion_tokens > 0
    items = _items(completion)
    assert items["inference.chat_completions.out"]["description"].endswith("(estimated)")
    record = account.alicerce.wait_for_record(completion.id)
    assert record.tokens_estimated is True


@pytest.mark.parametrize("stream", [False, True])
def test_fallback_serves_when_the_first_upstream_returns_503(
    account: Account, stream: bool
) -> None:
    gateway = account.create_gateway(model="@mock/down", fallbacks=["@mock/broken", "@mock/plain"])
    before = len(account.upstream.mock.received)
    raw = account.openai().chat.completions.with_raw_response.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Q"}], stream=stream
    )
    assert raw.headers["x-alicerce-model"] == "@mock/plain"
    if stream:
        chunks = list(raw.parse())
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        items = chunks[-1].model_extra["generation_context"]["generated_usage"]
    else:
        completion = raw.parse()
        text = completion.choices[0].message.content
        assert completion.model == "plain-2026"
        items = completion.model_extra["generation_context"]["generated_usage"]
    assert text == "Hello from the mock upstream."
    assert {i["description"] for i in items} == {"Inference for AI model '@mock/plain'"}
    tried = [b["model"] for b in account.upstream.mock.received[before:]]
    # 503 with retry-after 7 s is longer than the backoff allows: straight to the next model
    assert tried == ["fail-503", "fail-500", "plain"]


def test_all_fallbacks_failing_gives_the_last_error(account: Account) -> None:
    gateway = account.create_gateway(model="@mock/down", fallbacks=["@mock/broken"])
    with pytest.raises(openai.APIStatusError) as caught:
        account.openai().chat.completions.create(
            model=gateway["id"], messages=[{"role": "user", "content": "Q"}]
        )
    assert caught.value.status_code == 502


def test_client_errors_are_not_retried_elsewhere(account: Account, upstream) -> None:
    gateway = account.create_gateway(
        endpoint={"base_url": account.upstream.url, "model": "fail-400"}, fallbacks=["@mock/plain"]
    )
    with pytest.raises(openai.BadRequestError):
        account.openai().chat.completions.create(
            model=gateway["id"], messages=[{"role": "user", "content": "Q"}]
        )


@pytest.mark.parametrize(
    ("prompt", "complexity", "served", "fallback"),
    [
        ("EASY: hello!", "1", "@mock/plain", None),
        ("HARD: prove the theorem", "5", "@mock/priced", None),
        ("something else", "3", "@mock/echo", "true"),
    ],
)
def test_auto_routes_by_complexity(
    account: Account, prompt: str, complexity: str, served: str, fallback: str | None
) -> None:
    gateway = account.create_gateway(
        model="@auto",
        routing={"router": "@mock/router", "tiers": ["@mock/plain", "@mock/echo", "@mock/priced"]},
    )
    raw = account.openai().chat.completions.with_raw_response.create(
        model=gateway["id"], messages=[{"role": "user", "content": prompt}]
    )
    assert raw.headers["x-alicerce-routed-complexity"] == complexity
    assert raw.headers.get("x-alicerce-routing-fallback") == fallback
    assert raw.headers["x-alicerce-model"] == served
    items = _items(raw.parse())
    routing_in = items["inference.resolving.routing_complexity.in"]
    assert _exact(routing_in["unit_price"]) == Decimal("0.1") / MILLION
    assert "inference.resolving.routing_complexity.out" in items
    assert "inference.chat_completions.out" in items


def test_auto_with_a_failing_router_uses_the_middle_tier(account: Account) -> None:
    gateway = account.create_gateway(
        model="@auto",
        routing={"router": "@mock/down", "tiers": ["@mock/plain", "@mock/echo", "@mock/priced"]},
    )
    raw = account.openai().chat.completions.with_raw_response.create(
        model=gateway["id"], messages=[{"role": "user", "content": "EASY"}]
    )
    assert raw.headers["x-alicerce-model"] == "@mock/echo"
    assert raw.headers["x-alicerce-routing-fallback"] == "true"


def test_200_concurrent_requests_sum_to_what_usage_reports(account: Account) -> None:
    gateway = account.create_gateway(model="@mock/priced")

    async def one(client: openai.AsyncOpenAI, i: int) -> tuple[str, Decimal]:
        messages = [{"role": "user", "content": f"question number {i} " * (i % 7 + 1)}]
        if i % 2:
            stream = await client.chat.completions.create(
                model=gateway["id"],
                messages=messages,
                stream=True,
                stream_options={"include_usage": i % 4 == 1},
            )
            last = None
            async for chunk in stream:
                last = chunk
            request_id = last.id
            items = last.model_extra["generation_context"]["generated_usage"]
        else:
            completion = await client.chat.completions.create(
                model=gateway["id"], messages=messages
            )
            request_id = completion.id
            items = completion.model_extra["generation_context"]["generated_usage"]
        return request_id, sum((_exact(item["amount"]) for item in items), Decimal(0))

    async def run() -> list[tuple[str, Decimal]]:
        client = account.async_openai()
        answers = await asyncio.gather(*(one(client, i) for i in range(200)))
        await client.close()
        return answers

    answers = asyncio.run(run())
    total = sum((amount for _, amount in answers), Decimal(0))
    assert total > 0
    for request_id, _ in answers:  # a stream is recorded when it ends, maybe after its last byte
        assert account.alicerce.recorded.event(request_id).wait(10), request_id
    account.alicerce.flushed()
    with account.http() as client:
        usage = client.get("/usage").json()
        by_sku = client.get("/usage", params={"group_by": "sku"}).json()
    assert usage["requests"] == 200
    assert Decimal(usage["amount_exact"]) == total  # to the last decimal
    assert sum(Decimal(g["amount_exact"]) for g in by_sku["data"]) == total
    assert {g["sku"] for g in by_sku["data"]} == {
        "inference.chat_completions.in",
        "inference.chat_completions.out",
        "inference.chat_completions.in.cached",
    }


def test_usage_groups_and_request_log_paging(account: Account) -> None:
    gateway = account.create_gateway(model="@mock/plain")
    other = account.create_gateway(model="@mock/priced")
    client = account.openai()
    ids = []
    for i in range(5):
        ids.append(
            client.chat.completions.create(
                model=gateway["id"],
                messages=[{"role": "user", "content": "Q"}],
                metadata={"ticket": str(i % 2), "team": "support"},
            ).id
        )
    ids.append(
        client.chat.completions.create(
            model=other["id"], messages=[{"role": "user", "content": "Q"}]
        ).id
    )
    account.alicerce.wait_for_record(ids[-1])
    with account.http() as http:
        by_gateway = http.get("/usage", params={"group_by": "gateway"}).json()["data"]
        counts = {g["gateway"]: g["requests"] for g in by_gateway}
        assert counts == {gateway["id"]: 5, other["id"]: 1}
        by_day = http.get("/usage", params={"group_by": "day"}).json()["data"]
        assert len(by_day) == 1 and by_day[0]["requests"] == 6
        by_key = http.get("/usage", params={"group_by": "key"}).json()["data"]
        assert by_key[0]["requests"] == 6
        empty = http.get("/usage", params={"from": "2000-01-01T00:00:00Z", "to": "2000-01-02"})
        assert empty.json()["requests"] == 0
        bad = http.get("/usage", params={"from": "yesterday"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "from"
        assert http.get("/usage", params={"group_by": "color"}).status_code == 400

        page = http.get("/requests", params={"gateway": gateway["slug"], "limit": 2}).json()
        assert [r["id"] for r in page["data"]] == ids[4:2:-1]  # newest first
        assert page["has_more"] is True
        rest = http.get(
            "/requests",
            params={"gateway": gateway["id"], "limit": 10, "cursor": page["next_cursor"]},
        ).json()
        assert [r["id"] for r in rest["data"]] == ids[2::-1]
        assert rest["has_more"] is False
        found = http.get("/requests", params={"metadata.ticket": "1"}).json()["data"]
        assert sorted(r["id"] for r in found) == sorted([ids[1], ids[3]])
        assert found[0]["metadata"] == {"ticket": "1", "team": "support"}
        assert found[0]["line_items"][0]["sku"].startswith("inference.chat_completions")


def test_usage_is_private_to_the_account(account: Account, other_account: Account) -> None:
    gateway = account.create_gateway(model="@mock/plain")
    account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Q"}]
    )
    with other_account.http() as http:
        assert http.get("/usage").json()["requests"] == 0
        assert http.get("/requests").json()["data"] == []
        assert http.get("/requests", params={"gateway": gateway["id"]}).status_code == 404


# -- pricing, without a server --------------------------------------------------------


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
    assert item.to_json()["amount"] == Decimal("0.3")
    assert item.to_record()["amount"] == "0.3"


def test_amounts_are_plain_decimal_numbers_in_json_and_plain_strings_in_the_ledger() -> None:
    """Per-token prices are small: neither `5E-7` (Decimal's str) nor `5e-07` may show."""
    item = LineItem("inference.chat_completions.in", 2, Decimal("0.25") / 1_000_000, "d")
    assert item.to_record() | {"description": ""} == {
        "sku": "inference.chat_completions.in",
        "quantity": 2,
        "unit_price": "0.00000025",
        "amount": "0.0000005",
        "description": "",
    }
    assert encode(item.to_json()) == (
        b'{"sku":"inference.chat_completions.in","quantity":2,'
        b'"unit_price":0.00000025,"amount":0.0000005,"description":"d"}'
    )
    assert LineItem.from_record(item.to_record()) == item
    old = {"sku": "x", "quantity": 3, "unit_price": "5E-7", "description": "d"}  # before
    assert LineItem.from_record(old).to_record()["amount"] == "0.0000015"
    assert [plain(Decimal(v)) for v in ("1E+2", "0E-7", "12.50", "0.000021000")] == [
        "100",
        "0",
        "12.5",
        "0.000021",
    ]
    tiny = Money("5E-7")
    assert str(tiny) == f"{tiny}" == "0.0000005" and f"{tiny:.2e}" == "5.00e-7"
    assert tiny * 2 == Decimal("0.000001") and type(tiny * 2) is Decimal


def test_usage_from_upstream_is_validated() -> None:
    assert TokenUsage.from_openai(None) is None
    assert TokenUsage.from_openai({"prompt_tokens": "many"}) is None
    usage = TokenUsage.from_openai(
        {"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 9}}
    )
    assert usage == TokenUsage(5, 2, 0)  # cached can never exceed the prompt
