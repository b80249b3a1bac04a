"""LangChain's `ChatOpenAI` as a second real client: bound tools, their round trip, streaming."""

from __future__ import annotations

from functools import reduce
from typing import Any

from langchain_core.messages import AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.conftest import Account


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


def _chat(account: Account, gateway: dict[str, Any]) -> ChatOpenAI:
    return ChatOpenAI(
        model=gateway["slug"],
        base_url=account.alicerce.url + "/api/v1",
        api_key=account.admin_key,  # type: ignore[arg-type]
        max_retries=0,
    )


def test_bound_tools_round_trip(account: Account) -> None:
    gateway = account.create_gateway(endpoint={"base_url": account.upstream.url, "model": "agent"})
    llm = _chat(account, gateway).bind_tools([get_weather])
    question = HumanMessage('CALL get_weather {"city": "Lisbon"}')
    first = llm.invoke([question])
    [call] = first.tool_calls  # type: ignore[attr-defined]
    assert call["name"] == "get_weather" and call["args"] == {"city": "Lisbon"}
    offered = account.upstream.mock.last()["tools"]
    assert offered[0]["function"]["name"] == "get_weather"
    result = ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
    second = llm.invoke([question, first, result])
    assert second.content == "Results: Sunny in Lisbon"
    assert account.upstream.mock.last()["messages"][-1] == {
        "role": "tool",
        "content": "Sunny in Lisbon",
        "tool_call_id": call["id"],
    }


def test_streaming_text_and_streamed_tool_calls(account: Account) -> None:
    gateway = account.create_gateway(endpoint={"base_url": account.upstream.url, "model": "agent"})
    chat = _chat(account, gateway)
    pieces = list(chat.stream("Just say something."))
    assert len(pieces) > 1 and "".join(str(p.content) for p in pieces) == "No call."

    chunks = list(chat.bind_tools([get_weather]).stream('CALL get_weather {"city": "Porto"}'))
    merged: AIMessageChunk = reduce(lambda a, b: a + b, chunks)  # type: ignore[arg-type,return-value]
    [call] = merged.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "Porto"}


def test_server_side_functions_are_invisible_to_langchain(account: Account) -> None:
    base = account.upstream.url.removesuffix("/v1")
    gateway = account.create_gateway(
        model="@mock/agent",
        functions=[{"name": "lookup", "url": f"{base}/functions/echo",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
    )  # fmt: skip
    answer = _chat(account, gateway).invoke('CALL lookup {"city": "Faro"}')
    assert answer.content == 'Results: {"function":"echo","received":{"city":"Faro"}}'
    assert not answer.tool_calls  # type: ignore[attr-defined]
