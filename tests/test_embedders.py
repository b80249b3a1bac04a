"""A remote embedder's failures, which mean what a chat upstream's mean (against the mock
upstream, a real HTTP server on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from alicerce.embeddings import OpenAIEmbedder
from alicerce.errors import AlicerceError, InvalidRequest
from alicerce.upstreams.http import HttpClients, OpenAIHttpUpstream
from tests.conftest import Upstream

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
