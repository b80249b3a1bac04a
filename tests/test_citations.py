"""Citations: the same whole and streamed; the chunk each one names, fetched (tenant-checked)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Account

GUIDE = """# Zephyr router guide

## Mesh roaming

Version 4.2 adds mesh roaming between access points; phones move to the nearest one.

## Channels

The 5 GHz radio picks the least busy channel at start and every night at 4 am.
"""


@pytest.fixture
def grounded(account: Account) -> tuple[str, str]:
    """A collection with one document, and a gateway grounded in it: (collection, gateway)."""
    with account.http() as client:
        collection = client.post("/collections", json={"name": "kb-" + uuid.uuid4().hex[:6]})
        collection_id = collection.json()["id"]
        document = {
            "name": "zephyr.md",
            "content": GUIDE,
            "source_url": "https://zephyr.example/guide",
            "metadata": {"version": "4.2"},
        }
        response = client.post(f"/collections/{collection_id}/documents", json=document)
        assert response.status_code == 202, response.text
        account.alicerce.indexed()
    gateway = account.create_gateway(
        model="@mock/echo",
        knowledge={"collections": [collection_id], "strategy": "always", "top_k": 2},
    )
    return collection_id, gateway["id"]


def _streamed_context(account: Account, **request: Any) -> dict[str, Any]:
    chunks = list(account.openai().chat.completions.create(stream=True, **request))
    carrying = [c for c in chunks if (c.model_extra or {}).get("generation_context")]
    assert len(carrying) == 1  # in one chunk only, never twice
    return carrying[0].model_extra["generation_context"]  # type: ignore[index,no-any-return]


def test_citations_are_the_same_whole_and_streamed(
    account: Account, grounded: tuple[str, str]
) -> None:
    _, gateway = grounded
    request: dict[str, Any] = {
        "model": gateway,
        "messages": [
            {"role": "user", "content": "Tell me about the Zephyr router."},
            {"role": "assistant", "content": "It is a mesh router."},
            {"role": "user", "content": "When does it change channel?"},
        ],
    }
    whole = account.openai().chat.completions.create(**request).model_extra["generation_context"]
    streamed = _streamed_context(account, **request)
    with_usage = _streamed_context(account, stream_options={"include_usage": True}, **request)
    assert whole["knowledge"] and whole["knowledge_searches"]
    assert "4 am" in whole["knowledge"][0]["text"]
    for context in (streamed, with_usage):
        assert context["knowledge"] == whole["knowledge"]
        assert context["knowledge_searches"] == whole["knowledge_searches"]


def test_a_chunk_is_fetched_by_the_ids_its_citation_gives(
    account: Account, other_account: Account, grounded: tuple[str, str]
) -> None:
    collection, gateway = grounded
    answer = account.openai().chat.completions.create(
        model=gateway, messages=[{"role": "user", "content": "What does mesh roaming do?"}]
    )
    cited = answer.model_extra["generation_context"]["knowledge"][0]
    document, chunk_id = cited["document_id"], cited["chunk_id"]
    path = f"/collections/{collection}/documents/{document}/chunks/{chunk_id}"
    with account.http() as client:
        response = client.get(path)
        assert response.status_code == 200, response.text
        chunk = response.json()
        assert chunk == {
            "id": chunk_id,
            "object": "chunk",
            "collection_id": collection,
            "document_id": document,
            "document_name": "zephyr.md",
            "text": cited["text"],
            "headings": ["Zephyr router guide", "Mesh roaming"],
            "position": cited["position"],
            "tokens": chunk["tokens"],
            "document": chunk["document"],
        }
        assert chunk["document"]["source_url"] == "https://zephyr.example/guide"
        assert chunk["document"]["metadata"] == {"version": "4.2"}
        other = client.post("/collections", json={"name": "other-" + uuid.uuid4().hex[:6]})
        elsewhere = [
            f"/collections/{collection}/documents/{uuid.uuid4()}/chunks/{chunk_id}",
            f"/collections/{other.json()['id']}/documents/{document}/chunks/{chunk_id}",
            f"/collections/{collection}/documents/{document}/chunks/{uuid.uuid4()}",
        ]
        for wrong in elsewhere:
            missing = client.get(wrong)
            assert missing.status_code == 404, wrong
            assert missing.json()["error"]["type"] == "not_found_error"
    with other_account.http() as client:
        assert client.get(path).status_code == 404  # another account's chunk does not exist
    inference = account.create_key(role="inference")
    with account.http(inference) as client:
        assert client.get(path).status_code == 403
