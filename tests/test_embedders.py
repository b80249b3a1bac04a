"""The embedder registry (`alicerce.embedders`), and a remote embedder's failures, which mean
what a chat upstream's mean (against the mock upstream, a real HTTP server on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from alicerce.catalog import Catalog
from alicerce.embedders import EmbedderRegistry
from alicerce.embeddings import LOCAL_EMBEDDING_MODEL, LocalE5Embedder, OpenAIEmbedder
from alicerce.errors import AlicerceError, InvalidRequest
from alicerce.security import CredentialCipher
from alicerce.upstreams.http import HttpClients, OpenAIHttpUpstream
from tests.conftest import Upstream, write_catalog

LABEL = "'m'"


def _clients(read_timeout_s: float = 5.0) -> HttpClients:
    return HttpClients(
        allow_private=True, pool_size=4, connect_timeout_s=2.0, read_timeout_s=read_timeout_s
    )


async def _failure(call: Callable[[], Awaitable[Any]]) -> AlicerceError:
    with pytest.raises(AlicerceError) as caught:
        await call()
    return caught.value


def _seen(error: AlicerceError) -> tuple[Any, ...]:
    """All a client sees of an error: its status, body and headers."""
    return type(error), error.status, error.to_body(), error.headers()


async def _both_fail(base_url: str, model: str, http: HttpClients) -> tuple[Any, Any]:
    """What the chat upstream and the embedder raise for the same upstream behaviour."""
    assert http.trusted is not None
    chat = OpenAIHttpUpstream(
        http.trusted, base_url=base_url, model=model, api_key=None, headers=None, label=LABEL
    )
    embedder = OpenAIEmbedder(
        http.trusted, base_url=base_url, model=model, dimensions=8, label=LABEL
    )
    body = {"messages": [{"role": "user", "content": "Q"}]}
    from_chat = await _failure(lambda: chat.complete(body))
    from_embedder = await _failure(lambda: embedder.embed(["Q"], kind="query"))
    return _seen(from_chat), _seen(from_embedder)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 429, 500, 502, 503, 504])
def test_an_embedding_upstreams_error_statuses_map_as_a_chat_upstreams(
    upstream: Upstream, status: int
) -> None:
    async def scenario() -> tuple[Any, Any]:
        http = _clients()
        await http.start()
        try:
            return await _both_fail(upstream.url, f"fail-{status}", http)
        finally:
            await http.close()

    from_chat, from_embedder = asyncio.run(scenario())
    assert from_embedder == from_chat
    error_type, client_status, body, headers = from_embedder
    assert f"({status})" in body["error"]["message"] and "mock failure" in body["error"]["message"]
    if status in (429, 503):
        assert client_status == 503 and headers["retry-after"] == "7"
    if status == 504:
        assert client_status == 504 and body["error"]["code"] == "upstream_timeout"
    if status in (401, 403):
        assert client_status == 502
    if status in (400, 404, 422):
        assert error_type is InvalidRequest and body["error"]["code"] == "upstream_rejected"


def test_an_unreachable_or_slow_embedding_upstream_maps_as_a_chat_upstream(
    upstream: Upstream,
) -> None:
    async def scenario() -> list[tuple[Any, Any]]:
        http = _clients(read_timeout_s=0.3)
        await http.start()
        try:
            down = await _both_fail("http://127.0.0.1:9/v1", "m", http)
            slow = await _both_fail(upstream.url, "slow", http)
        finally:
            await http.close()
        return [down, slow]

    (down_chat, down_embedder), (slow_chat, slow_embedder) = asyncio.run(scenario())
    assert down_embedder == down_chat
    assert down_embedder[1] == 503 and down_embedder[3]["retry-after"]
    assert "unreachable" in down_embedder[2]["error"]["message"]
    assert slow_embedder == slow_chat
    assert slow_embedder[1] == 504 and slow_embedder[2]["error"]["code"] == "upstream_timeout"


# -- the registry ----------------------------------------------------------------------------


def _registry(
    catalog: Callable[[], Catalog], http: HttpClients, cipher: CredentialCipher
) -> tuple[EmbedderRegistry, LocalE5Embedder, LocalE5Embedder]:
    local = LocalE5Embedder()  # loads on first use: never here
    indexing = LocalE5Embedder(threads=1, sharing=local)
    registry = EmbedderRegistry(local, cipher=cipher, http=http, catalog=catalog, indexing=indexing)
    return registry, local, indexing


def test_collections_without_an_endpoint_use_the_local_model_and_documents_its_second_engine() -> (
    None
):
    cipher = CredentialCipher("test")
    registry, local, indexing = _registry(Catalog.builtin, _clients(), cipher)
    assert registry.for_collection(None, "kb") is local
    assert registry.for_collection({}, "kb", indexing=True) is indexing
    assert registry.for_model(LOCAL_EMBEDDING_MODEL) is local
    registry.index_in_foreground()  # `alicerce ingest`: no query waits
    assert registry.for_collection(None, "kb", indexing=True) is local


def test_a_collections_endpoint_is_called_with_its_decrypted_key(upstream: Upstream) -> None:
    cipher = CredentialCipher("test")
    endpoint = {
        "base_url": upstream.url,
        "model": "embed-8",
        "dimensions": 8,
        "api_key_encrypted": cipher.encrypt("sk-collection"),
        "query_prefix": "q: ",
    }

    async def scenario() -> tuple[Any, int]:
        http = _clients()
        registry, _, _ = _registry(Catalog.builtin, http, cipher)
        with pytest.raises(AlicerceError):  # no session before the clients start
            registry.for_collection(endpoint, "kb")
        await http.start()
        try:
            embedder = registry.for_collection(endpoint, "kb", indexing=True)
            batch = await embedder.embed(["uma frase"], kind="query")
        finally:
            await http.close()
        return batch.vectors.shape, batch.tokens

    shape, tokens = asyncio.run(scenario())
    assert shape == (1, 8) and tokens == 3  # "q: uma frase", counted by the provider
    assert upstream.mock.last()["input"] == ["q: uma frase"]
    assert upstream.mock.headers[-1]["authorization"] == "Bearer sk-collection"


def test_catalog_models_are_made_once_per_catalog_entry(upstream: Upstream, tmp_path: Path) -> None:
    path = write_catalog(tmp_path, upstream)
    current = [Catalog.load(str(path))]

    async def scenario() -> None:
        http = _clients()
        await http.start()
        try:
            registry, _, _ = _registry(lambda: current[0], http, CredentialCipher("test"))
            first = registry.for_model("@mock/embed")
            assert registry.for_model("@mock/embed") is first
            assert first.model == "embed-8" and first.dimensions == 8
            current[0] = Catalog.load(str(path))  # a reloaded catalog: new entries
            assert registry.for_model("@mock/embed") is not first
            for missing in ("@mock/priced", "text-embedding-3-small"):  # a chat model, none
                with pytest.raises(InvalidRequest) as caught:
                    registry.for_model(missing)
                assert caught.value.param == "model" and caught.value.code == "model_not_found"
        finally:
            await http.close()

    asyncio.run(scenario())


def test_vectors_compare_only_within_one_embedder() -> None:
    remote = {"base_url": "http://embed.example/v1", "model": "hash-64"}
    identity = EmbedderRegistry.identity
    assert identity(None, LOCAL_EMBEDDING_MODEL) == identity({}, LOCAL_EMBEDDING_MODEL)
    assert identity(remote, "hash-64") == identity(dict(remote), "hash-64")
    assert identity(remote, "hash-64") != identity(None, "hash-64")
    assert identity(remote, "hash-64") != identity(remote, "hash-128")
