"""`/embeddings` through the official `openai` SDK, with the real local embedding model."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import openai
import pytest

from alicerce.embeddings import LOCAL_EMBEDDING_MODEL
from tests.conftest import Account

PT = "O gato está dormindo no sofá da sala."
EN = "The cat is sleeping on the living room sofa."
UNRELATED = "Quarterly revenue grew by twelve percent."


def _cosine(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a), np.asarray(b)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def test_sdk_default_base64_gives_unit_vectors_that_understand_translation(
    account: Account,
) -> None:
    answer = account.openai().embeddings.create(
        model=LOCAL_EMBEDDING_MODEL, input=[PT, EN, UNRELATED]
    )
    assert answer.object == "list"
    assert answer.model == LOCAL_EMBEDDING_MODEL
    assert [row.index for row in answer.data] == [0, 1, 2]
    vectors = [row.embedding for row in answer.data]
    assert all(len(v) == 384 for v in vectors)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-3 for v in vectors)
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2]) + 0.05
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 0


def test_float_and_base64_agree_and_base64_is_little_endian_float32(account: Account) -> None:
    client = account.openai()
    floats = client.embeddings.create(
        model=LOCAL_EMBEDDING_MODEL, input=PT, encoding_format="float"
    )
    with account.http() as http:
        raw = http.post(
            "/embeddings",
            json={"model": LOCAL_EMBEDDING_MODEL, "input": PT, "encoding_format": "base64"},
        ).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, floats.data[0].embedding, atol=1e-6)


def test_async_client_and_v1_path(account: Account) -> None:
    async def run() -> list[float]:
        async with openai.AsyncOpenAI(
            base_url=account.alicerce.url + "/v1", api_key=account.admin_key, max_retries=0
        ) as client:
            answer = await client.embeddings.create(
                model=LOCAL_EMBEDDING_MODEL, input=EN, dimensions=384
            )
        return answer.data[0].embedding

    assert len(asyncio.run(run())) == 384


def test_request_is_recorded_and_summed_in_usage(account: Account) -> None:
    answer = account.openai().embeddings.with_raw_response.create(
        model=LOCAL_EMBEDDING_MODEL, input=[PT, EN]
    )
    request_id = answer.headers["x-request-id"]
    tokens = answer.parse().usage.prompt_tokens
    row = account.alicerce.wait_for_record(request_id)
    assert row.endpoint == "embeddings"
    assert row.status_code == 200
    assert row.model == LOCAL_EMBEDDING_MODEL
    assert row.prompt_tokens == tokens
    with account.http() as http:
        totals = http.get("/usage", params={"group_by": "sku"}).json()
    by_sku = {group["sku"]: group for group in totals["data"]}
    assert by_sku["inference.embeddings.in"]["quantity"] == tokens
    assert by_sku["inference.embeddings.in"]["requests"] == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "text-embedding-3-small", "input": "x"}, "model"),
        ({"model": LOCAL_EMBEDDING_MODEL, "input": "x", "dimensions": 256}, "dimensions"),
        ({"model": LOCAL_EMBEDDING_MODEL, "input": [[1, 2, 3]]}, "input[0]"),
        ({"model": LOCAL_EMBEDDING_MODEL, "input": []}, "input"),
        ({"model": LOCAL_EMBEDDING_MODEL, "input": ["ok", ""]}, "input[1]"),
        ({"model": LOCAL_EMBEDDING_MODEL, "input": 3}, "input"),
        ({"model": LOCAL_EMBEDDING_MODEL, "input": "x", "encoding_format": "int8"}, None),
        ({"model": LOCAL_EMBEDDING_MODEL, "input": ["x"] * 2049}, "input"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    account: Account, body: dict[str, object], param: str | None
) -> None:
    with account.http() as http:
        response = http.post("/embeddings", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    assert "x-request-id" in response.headers


def test_too_much_text_is_a_413(account: Account) -> None:
    with account.http() as http:
        response = http.post(
            "/embeddings", json={"model": LOCAL_EMBEDDING_MODEL, "input": ["a" * 30_000] * 4}
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_gateway_restricted_key_and_missing_key(account: Account) -> None:
    gateway = account.create_gateway()
    restricted = account.create_key(role="inference", gateways=[gateway["id"]])
    with pytest.raises(openai.PermissionDeniedError):
        account.openai(restricted).embeddings.create(model=LOCAL_EMBEDDING_MODEL, input="x")
    with account.alicerce.http(None) as http:
        assert http.post("/embeddings", json={"model": LOCAL_EMBEDDING_MODEL}).status_code == 401


def test_rate_limits_apply(account: Account) -> None:
    client = account.openai(account.create_key(role="inference", rpm=1))
    client.embeddings.create(model=LOCAL_EMBEDDING_MODEL, input="x")
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model=LOCAL_EMBEDDING_MODEL, input="x")


def test_model_list_names_the_embedding_model(account: Account) -> None:
    ids = [model.id for model in account.openai().models.list()]
    assert LOCAL_EMBEDDING_MODEL in ids


def test_a_catalog_embedding_model_is_served_from_its_provider(account: Account) -> None:
    client = account.openai()
    answer = client.embeddings.create(model="@mock/embed", input=["uma frase", "another one"])
    sent = account.upstream.mock.last()
    assert sent["model"] == "embed-8" and sent["input"] == ["uma frase", "another one"]
    assert answer.model == "@mock/embed" and [d.index for d in answer.data] == [0, 1]
    vectors = np.array([d.embedding for d in answer.data])
    assert vectors.shape == (2, 8)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert answer.usage.prompt_tokens == 4  # the provider's own count
    with account.http() as http:
        requests = http.get("/requests", params={"limit": 5}).json()["data"]
    record = next(r for r in requests if r["endpoint"] == "embeddings")
    assert record["model"] == "@mock/embed"
    [item] = record["line_items"]
    assert item["sku"] == "inference.embeddings.in" and item["quantity"] == 4
    assert float(item["unit_price"]) == pytest.approx(0.02 / 1_000_000)


def test_catalog_embedding_models_are_checked(account: Account) -> None:
    client = account.openai()
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="@mock/embed", input="x", dimensions=384)
    assert caught.value.body["param"] == "dimensions"
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="@mock/priced", input="x")  # a chat model
    assert caught.value.body["param"] == "model"
    with account.http() as http:
        response = http.post("/gateways", json={"name": "emb", "model": "@mock/embed"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "model_not_chat"
