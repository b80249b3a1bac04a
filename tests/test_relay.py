"""The stream relay (chunk objects) and where they become bytes: chat SSE and Responses events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from alicerce.api.http import EventStream, chat_sse, chat_stream, response_stream
from alicerce.errors import UpstreamError
from alicerce.inference.pipeline import Served
from alicerce.inference.relay import Closing, Failure, StreamItem, StreamRelay
from alicerce.inference.responses import ResponseEvents, parse_responses_request


def _decode(frames: list[bytes]) -> list[dict[str, Any]]:
    """Each write's server-sent events, in order (`[DONE]` as `{"done": True}`)."""
    out = []
    for frame in frames:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        for event in frame.removesuffix(b"\n\n").split(b"\n\n"):
            payload = event.removeprefix(b"data: ")
            out.append({"done": True} if payload == b"[DONE]" else msgspec.json.decode(payload))
    return out


def _writes(respond: Any, items: list[StreamItem], *args: Any) -> list[bytes]:
    """What the API sends for `items`: one bytes object per write."""
    closed = []

    async def source() -> AsyncIterator[StreamItem]:
        try:
            for item in items:
                yield item
        finally:
            closed.append(True)

    async def collect() -> list[bytes]:
        response: EventStream = respond(source(), *args, Served("id1"))
        assert response.headers["x-request-id"] == "id1"
        return [write async for write in response.body_iterator]  # type: ignore[misc]

    writes = asyncio.run(collect())
    assert closed == [True]  # the pipeline's stream is closed: it records itself then
    return writes


def _chat_sse(items: list[StreamItem]) -> list[bytes]:
    writes = _writes(chat_stream, items)
    assert writes == [chat_sse(item) for item in items]  # what the door sends, item by item
    return writes


def test_relay_sends_role_once_and_dedupes_tool_call_ids() -> None:
    relay = StreamRelay(request_id="id1", model="m", prefill=None, started=0.0)
    chunks = relay.relay({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": "{"},
    }
    chunks += relay.relay({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    chunks += relay.relay({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    chunks += relay.relay({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    chunks += relay.relay({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    chunks = _decode(_chat_sse([chunks]))
    assert sum(1 for c in chunks if c["choices"][0]["delta"].get("role")) == 1
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"][0]["delta"].get("tool_calls")
    ]
    assert calls[0]["id"] == "call_1" and "id" not in calls[1]
    assert "name" not in calls[1]["function"] and calls[1]["function"]["arguments"] == "{"
    assert all(c["id"] == "id1" for c in chunks)
    closing = _decode(
        _chat_sse([relay.closing({"total_tokens": 2}, {"generated_usage": []}, False)])
    )
    assert closing[0]["choices"][0]["finish_reason"] == "tool_calls"
    assert closing[0]["usage"] == {"total_tokens": 2}
    assert closing[-1] == {"done": True}


def test_relay_gives_chunk_objects_and_holds_the_finish_for_the_usage() -> None:
    relay = StreamRelay(request_id="id1", model="m", prefill="Sure", started=0.0)
    first = relay.relay({"choices": [{"index": 0, "delta": {"content": "Hi"}}], "model": "up"})
    assert [c["choices"][0]["delta"] for c in first] == [
        {"role": "assistant", "content": "Sure"},  # the opening carries the prefill
        {"content": "Hi"},
    ]
    assert relay.relay({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) == []
    closing = relay.closing({"total_tokens": 3}, {"knowledge": []}, include_usage=True)
    finish, tail = closing.chunks
    assert finish["choices"][0]["finish_reason"] == "stop" and "usage" not in finish
    assert tail["choices"] == [] and tail["usage"] == {"total_tokens": 3}
    assert relay.text == "SureHi" and relay.model == "up" and relay.ttft_ms is not None


def test_each_item_is_one_write_ending_with_done_or_the_error() -> None:
    chunk = {"id": "x", "choices": [{"index": 0, "delta": {"content": "a"}}]}
    writes = _chat_sse([[chunk, chunk], [chunk], Closing([chunk])])
    assert len(writes) == 3
    assert writes[0] == b"data: " + msgspec.json.encode(chunk) + b"\n\n" + writes[1]
    assert writes[2].endswith(b"\n\ndata: [DONE]\n\n")

    failed = _chat_sse([[chunk], Failure(UpstreamError("it broke off"))])
    assert len(failed) == 2
    [error] = _decode(failed[1:])
    assert error["error"]["message"] == "it broke off"
    assert b"[DONE]" not in failed[1]


def _events(frames: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for frame in frames:
        for event in frame.removesuffix(b"\n\n").split(b"\n\n"):
            kind, data = event.split(b"\n")
            payload = msgspec.json.decode(data.removeprefix(b"data: "))
            assert kind == b"event: " + payload["type"].encode()
            out.append(payload)
    return out


def _response_events(items: list[StreamItem]) -> list[bytes]:
    request = parse_responses_request(b'{"model": "gw", "input": "Q", "stream": true}')
    return _writes(response_stream, items, ResponseEvents("resp_1", request, "m"))


def test_responses_events_come_from_chunk_objects_one_write_per_item() -> None:
    text = {"choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]}
    finish = {
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    }
    writes = _response_events([[text], Closing([finish])])
    assert len(writes) == 2
    first, last = _events(writes[:1]), _events(writes[1:])
    assert [e["type"] for e in first] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert last[-1]["type"] == "response.completed"
    assert last[-1]["response"]["usage"]["total_tokens"] == 3
    events = first + last
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_responses_failure_after_start_is_error_then_response_failed() -> None:
    text = {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}
    writes = _response_events([[text], Failure(UpstreamError("it broke off"))])
    error, failed = _events(writes[1:])
    assert error["type"] == "error" and error["message"] == "it broke off"
    assert failed["type"] == "response.failed"
    assert failed["response"]["status"] == "failed"


def test_a_chunk_the_relay_cannot_read_is_the_upstreams_fault() -> None:
    """A delta that is not an object, content that is not text, tool calls that are not a list:
    502s (`UpstreamError`), never passed on to break the client's parser, never a 500."""
    relay = StreamRelay(request_id="r", model="m", prefill=None, started=0.0)
    assert relay.relay({"choices": [{"index": 0, "delta": {"content": "ok"}}]})
    for delta, said in [
        ("x", "delta is not an object"),
        ({"content": ["a"]}, "content is not a string"),
        ({"tool_calls": {"index": 0}}, "tool_calls is not a list"),
    ]:
        with pytest.raises(UpstreamError, match=said):
            relay.relay({"choices": [{"index": 0, "delta": delta}]})
    assert relay.text == "ok"
