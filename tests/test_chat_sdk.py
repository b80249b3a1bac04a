"""Chat completions through the official `openai` SDK against a running server."""

from __future__ import annotations

import asyncio
import json
import uuid

import openai
import pytest

from tests.conftest import Account


def _echo(content: str | None) -> dict:  # the mock's `echo` model answers with what it got
    assert content is not None
    return json.loads(content)


def test_non_streaming_answer_has_the_contract_shape(account: Account) -> None:
    gateway = account.create_gateway(instructions="Be brief.")
    client = account.openai()
    completion = client.chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Hello"}]
    )
    uuid.UUID(completion.id)
    assert uuid.UUID(completion.id).version == 7
    assert completion.object == "chat.completion"
    assert completion.model == "echo-2026"  # the upstream model actually used
    assert completion.service_tier == "default"
    message = completion.choices[0].message
    assert message.role == "assistant"
    assert message.refusal is None
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    extra = completion.model_extra or {}
    # A bring-your-own endpoint is billed only for knowledge, and this one searched nothing.
    assert extra["generation_context"] == {
        "currency": "USD",  # the catalog's, of the line items' amounts
        "generated_usage": [],
        "runned_functions": [],
        "knowledge": [],
        "knowledge_searches": [],
    }
    sent = _echo(message.content)
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["messages"][1] == {"role": "user", "content": "Hello"}
    assert sent["stream"] is False


def test_gateway_is_addressed_by_slug_and_by_name(account: Account) -> None:
    gateway = account.create_gateway()
    client = account.openai()
    for ref in (gateway["slug"], gateway["name"]):
        completion = client.chat.completions.create(
            model=ref, messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices[0].message.content


def test_both_paths_and_the_v1_alias_answer(account: Account, upstream) -> None:
    gateway = account.create_gateway()
    body = {"model": gateway["id"], "messages": [{"role": "user", "content": "x"}]}
    for path in ("/api/v1/chat/completions", "/api/v1/chat-completions", "/v1/chat/completions"):
        with account.alicerce.http(account.admin_key) as client:
            response = client.post(account.alicerce.url + path, json=body)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["object"] == "chat.completion"


def test_client_system_message_is_merged_after_the_instructions(account: Account) -> None:
    gateway = account.create_gateway(instructions="Operator rules.")
    completion = account.openai().chat.completions.create(
        model=gateway["id"],
        messages=[
            {"role": "system", "content": "Client context."},
            {"role": "user", "content": [{"type": "text", "text": "Q"}]},
        ],
    )
    sent = _echo(completion.choices[0].message.content)
    assert sent["messages"][0] == {
        "role": "system",
        "content": "Operator rules.\n\nClient context.",
    }
    assert sent["messages"][1]["role"] == "user"
    assert len(sent["messages"]) == 2


def test_overridable_parameters_and_ignored_ones(account: Account) -> None:
    gateway = account.create_gateway(
        parameters={"temperature": 0.3, "top_p": 0.9, "max_tokens": 100, "seed": 7},
        overridable=["temperature"],
    )
    completion = account.openai().chat.completions.create(
        model=gateway["id"],
        messages=[{"role": "user", "content": "Q"}],
        temperature=1.5,  # overridable: taken
        top_p=0.1,  # not overridable: ignored
        max_tokens=5,  # not overridable: ignored
        user="end-user-1",
    )
    sent = _echo(completion.choices[0].message.content)
    assert sent["temperature"] == 1.5
    assert sent["top_p"] == 0.9
    assert sent["max_tokens"] == 100
    assert sent["seed"] == 7
    assert sent["user"] == "end-user-1"


def test_max_completion_tokens_is_passed_as_the_client_named_it(account: Account) -> None:
    gateway = account.create_gateway(overridable=["max_tokens"])
    completion = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Q"}], max_completion_tokens=42
    )
    sent = _echo(completion.choices[0].message.content)
    assert sent["max_completion_tokens"] == 42
    assert "max_tokens" not in sent


def test_prefill_is_sent_as_assistant_turn_and_begins_the_answer(account: Account) -> None:
    gateway = account.create_gateway(
        parameters={"prefill": "Dear customer,"},
        endpoint={"base_url": account.upstream.url, "model": "plain"},
    )
    client = account.openai()
    completion = client.chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Q"}]
    )
    assert completion.choices[0].message.content == "Dear customer,Hello from the mock upstream."
    sent = account.upstream.mock.last()
    assert sent["messages"][-1] == {"role": "assistant", "content": "Dear customer,"}

    stream = client.chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Q"}], stream=True
    )
    chunks = list(stream)
    first_content = next(c for c in chunks if c.choices and c.choices[0].delta.content)
    assert first_content.choices[0].delta.content.startswith("Dear customer,")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Dear customer,Hello from the mock upstream."


def test_streaming_relays_chunks_and_ends_with_usage_and_context(account: Account) -> None:
    gateway = account.create_gateway(endpoint={"base_url": account.upstream.url, "model": "plain"})
    stream = account.openai().chat.completions.create(
        model=gateway["slug"], messages=[{"role": "user", "content": "Q"}], stream=True
    )
    chunks = list(stream)
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and uuid.UUID(ids.pop()).version == 7
    roles = [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role]
    assert roles == ["assistant"]  # sent once
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from the mock upstream."
    )
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.usage is not None and last.usage.completion_tokens > 0
    assert (last.model_extra or {})["generation_context"]["generated_usage"] == []
    # usage only once, on the finish chunk
    assert sum(1 for c in chunks if c.usage is not None) == 1


def test_stream_options_include_usage_adds_one_empty_choices_chunk(account: Account) -> None:
    gateway = account.create_gateway(endpoint={"base_url": account.upstream.url, "model": "cached"})
    chunks = list(
        account.openai().chat.completions.create(
            model=gateway["id"],
            messages=[{"role": "user", "content": "Q"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].usage is None
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 8  # passed through
    assert "generation_context" in (last.model_extra or {})
    assert sum(1 for c in chunks if c.usage is not None) == 1


def test_cached_tokens_pass_through_when_reported(account: Account) -> None:
    gateway = account.create_gateway(endpoint={"base_url": account.upstream.url, "model": "cached"})
    completion = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Q"}]
    )
    assert completion.usage.prompt_tokens_details.cached_tokens == 8


def test_with_raw_response_exposes_headers(account: Account) -> None:
    gateway = account.create_gateway()
    raw = account.openai().chat.completions.with_raw_response.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Q"}]
    )
    assert raw.http_request.url.path == "/api/v1/chat/completions"
    assert raw.headers["content-type"].startswith("application/json")
    completion = raw.parse()
    assert raw.headers["x-request-id"] == completion.id


def test_async_client_streaming_and_not(account: Account) -> None:
    gateway = account.create_gateway(endpoint={"base_url": account.upstream.url, "model": "plain"})

    async def run() -> tuple[str, str]:
        client = account.async_openai()
        completion = await client.chat.completions.create(
            model=gateway["id"], messages=[{"role": "user", "content": "Q"}]
        )
        stream = await client.chat.completions.create(
            model=gateway["id"], messages=[{"role": "user", "content": "Q"}], stream=True
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return completion.choices[0].message.content or "", "".join(parts)

    whole, streamed = asyncio.run(run())
    assert whole == streamed == "Hello from the mock upstream."


def test_upstream_key_and_headers_are_sent_upstream(account: Account) -> None:
    gateway = account.create_gateway(
        endpoint={
            "base_url": account.upstream.url,
            "api_key": "sk-secret-upstream",
            "model": "plain",
            "headers": {"x-tenant": "t1"},
        }
    )
    account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Q"}]
    )
    headers = account.upstream.mock.headers[-1]
    assert headers["authorization"] == "Bearer sk-secret-upstream"
    assert headers["x-tenant"] == "t1"


def test_client_tools_pass_through_and_tool_calls_come_back(account: Account) -> None:
    gateway = account.create_gateway(
        endpoint={"base_url": account.upstream.url, "model": "toolcall"}
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    completion = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Weather?"}], tools=tools
    )
    assert account.upstream.mock.last()["tools"] == tools
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert completion.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [False, True])
def test_request_is_recorded_in_the_request_log(account: Account, stream: bool) -> None:
    gateway = account.create_gateway(endpoint={"base_url": account.upstream.url, "model": "plain"})
    client = account.openai()
    kwargs = {"model": gateway["id"], "messages": [{"role": "user", "content": "Q"}]}
    if stream:
        *_, last = client.chat.completions.create(**kwargs, stream=True)  # the whole stream
        request_id = last.id
    else:
        request_id = client.chat.completions.create(**kwargs, metadata={"ticket": "42"}).id
    record = account.alicerce.wait_for_record(request_id)
    assert record.account_id == account.id
    assert record.gateway_id == gateway["id"]
    assert record.status_code == 200
    assert record.stream is stream
    if not stream:
        assert record.request_metadata == {"ticket": "42"}
    assert record.completion_tokens > 0


def test_openai_errors_for_unknown_model(account: Account) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        account.openai().chat.completions.create(
            model="no-such-gateway", messages=[{"role": "user", "content": "Q"}]
        )
    assert caught.value.body["code"] == "model_not_found"
    assert caught.value.body["param"] == "model"


def test_client_disconnect_closes_the_upstream_and_is_recorded(account: Account) -> None:
    gateway = account.create_gateway(
        endpoint={"base_url": account.upstream.url, "model": "slow-stream"}
    )
    marker = uuid.uuid4().hex
    with account.openai().chat.completions.with_streaming_response.create(
        model=gateway["id"], messages=[{"role": "user", "content": marker}], stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        for _ in response.iter_lines():
            break  # leave after the first event
    record = account.alicerce.wait_for_record(request_id)
    assert record.status_code == 499
    assert record.stream is True
    assert account.upstream.mock.closed_early(marker), "the upstream stream was never closed"
