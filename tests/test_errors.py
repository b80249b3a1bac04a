"""OpenAI error objects with the right status, nothing half done."""

from __future__ import annotations

import json
import time

import httpx2 as httpx
import openai
import pytest

from tests.conftest import Account
from tests.mock_upstream import SLOW_SECONDS


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def _post_chat(account: Account, body: object, key: str | None = None, **kw) -> httpx.Response:
    with account.http(key) as client:
        if isinstance(body, bytes | str):
            return client.post(
                "/chat/completions", content=body, headers={"content-type": "application/json"}
            )
        return client.post("/chat/completions", json=body, **kw)


def test_missing_and_wrong_keys_are_401(account: Account) -> None:
    gateway = account.create_gateway()
    body = {"model": gateway["id"], "messages": [{"role": "user", "content": "Q"}]}
    with httpx.Client(base_url=account.alicerce.url) as client:
        missing = client.post("/api/v1/chat/completions", json=body)
        wrong = client.post(
            "/api/v1/chat/completions", json=body, headers={"authorization": "Bearer alc_nope"}
        )
    assert missing.status_code == 401 and _error(missing)["type"] == "authentication_error"
    assert wrong.status_code == 401 and _error(wrong)["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        account.openai("alc_wrong").chat.completions.create(
            model=gateway["id"], messages=[{"role": "user", "content": "Q"}]
        )


def test_malformed_json_is_400(account: Account) -> None:
    response = _post_chat(account, b'{"model": "x", "messages": [')
    assert response.status_code == 400
    assert _error(response)["type"] == "invalid_request_error"


def test_empty_body_is_400(account: Account) -> None:
    assert _post_chat(account, b"").status_code == 400


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "Q"}]}, "model"),
        ({"model": "g"}, "messages"),
        ({"model": "g", "messages": []}, "messages"),
        ({"model": "g", "messages": [{"role": "wizard", "content": "Q"}]}, "messages[0].role"),
        ({"model": "g", "messages": [{"content": "Q"}]}, "messages[0].role"),
        ({"model": "g", "messages": "hello"}, "messages"),
        ({"model": 5, "messages": [{"role": "user", "content": "Q"}]}, "model"),
        (
            {"model": "g", "messages": [{"role": "user", "content": "Q"}], "temperature": "hot"},
            "temperature",
        ),
        (
            {"model": "g", "messages": [{"role": "user", "content": "Q"}], "temperature": 3},
            "temperature",
        ),
        (
            {"model": "g", "messages": [{"role": "user", "content": "Q"}], "max_tokens": 0},
            "max_tokens",
        ),
        ({"model": "g", "messages": [{"role": "user", "content": "Q"}], "stream": "yes"}, "stream"),
        ({"model": "g", "messages": [{"role": "user", "content": "Q"}], "stop": ["a"] * 5}, "stop"),
    ],
)
def test_wrong_types_and_ranges_are_400_with_param(
    account: Account, body: dict, param: str
) -> None:
    response = _post_chat(account, body)
    assert response.status_code == 400, response.text
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error


def test_unknown_fields_are_ignored(account: Account) -> None:
    gateway = account.create_gateway()
    response = _post_chat(
        account,
        {"model": gateway["id"], "messages": [{"role": "user", "content": "Q"}], "n_beams": 9},
    )
    assert response.status_code == 200


def test_oversized_body_is_413(account: Account) -> None:
    gateway = account.create_gateway()
    big = "x" * (300 * 1024)
    response = _post_chat(
        account, {"model": gateway["id"], "messages": [{"role": "user", "content": big}]}
    )
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"


def test_unknown_gateway_is_404(account: Account) -> None:
    response = _post_chat(
        account, {"model": "nope:abcd", "messages": [{"role": "user", "content": "Q"}]}
    )
    assert response.status_code == 404
    assert _error(response)["type"] == "not_found_error"


def test_another_accounts_gateway_is_404_not_403(account: Account, other_account: Account) -> None:
    theirs = other_account.create_gateway()
    for ref in (theirs["id"], theirs["slug"], theirs["name"]):
        response = _post_chat(
            account, {"model": ref, "messages": [{"role": "user", "content": "Q"}]}
        )
        assert response.status_code == 404, ref
    with account.http() as client:
        assert client.get(f"/gateways/{theirs['id']}").status_code == 404
        assert (
            client.patch(f"/gateways/{theirs['id']}", json={"instructions": "x"}).status_code == 404
        )
        assert client.delete(f"/gateways/{theirs['id']}").status_code == 404
    with other_account.http() as client:
        assert client.get(f"/gateways/{theirs['id']}").json()["instructions"] == ""


def test_key_restricted_to_gateways(account: Account) -> None:
    allowed = account.create_gateway()
    other = account.create_gateway()
    key = account.create_key(role="inference", gateways=[allowed["slug"]])
    client = account.openai(key)
    client.chat.completions.create(model=allowed["id"], messages=[{"role": "user", "content": "Q"}])
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(
            model=other["id"], messages=[{"role": "user", "content": "Q"}]
        )
    models = [m.id for m in client.models.list()]
    assert models == [allowed["slug"]]


def test_inference_key_cannot_manage(account: Account) -> None:
    key = account.create_key(role="inference")
    with account.http(key) as client:
        response = client.get("/gateways")
    assert response.status_code == 403
    assert _error(response)["type"] == "permission_error"


def test_root_key_manages_accounts_only(account: Account) -> None:
    with account.alicerce.http(account.alicerce.root_key) as client:
        assert client.get("/gateways").status_code == 403
    with account.http() as client:
        assert client.get("/accounts").status_code == 403


@pytest.mark.parametrize(
    ("model", "status", "error_type"),
    [
        ("fail-500", 502, "upstream_error"),
        ("fail-502", 502, "upstream_error"),
        ("fail-503", 503, "upstream_error"),
        ("fail-504", 504, "upstream_error"),
        ("fail-429", 503, "upstream_error"),
        ("fail-401", 502, "upstream_error"),
        ("fail-400", 400, "invalid_request_error"),
        ("garbage", 502, "upstream_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_failing_upstream_gives_openai_error(
    account: Account, model: str, status: int, error_type: str, stream: bool
) -> None:
    gateway = account.create_gateway(
        endpoint={"base_url": account.upstream.url, "api_key": "sk-never-shown", "model": model}
    )
    response = _post_chat(
        account,
        {"model": gateway["id"], "messages": [{"role": "user", "content": "Q"}], "stream": stream},
    )
    assert response.status_code == status, response.text
    error = _error(response)
    assert error["type"] == error_type
    assert "sk-never-shown" not in response.text
    assert gateway["slug"] in error["message"]
    if status in (429, 503):
        assert response.headers["retry-after"] == "7"


def test_upstream_down_is_503(account: Account) -> None:
    gateway = account.create_gateway(endpoint={"base_url": "http://127.0.0.1:9/v1", "model": "m"})
    with pytest.raises(openai.InternalServerError) as caught:
        account.openai().chat.completions.create(
            model=gateway["id"], messages=[{"role": "user", "content": "Q"}]
        )
    assert caught.value.status_code == 503
    assert "unreachable" in caught.value.message
    assert caught.value.response.headers["retry-after"]


def test_slow_upstream_times_out_with_504(account: Account) -> None:
    assert SLOW_SECONDS > 1.5  # the test server's read timeout
    gateway = account.create_gateway(endpoint={"base_url": account.upstream.url, "model": "slow"})
    with pytest.raises(openai.APIStatusError) as caught:
        account.openai().chat.completions.create(
            model=gateway["id"], messages=[{"role": "user", "content": "Q"}]
        )
    assert caught.value.status_code == 504
    assert caught.value.body["code"] == "upstream_timeout"


@pytest.mark.parametrize("model", ["stream-error", "stream-garbage"])
def test_error_after_stream_began_is_an_error_event(account: Account, model: str) -> None:
    gateway = account.create_gateway(endpoint={"base_url": account.upstream.url, "model": model})
    with (
        account.http() as client,
        client.stream(
            "POST",
            "/chat/completions",
            json={
                "model": gateway["id"],
                "messages": [{"role": "user", "content": "Q"}],
                "stream": True,
            },
        ) as response,
    ):
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1].startswith('data: {"error"')
    assert "[DONE]" not in lines[-1]
    # The SDK raises on such an event.
    stream = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Q"}], stream=True
    )
    with pytest.raises(openai.APIError):
        list(stream)


def test_a_stream_that_stalls_past_the_read_timeout_ends_with_a_timeout_event(
    account: Account,
) -> None:
    """Once a stream began, its reads are timed by the process's sweep, not aiohttp's timer
    (alicerce/upstreams/read_deadlines.py): a stall still ends it within a tick of the
    timeout, as an `upstream_timeout` event after what did arrive, recorded as a 504."""
    read_timeout = 1.5  # the test server's
    assert read_timeout + read_timeout / 4 < SLOW_SECONDS
    gateway = account.create_gateway(
        endpoint={"base_url": account.upstream.url, "model": "stream-stall"}
    )
    payload = {"model": gateway["id"], "messages": [{"role": "user", "content": "Q"}]}
    with (
        account.http() as client,
        client.stream("POST", "/chat/completions", json=payload | {"stream": True}) as response,
    ):
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        events: list[str] = []
        arrived: list[float] = []
        for line in response.iter_lines():
            if line:
                events.append(line.removeprefix("data: "))
                arrived.append(time.monotonic())
    assert sum('"piece' in e for e in events) == 2
    error = json.loads(events[-1])["error"]
    assert error["code"] == "upstream_timeout"
    stalled = arrived[-1] - arrived[-2]
    assert read_timeout - 0.1 < stalled < read_timeout + read_timeout / 4 + 0.5
    row = account.alicerce.wait_for_record(request_id)
    assert row.status_code == 504
    assert row.completion_tokens > 0  # the two pieces, billed
    assert account.alicerce.services.http.stream_deadlines.watched() == 0


def test_a_connection_that_carried_a_stream_still_times_its_next_request(
    account: Account,
) -> None:
    """A finished stream's connection goes back to the pool with aiohttp's read timer off
    (`StreamDeadlines.follow`); the next request on it must have its timer again."""
    stream_gateway = account.create_gateway(
        endpoint={"base_url": account.upstream.url, "model": "mock-model"}
    )
    slow_gateway = account.create_gateway(
        endpoint={"base_url": account.upstream.url, "model": "slow"}
    )
    client = account.openai()
    for _ in range(3):  # the pool's idle connections have all carried a stream
        chunks = list(
            client.chat.completions.create(
                model=stream_gateway["id"], messages=[{"role": "user", "content": "Q"}], stream=True
            )
        )
        assert chunks
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model=slow_gateway["id"], messages=[{"role": "user", "content": "Q"}]
        )
    assert caught.value.status_code == 504
    assert time.monotonic() - started < SLOW_SECONDS


def test_failures_are_recorded(account: Account) -> None:
    gateway = account.create_gateway(
        endpoint={"base_url": account.upstream.url, "model": "fail-503"}
    )
    response = _post_chat(
        account, {"model": gateway["id"], "messages": [{"role": "user", "content": "Q"}]}
    )
    assert response.status_code == 503
    row = account.alicerce.wait_for_record(response.headers["x-request-id"])
    assert row.gateway_id == gateway["id"]
    assert row.status_code == 503
    assert row.error_type == "upstream_error"


def test_unknown_route_is_an_openai_404(account: Account) -> None:
    with account.http() as client:
        response = client.get("/nothing-here")
    assert response.status_code == 404
    assert _error(response)["type"] == "not_found_error"
