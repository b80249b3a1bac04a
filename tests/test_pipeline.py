"""The request pipeline: every route through it, every request recorded once, however it ends."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest

from tests.conftest import Account

Q = [{"role": "user", "content": "Q"}]


def _post(account: Account, path: str, body: Any) -> httpx.Response:
    with account.http() as client:
        if isinstance(body, bytes):
            headers = {"content-type": "application/json"}
            return client.post(path, content=body, headers=headers)
        return client.post(path, json=body)


def _recorded_once(account: Account, response: httpx.Response) -> Any:
    request_id = response.headers["x-request-id"]
    row = account.alicerce.wait_for_record(request_id)
    assert account.alicerce.recorded.count(request_id) == 1
    assert row.status_code == response.status_code
    return row


@pytest.mark.parametrize("stream", [False, True])
def test_chat_outcomes_are_each_recorded_once(account: Account, stream: bool) -> None:
    plain = account.create_gateway(endpoint={"base_url": account.upstream.url, "model": "plain"})
    down = account.create_gateway(endpoint={"base_url": account.upstream.url, "model": "fail-503"})
    cases: list[tuple[Any, int]] = [
        ({"model": plain["id"], "messages": Q, "stream": stream}, 200),
        ({"model": down["id"], "messages": Q, "stream": stream}, 503),
        ({"model": "no-such-gateway", "messages": Q, "stream": stream}, 404),
        ({"model": plain["id"], "messages": [], "stream": stream}, 400),
        (b'{"model": "x", "messages": [', 400),
        ({"model": plain["id"], "messages": [{"role": "user", "content": "x" * 300_000}]}, 413),
    ]
    for body, status in cases:
        response = _post(account, "/chat/completions", body)
        assert response.status_code == status, response.text
        row = _recorded_once(account, response)
        assert row.endpoint == "chat.completions"
        assert row.account_id == account.id
        parsed = isinstance(body, dict) and status != 413 and body["messages"]
        assert row.stream is (stream and bool(parsed))
        if status == 503:  # planned and sent: the model and gateway are known
            assert row.gateway_id == down["id"] and row.model == "fail-503"
            assert row.error_type == "upstream_error"


def test_a_failure_is_recorded_with_what_planning_consumed(account: Account) -> None:
    gateway = account.create_gateway(
        model="@auto", routing={"router": "@mock/router", "tiers": ["@mock/down", "@mock/down"]}
    )
    response = _post(account, "/chat/completions", {"model": gateway["id"], "messages": Q})
    assert response.status_code == 503
    row = _recorded_once(account, response)
    skus = {item["sku"] for item in row.line_items}
    assert "inference.resolving.routing_complexity.in" in skus
    assert not any(sku.startswith("inference.chat_completions") for sku in skus)


@pytest.mark.parametrize("stream", [False, True])
def test_responses_share_the_pipeline_routing_and_recording(account: Account, stream: bool) -> None:
    gateway = account.create_gateway(
        model="@auto",
        routing={"router": "@mock/router", "tiers": ["@mock/plain", "@mock/echo", "@mock/priced"]},
    )
    body = {"model": gateway["id"], "input": "HARD: prove the theorem", "stream": stream}
    response = _post(account, "/responses", body)
    assert response.status_code == 200
    assert response.headers["x-alicerce-routed-complexity"] == "5"
    assert response.headers["x-alicerce-model"] == "@mock/priced"
    row = _recorded_once(account, response)
    assert row.endpoint == "responses" and row.stream is stream
    assert row.gateway_id == gateway["id"]

    refused = _post(account, "/responses", body | {"previous_response_id": "resp_1"})
    assert refused.status_code == 400
    row = _recorded_once(account, refused)
    assert row.endpoint == "responses" and row.error_type == "invalid_request_error"
    assert row.stream is False  # refused while parsing: not known to be a stream yet

    untranslatable = _post(account, "/responses", body | {"tools": [{"type": "web_search"}]})
    assert untranslatable.status_code == 400
    assert _recorded_once(account, untranslatable).stream is stream  # parsed, then refused


def test_embeddings_failures_are_recorded_once(account: Account) -> None:
    response = _post(account, "/embeddings", {"model": "no-such-model", "input": "x"})
    assert response.status_code == 400
    row = _recorded_once(account, response)
    assert row.endpoint == "embeddings" and row.model is None


def test_embeddings_answers_are_recorded_once(account: Account) -> None:
    response = _post(account, "/embeddings", {"model": "@mock/embed", "input": ["a", "b"]})
    assert response.status_code == 200
    row = _recorded_once(account, response)
    assert row.model == "@mock/embed" and row.prompt_tokens > 0
