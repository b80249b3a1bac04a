"""Answers grounded in knowledge collections: each strategy, what the model is given and billed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from alicerce.inference.grounding import NO_MATCH, REWRITE_INSTRUCTIONS
from tests.conftest import Account

PRICING = (
    "Pricing of the Acme Turbo plan: the Turbo plan costs 42 euros per month and includes "
    "unlimited widgets."
)
BAKING = "O pão de queijo leva polvilho azedo, queijo meia-cura, ovos, leite e óleo."


def _collection(account: Account) -> str:
    with account.http() as client:
        response = client.post("/collections", json={"name": "kb-" + uuid.uuid4().hex[:6]})
        assert response.status_code == 201, response.text
        collection = response.json()["id"]
        for name, content in (("pricing.md", PRICING), ("receitas.md", BAKING)):
            response = client.post(
                f"/collections/{collection}/documents", json={"name": name, "content": content}
            )
            assert response.status_code in (200, 202), response.text
            document = response.json()["id"]
            account.alicerce.indexed()
            status = client.get(f"/collections/{collection}/documents/{document}").json()
            assert status["status"] == "ready", status
    return collection


@pytest.fixture
def collection(account: Account) -> str:
    return _collection(account)


def _gateway(account: Account, collection: str, **knowledge: Any) -> dict[str, Any]:
    knowledge = {"collections": [collection], "strategy": "always", "top_k": 1, **knowledge}
    spec: dict[str, Any] = {"model": "@mock/echo", "knowledge": knowledge}
    return account.create_gateway(**spec)


def _system_seen(answer: Any) -> str:
    """What the echo model was sent as its system message."""
    sent = json.loads(answer.choices[0].message.content)
    assert sent["messages"][0]["role"] == "system"
    return str(sent["messages"][0]["content"])


def test_always_puts_the_best_chunk_in_the_system_message_and_cites_it(
    account: Account, collection: str
) -> None:
    gateway = _gateway(account, collection)
    answer = account.openai().chat.completions.create(
        model=gateway["id"],
        messages=[{"role": "user", "content": "How much does the Turbo plan cost per month?"}],
    )
    system = _system_seen(answer)
    assert '<passage document="pricing.md"' in system and "42 euros" in system
    assert "not instructions" in system and "pão" not in system
    context = answer.model_extra["generation_context"]
    [cited] = context["knowledge"]
    assert cited["document_name"] == "pricing.md" and cited["collection_id"] == collection
    assert 0 < cited["score"] <= 1
    skus = [item["sku"] for item in context["generated_usage"]]
    assert skus.count("knowledge.search") == 1


def test_portuguese_question_finds_the_portuguese_document(
    account: Account, collection: str
) -> None:
    gateway = _gateway(account, collection)
    answer = account.openai().chat.completions.create(
        model=gateway["id"],
        messages=[{"role": "user", "content": "Quais ingredientes leva o pao de queijo?"}],
    )
    [cited] = answer.model_extra["generation_context"]["knowledge"]
    assert cited["document_name"] == "receitas.md"


def test_nothing_above_min_score_tells_the_model_so(account: Account, collection: str) -> None:
    gateway = _gateway(account, collection, min_score=0.999)
    answer = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Turbo plan price?"}]
    )
    assert NO_MATCH in _system_seen(answer)
    context = answer.model_extra["generation_context"]
    assert context["knowledge"] == []
    assert "knowledge.search" in [item["sku"] for item in context["generated_usage"]]


def test_concatenate_searches_with_the_earlier_user_turns(
    account: Account, collection: str
) -> None:
    messages = [
        {"role": "user", "content": "Tell me about the Acme Turbo plan pricing."},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "And per month?"},
    ]
    gateway = _gateway(account, collection, strategy="concatenate", context_turns=2)
    answer = account.openai().chat.completions.create(model=gateway["id"], messages=messages)
    [cited] = answer.model_extra["generation_context"]["knowledge"]
    assert cited["document_name"] == "pricing.md"


def test_rewrite_asks_the_model_for_a_query_and_bills_it(
    account: Account, collection: str, upstream
) -> None:
    gateway = _gateway(account, collection, strategy="rewrite")
    answer = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Turbo plan price?"}]
    )
    rewrite, chat = upstream.mock.received[-2:]
    assert rewrite["messages"][0]["content"] == REWRITE_INSTRUCTIONS
    assert rewrite["messages"][1]["content"] == "user: Turbo plan price?"
    assert "<reference_data>" in chat["messages"][0]["content"]
    skus = [i["sku"] for i in answer.model_extra["generation_context"]["generated_usage"]]
    assert "inference.resolving.query_rewrite.in" in skus
    assert "inference.resolving.query_rewrite.out" in skus
    assert "knowledge.search" in skus


@pytest.mark.parametrize("stream", [False, True])
def test_tool_strategy_lets_the_model_search(account: Account, collection: str, stream) -> None:
    gateway = account.create_gateway(
        model="@mock/agent",
        knowledge={"collections": [collection], "strategy": "tool", "top_k": 1},
    )
    kwargs: dict[str, Any] = {
        "model": gateway["id"],
        "messages": [{"role": "user", "content": 'CALL search_knowledge {"query": "Turbo price"}'}],
    }
    text, context = account.answer(stream=stream, **kwargs)
    assert "42 euros" in text and 'document="pricing.md"' in text
    [run] = context["runned_functions"]
    assert run["name"] == "search_knowledge" and run["error"] is None
    assert [k["document_name"] for k in context["knowledge"]] == ["pricing.md"]
    assert [i["sku"] for i in context["generated_usage"]].count("knowledge.search") == 1


def test_streaming_answer_cites_its_chunks(account: Account, collection: str) -> None:
    gateway = _gateway(account, collection)
    chunks = list(
        account.openai().chat.completions.create(
            model=gateway["slug"],
            messages=[{"role": "user", "content": "Turbo plan monthly cost"}],
            stream=True,
        )
    )
    context = chunks[-1].model_extra["generation_context"]
    assert [k["document_name"] for k in context["knowledge"]] == ["pricing.md"]


def test_bring_your_own_endpoint_pays_only_for_the_search(
    account: Account, collection: str
) -> None:
    gateway = account.create_gateway(
        endpoint={"base_url": account.upstream.url, "model": "echo"},
        knowledge={"collections": [collection], "strategy": "always"},
    )
    answer = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Turbo plan price?"}]
    )
    skus = [i["sku"] for i in answer.model_extra["generation_context"]["generated_usage"]]
    assert skus == ["knowledge.search"]


def test_a_gateway_cannot_use_another_accounts_collection(
    account: Account, other_account: Account, collection: str
) -> None:
    with other_account.http() as client:
        response = client.post(
            "/gateways",
            json={
                "name": "thief",
                "model": "@mock/echo",
                "knowledge": {"collections": [collection], "strategy": "always"},
            },
        )
    assert response.status_code in (400, 404)
    assert response.json()["error"]["param"].startswith("knowledge.collections")


def test_a_repeated_query_is_embedded_once(
    account: Account, collection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = account.alicerce.services.embedder
    queries: list[str] = []
    embed = embedder.embed

    async def counting(texts: Any, *, kind: Any) -> Any:
        if kind == "query":
            queries.extend(texts)
        return await embed(texts, kind=kind)

    monkeypatch.setattr(embedder, "embed", counting)
    question = f"Turbo plan price? {uuid.uuid4().hex[:6]}"
    with account.http() as client:
        for _ in range(3):
            response = client.post(f"/collections/{collection}/search", json={"query": question})
            assert response.status_code == 200
            assert response.json()["data"][0]["document_name"] == "pricing.md"
    assert queries == [question]
