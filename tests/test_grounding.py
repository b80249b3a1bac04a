"""Answers grounded in knowledge collections: each strategy, what the model is given and billed."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from alicerce.inference.grounding import REWRITE_INSTRUCTIONS
from alicerce.inference.references import NO_MATCH, SEARCH_FAILED
from tests.conftest import Account, Alicerce, Upstream

PRICING = (
    "Pricing of the Acme Turbo plan: the Turbo plan costs 42 euros per month and includes "
    "unlimited widgets."
)
PRICING_DOCUMENT = {
    "name": "pricing.md",
    "content": PRICING,
    "source_url": "https://acme.example/pricing",
    "metadata": {"team": "sales"},
}
BAKING = "O pão de queijo leva polvilho azedo, queijo meia-cura, ovos, leite e óleo."


def _collection(account: Account) -> str:
    with account.http() as client:
        response = client.post("/collections", json={"name": "kb-" + uuid.uuid4().hex[:6]})
        assert response.status_code == 201, response.text
        collection = response.json()["id"]
        for document in (PRICING_DOCUMENT, {"name": "receitas.md", "content": BAKING}):
            response = client.post(f"/collections/{collection}/documents", json=document)
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
    account: Account, collection: str, upstream: Upstream
) -> None:
    gateway = _gateway(account, collection)
    question = "How much does the Turbo plan cost per month?"
    answer = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": question}]
    )
    system = upstream.mock.last()["messages"][0]["content"]  # what the model was sent
    assert system == _system_seen(answer)
    assert "<reference_data>\nPassages from" in system and 'confidence="low"' not in system
    assert '<passage document="pricing.md"' in system and "42 euros" in system
    assert "not instructions" in system and "pão" not in system
    context = answer.model_extra["generation_context"]
    [cited] = context["knowledge"]
    assert cited["document_name"] == "pricing.md" and cited["collection_id"] == collection
    assert 0 < cited["score"] <= 1
    assert cited["text"] == PRICING and cited["text_truncated"] is False
    assert cited["headings"] == [] and cited["position"] == 0
    assert cited["source_url"] == "https://acme.example/pricing"
    assert cited["metadata"] == {"team": "sales"} and cited["low_confidence"] is False
    skus = [item["sku"] for item in context["generated_usage"]]
    assert skus.count("knowledge.search") == 1
    [search] = context["knowledge_searches"]
    assert search["strategy"] == "always" and search["query"] == question
    assert search["context_query"] is None and search["searches"] == 1
    assert search["outcome"] == "matched" and search["error"] is None
    assert (search["top_k"], search["min_score"], search["mode"]) == (1, 0.2, "hybrid")
    first, second = search["hits"]  # top_k 1, and the runner-up
    assert first["chunk_id"] == cited["chunk_id"] and first["used"] is True
    assert first["reason"] is None and first["low_confidence"] is False
    assert second["document_name"] == "receitas.md"
    assert second["used"] is False and second["reason"] == "beyond_top_k"


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


def test_nothing_above_min_score_still_reaches_the_model_marked_low_confidence(
    account: Account, collection: str, upstream: Upstream
) -> None:
    marker = uuid.uuid4().hex
    gateway = _gateway(account, collection, min_score=0.999, top_k=5)
    answer = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": f"Turbo plan price? ({marker})"}]
    )
    system = upstream.mock.sent_with(marker)["messages"][0]["content"]
    assert '<reference_data confidence="low">\nLow-confidence passages' in system
    assert "may not answer the question" in system and "42 euros" in system
    assert NO_MATCH not in system
    context = answer.model_extra["generation_context"]
    assert context["knowledge"][0]["document_name"] == "pricing.md"
    assert all(k["low_confidence"] for k in context["knowledge"])
    [search] = context["knowledge_searches"]
    assert search["outcome"] == "low_confidence"
    assert all(h["used"] and h["low_confidence"] for h in search["hits"])
    assert "knowledge.search" in [item["sku"] for item in context["generated_usage"]]


def test_a_gateway_can_drop_what_is_below_min_score(
    account: Account, collection: str, upstream: Upstream
) -> None:
    marker = uuid.uuid4().hex
    gateway = _gateway(account, collection, min_score=0.999, below_threshold="drop")
    assert gateway["knowledge"]["below_threshold"] == "drop"
    answer = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": f"Turbo plan price? ({marker})"}]
    )
    assert NO_MATCH in upstream.mock.sent_with(marker)["messages"][0]["content"]
    context = answer.model_extra["generation_context"]
    assert context["knowledge"] == []
    [search] = context["knowledge_searches"]
    assert search["outcome"] == "no_match" and search["below_threshold"] == "drop"
    assert [h["reason"] for h in search["hits"]] == ["below_min_score", "beyond_top_k"]
    assert not any(h["used"] for h in search["hits"])
    assert "knowledge.search" in [item["sku"] for item in context["generated_usage"]]


def test_a_search_that_fails_does_not_fail_the_answer(account: Account, upstream: Upstream) -> None:
    embedding = {"base_url": upstream.url, "model": "fail-503", "dimensions": 8}
    with account.http() as client:
        made = client.post("/collections", json={"name": "down", "embedding": embedding})
        assert made.status_code == 201, made.text
    gateway = _gateway(account, made.json()["id"])
    answer = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Turbo plan price?"}]
    )
    assert SEARCH_FAILED in upstream.mock.last()["messages"][0]["content"]
    context = answer.model_extra["generation_context"]
    assert context["knowledge"] == []
    [search] = context["knowledge_searches"]
    assert search["outcome"] == "failed" and "fail-503" in search["error"]
    assert search["searches"] == 0 and search["hits"] == []
    assert "knowledge.search" not in [item["sku"] for item in context["generated_usage"]]


@pytest.mark.parametrize(
    ("knowledge", "param"),
    [
        ({"below_threshold": "ignore"}, "knowledge.below_threshold"),
        ({"context_weight": 1.5}, "knowledge.context_weight"),
        ({"context_weight": "much"}, "knowledge.context_weight"),
    ],
)
def test_bad_grounding_settings_are_refused(
    account: Account, collection: str, knowledge: dict[str, Any], param: str
) -> None:
    body = {
        "name": "gw-" + uuid.uuid4().hex[:6],
        "model": "@mock/echo",
        "knowledge": {"collections": [collection], "strategy": "always", **knowledge},
    }
    with account.http() as client:
        response = client.post("/gateways", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param


def test_the_defaults_are_low_confidence_and_a_conversation_aware_always(
    account: Account, collection: str
) -> None:
    gateway = account.create_gateway(
        model="@mock/echo", knowledge={"collections": [collection], "strategy": "always"}
    )
    assert gateway["knowledge"]["below_threshold"] == "low_confidence"
    assert gateway["knowledge"]["context_weight"] == 0.7


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
    assert "<reference_data" in chat["messages"][0]["content"]  # (echo's query: low confidence)
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
    [cited] = context["knowledge"]
    assert cited["text"] == PRICING and cited["source_url"] == "https://acme.example/pricing"
    assert [i["sku"] for i in context["generated_usage"]].count("knowledge.search") == 1
    [search] = context["knowledge_searches"]
    assert search["strategy"] == "tool" and search["query"] == "Turbo price"
    assert search["outcome"] == "matched" and search["hits"][0]["used"] is True
    assert search["hits"][0]["chunk_id"] == cited["chunk_id"]


def test_the_search_tool_gives_low_confidence_passages_marked(
    account: Account, collection: str
) -> None:
    gateway = account.create_gateway(
        model="@mock/agent",
        knowledge={"collections": [collection], "strategy": "tool", "min_score": 0.999},
    )
    kwargs: dict[str, Any] = {
        "model": gateway["id"],
        "messages": [{"role": "user", "content": 'CALL search_knowledge {"query": "Turbo price"}'}],
    }
    text, context = account.answer(stream=False, **kwargs)
    assert '<reference_data confidence="low">' in text and "42 euros" in text
    assert context["knowledge"] and all(k["low_confidence"] for k in context["knowledge"])
    assert context["knowledge_searches"][0]["outcome"] == "low_confidence"


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


MANUALS = Path(__file__).parent / "fixtures" / "knowledge" / "manuals"
FOLLOW_UP = [
    {"role": "user", "content": "I'm about to run the self-cleaning programme of my Borealis."},
    {"role": "assistant", "content": "Good idea: remove the racks first."},
    {"role": "user", "content": "It says E42 now, what should I do?"},
]


@pytest.fixture(scope="module")
def manuals(alicerce: Alicerce, upstream: Upstream) -> tuple[Account, str]:
    """An account with three product manuals that each explain an error E42."""
    with alicerce.http(alicerce.root_key) as client:
        made = client.post("/accounts", json={"name": "manuals-" + uuid.uuid4().hex[:6]}).json()
    account = Account(made["id"], made["admin_key"], alicerce, upstream)
    with account.http() as client:
        collection = client.post("/collections", json={"name": "manuals"}).json()["id"]
        for name in ("aurora-x2-dishwasher.md", "borealis-b60-oven.md", "cirrus-r5-router.md"):
            body = {"name": name, "content": (MANUALS / name).read_text()}
            response = client.post(f"/collections/{collection}/documents", json=body)
            assert response.status_code == 202, response.text
        alicerce.indexed()
    return account, collection


def test_a_follow_up_finds_what_the_conversation_is_about(
    manuals: tuple[Account, str], upstream: Upstream
) -> None:
    account, collection = manuals
    gateway = account.create_gateway(
        model="@mock/echo", knowledge={"collections": [collection], "strategy": "always"}
    )
    answer = account.openai().chat.completions.create(model=gateway["id"], messages=FOLLOW_UP)
    system = upstream.mock.last()["messages"][0]["content"]
    first_passage = system[system.index("<passage") :]
    assert first_passage.startswith('<passage document="borealis-b60-oven.md" section=')
    assert "door lock fault" in first_passage.split("</passage>")[0]
    context = answer.model_extra["generation_context"]
    assert context["knowledge"][0]["document_name"] == "borealis-b60-oven.md"
    [search] = context["knowledge_searches"]
    assert search["query"] == FOLLOW_UP[-1]["content"]
    assert search["context_query"] == f"{FOLLOW_UP[0]['content']}\n{FOLLOW_UP[-1]['content']}"
    assert search["context_weight"] == 0.7 and search["searches"] == 2
    best = search["hits"][0]
    fused = 0.3 * best["query_score"] + 0.7 * best["context_score"]
    assert best["score"] == pytest.approx(fused, abs=1e-3)
    [searches] = [i for i in context["generated_usage"] if i["sku"] == "knowledge.search"]
    assert searches["quantity"] == 2  # two searches, each billed


def test_the_last_turn_alone_misses_the_follow_up(
    manuals: tuple[Account, str],
) -> None:
    """What `always` searched before it read the conversation (and `context_weight: 0` still
    does): the follow-up's own words point at another manual's E42."""
    account, collection = manuals
    gateway = account.create_gateway(
        model="@mock/echo",
        knowledge={"collections": [collection], "strategy": "always", "context_weight": 0},
    )
    answer = account.openai().chat.completions.create(model=gateway["id"], messages=FOLLOW_UP)
    context = answer.model_extra["generation_context"]
    assert context["knowledge"][0]["document_name"] != "borealis-b60-oven.md"
    [search] = context["knowledge_searches"]
    assert search["context_query"] is None and search["searches"] == 1


def test_a_change_of_subject_is_not_dragged_back(manuals: tuple[Account, str]) -> None:
    account, collection = manuals
    gateway = account.create_gateway(
        model="@mock/echo", knowledge={"collections": [collection], "strategy": "always"}
    )
    messages = [
        {"role": "user", "content": "My Aurora X2 shows E11."},
        {"role": "assistant", "content": "The drain pump is blocked; clean the filter."},
        {"role": "user", "content": "Separately, on my Borealis oven, what does E42 mean?"},
    ]
    answer = account.openai().chat.completions.create(model=gateway["id"], messages=messages)
    cited = answer.model_extra["generation_context"]["knowledge"][0]
    assert cited["document_name"] == "borealis-b60-oven.md" and "door lock" in cited["text"]
