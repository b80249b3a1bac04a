"""The Responses API through the official `openai` SDK against a running server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from tests.conftest import Account

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": True,
}


def _plain(account: Account, **spec: Any) -> dict[str, Any]:
    return account.create_gateway(
        endpoint={"base_url": account.upstream.url, "model": "plain"}, **spec
    )


def _priced(account: Account, model: str = "@mock/echo") -> dict[str, Any]:
    return account.create_gateway(model=model)


def test_string_input_gives_a_completed_response(account: Account) -> None:
    gateway = _priced(account, "@mock/plain")
    response = account.openai().responses.create(model=gateway["slug"], input="Hello")
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "plain-2026"
    assert response.output_text == "Hello from the mock upstream."
    [item] = response.output
    assert item.type == "message" and item.role == "assistant" and item.status == "completed"
    assert item.content[0].type == "output_text" and item.content[0].annotations == []
    usage = response.usage
    assert usage is not None
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens > 0
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    context = (response.model_extra or {})["generation_context"]
    skus = {line["sku"] for line in context["generated_usage"]}
    assert skus == {"inference.chat_completions.in", "inference.chat_completions.out"}
    record = account.alicerce.wait_for_record(_request_id(response.id))
    assert record.endpoint == "responses"
    assert record.status_code == 200


def _request_id(rid: str) -> str:
    hex_ = rid.removeprefix("resp_")
    return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"


def test_message_list_and_instructions_are_merged_like_chat(account: Account) -> None:
    gateway = account.create_gateway(instructions="Operator rules.")
    response = account.openai().responses.create(
        model=gateway["id"],
        instructions="Client rules.",
        input=[
            {"role": "user", "content": "First"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Answer"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Q"}]},
        ],
        temperature=0.5,
        max_output_tokens=50,
        metadata={"ticket": "42"},
    )
    sent = json.loads(response.output_text)  # the mock's `echo` answers with what it got
    assert sent["messages"] == [
        {"role": "system", "content": "Operator rules.\n\nClient rules."},
        {"role": "user", "content": "First"},
        {"role": "assistant", "content": "Answer"},
        {"role": "user", "content": [{"type": "text", "text": "Q"}]},
    ]
    assert "metadata" not in sent
    assert response.metadata == {"ticket": "42"}
    record = account.alicerce.wait_for_record(_request_id(response.id))
    assert record.request_metadata == {"ticket": "42"}


def test_streaming_events_in_order_with_usage_and_context(account: Account) -> None:
    gateway = _priced(account, "@mock/plain")
    events = list(account.openai().responses.create(model=gateway["id"], input="Q", stream=True))
    types = [event.type for event in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == "Hello from the mock upstream."
    assert len(deltas) > 1
    final = events[-1].response
    assert final.status == "completed"
    assert final.output_text == "Hello from the mock upstream."
    assert final.usage is not None and final.usage.output_tokens > 0
    context = (final.model_extra or {})["generation_context"]
    assert {line["sku"] for line in context["generated_usage"]} >= {"inference.chat_completions.in"}
    added = events[2].item
    assert added.id == final.output[0].id


def test_stream_helper_of_the_sdk_accumulates_the_text(account: Account) -> None:
    gateway = _plain(account)
    with account.openai().responses.stream(model=gateway["id"], input="Q") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == "Hello from the mock upstream."


def test_async_client_streaming_and_not(account: Account) -> None:
    gateway = _plain(account)

    async def run() -> tuple[str, str]:
        async with account.async_openai() as client:
            whole = await client.responses.create(model=gateway["id"], input="Q")
            stream = await client.responses.create(model=gateway["id"], input="Q", stream=True)
            text = "".join(
                [e.delta async for e in stream if e.type == "response.output_text.delta"]
            )
        return whole.output_text, text

    whole, streamed = asyncio.run(run())
    assert whole == streamed == "Hello from the mock upstream."


def test_function_calling_round_trip(account: Account) -> None:
    gateway = account.create_gateway(
        endpoint={"base_url": account.upstream.url, "model": "toolcall"}
    )
    client = account.openai()
    first = client.responses.create(
        model=gateway["id"], input="Weather in Lisbon?", tools=[WEATHER_TOOL], tool_choice="auto"
    )
    [call] = first.output
    assert call.type == "function_call"
    assert (call.name, call.call_id, call.status) == ("get_weather", "call_1", "completed")
    assert json.loads(call.arguments) == {"city": "Lisbon"}
    sent = account.upstream.mock.last()
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {k: v for k, v in WEATHER_TOOL.items() if k != "type"},
        }
    ]
    assert sent["tool_choice"] == "auto"

    echo = account.create_gateway()
    second = client.responses.create(
        model=echo["id"],
        input=[
            {"role": "user", "content": "Weather in Lisbon?"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 C"},
        ],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
    )
    sent = json.loads(second.output_text)
    assert sent["messages"][1:] == [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
                }
            ],
        },
        {"role": "tool", "content": "Sunny, 24 C", "tool_call_id": "call_1"},
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_streamed_function_call_events(account: Account) -> None:
    gateway = account.create_gateway(endpoint={"base_url": account.upstream.url, "model": "agent"})
    events = list(
        account.openai().responses.create(
            model=gateway["id"],
            input='CALL get_weather {"city": "Porto"}',
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    types = [event.type for event in events]
    assert "response.function_call_arguments.delta" in types
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.type == "function_call" and added.item.name == "get_weather"
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"city": "Porto"}
    final = events[-1]
    assert final.type == "response.completed"
    [item] = final.response.output
    assert item.type == "function_call" and item.call_id == "call_1"
    assert json.loads(item.arguments) == {"city": "Porto"}


def test_text_format_json_schema_becomes_response_format(account: Account) -> None:
    gateway = account.create_gateway()
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    response = account.openai().responses.create(
        model=gateway["id"],
        input="Q",
        text={"format": {"type": "json_schema", "name": "thing", "schema": schema}},
    )
    sent = json.loads(response.output_text)
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "thing", "schema": schema},
    }


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file"}]}]},
            "input[0].content[0].type",
        ),
        ({"temperature": 3}, "temperature"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"input": []}, "input"),
    ],
)
def test_unsupported_or_bad_input_is_a_400_naming_the_field(
    account: Account, extra: dict[str, Any], param: str
) -> None:
    gateway = account.create_gateway()
    body = {"model": gateway["id"], "input": "Q"} | extra
    with account.http() as http:
        response = http.post("/responses", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_unknown_gateway_is_404_and_v1_path_works(account: Account) -> None:
    with pytest.raises(openai.NotFoundError):
        account.openai().responses.create(model="nope", input="Q")
    gateway = _plain(account)
    with account.http() as http:
        response = http.post(
            account.alicerce.url + "/v1/responses", json={"model": gateway["id"], "input": "Q"}
        )
    assert response.status_code == 200
    assert response.json()["output"][0]["content"][0]["text"] == "Hello from the mock upstream."


def test_an_upstream_failure_mid_stream_is_an_error_then_response_failed(account: Account) -> None:
    gateway = account.create_gateway(
        endpoint={"base_url": account.upstream.url, "model": "stream-error"}
    )
    stream = account.openai().responses.with_raw_response.create(
        model=gateway["id"], input="Q", stream=True
    )
    request_id = stream.headers["x-request-id"]
    events = list(stream.parse())
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1].response.status == "failed"
    assert events[-1].response.error.message
    assert account.alicerce.wait_for_record(request_id).status_code == 502


def test_client_leaving_mid_stream_closes_upstream_and_records_499(account: Account) -> None:
    gateway = account.create_gateway(
        endpoint={"base_url": account.upstream.url, "model": "slow-stream"}
    )
    marker = f"leave-{gateway['id']}"
    raw = account.openai().responses.with_raw_response.create(
        model=gateway["id"], input=marker, stream=True
    )
    request_id = raw.headers["x-request-id"]
    stream = raw.parse()
    for event in stream:
        if event.type == "response.output_text.delta":
            break
    stream.close()
    assert account.alicerce.wait_for_record(request_id).status_code == 499
    assert account.upstream.mock.closed_early(marker), "the upstream stream was not closed"
