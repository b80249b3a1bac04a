"""Server-side functions: the gateway runs its own tools between model rounds (SPEC section 2)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest

from alicerce.gateways import Function
from alicerce.inference.functions import MAX_ROUNDS, Toolbox, ToolCall, WebhookFunction
from alicerce.upstreams.http import HttpClients
from tests.conftest import Account

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def _function(account: Account, name: str, path: str, **extra: Any) -> dict[str, Any]:
    base = account.upstream.url.removesuffix("/v1")
    return {"name": name, "description": f"{name} it", "parameters": CITY,
            "url": f"{base}/functions/{path}", **extra}  # fmt: skip


def _agent(account: Account, *functions: dict[str, Any]) -> dict[str, Any]:
    return account.create_gateway(model="@mock/agent", functions=list(functions))


def test_a_function_call_runs_server_side_and_the_model_answers_with_it(
    account: Account, upstream
) -> None:
    gateway = _agent(account, _function(account, "lookup", "echo"))
    before = len(upstream.mock.function_calls)
    answer = account.openai().chat.completions.create(
        model=gateway["id"],
        messages=[{"role": "user", "content": 'CALL lookup {"city": "Lisbon"}'}],
    )
    assert upstream.mock.function_calls[before:] == [("echo", {"city": "Lisbon"})]
    message = answer.choices[0].message
    assert message.tool_calls is None and answer.choices[0].finish_reason == "stop"
    assert message.content == 'Results: {"function":"echo","received":{"city":"Lisbon"}}'
    context = answer.model_extra["generation_context"]
    [run] = context["runned_functions"]
    assert run["name"] == "lookup" and json.loads(run["arguments"]) == {"city": "Lisbon"}
    assert run["error"] is None and "Lisbon" in run["output"] and run["duration_ms"] >= 0
    # The model saw the function offered, then its result as a `tool` message.
    first, second = upstream.mock.received[-2:]
    assert [t["function"]["name"] for t in first["tools"]] == ["lookup"]
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "lookup"
    assert second["messages"][-1]["role"] == "tool"
    # Both rounds are billed, once each, merged per SKU; usage adds the rounds up.
    items = {i["sku"]: i for i in context["generated_usage"]}
    assert set(items) == {"inference.chat_completions.in", "inference.chat_completions.out"}
    usage = answer.usage
    assert usage is not None
    assert items["inference.chat_completions.in"]["quantity"] == usage.prompt_tokens
    assert items["inference.chat_completions.out"]["quantity"] == usage.completion_tokens
    assert Decimal(str(items["inference.chat_completions.out"]["amount"])) == Decimal(
        usage.completion_tokens
    ) * Decimal("0.000004")


def test_streaming_runs_the_rounds_first_and_streams_the_final_answer(account: Account) -> None:
    gateway = _agent(account, _function(account, "lookup", "echo"))
    stream = account.openai().chat.completions.create(
        model=gateway["slug"],
        messages=[{"role": "user", "content": 'CALL lookup {"city": "Porto"}'}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == 'Results: {"function":"echo","received":{"city":"Porto"}}'
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    roles = [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role]
    assert roles == ["assistant"]
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    context = chunks[-1].model_extra["generation_context"]
    assert [r["name"] for r in context["runned_functions"]] == ["lookup"]
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0


@pytest.mark.parametrize(
    ("path", "content", "error"),
    [
        ("echo", 'CALL lookup {"city": 5}', "do not match the schema at city"),
        ("echo", "CALL lookup {not json", "not valid JSON"),
        ("fail", 'CALL lookup {"city": "Faro"}', "answered HTTP 500"),
        ("slow", 'CALL lookup {"city": "Faro"}', "did not answer within 0.3 s"),
    ],
)
def test_a_failing_function_gives_the_model_an_error_and_the_request_succeeds(
    account: Account, path: str, content: str, error: str
) -> None:
    gateway = _agent(account, _function(account, "lookup", path, timeout_s=0.3))
    answer = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": content}]
    )
    [run] = answer.model_extra["generation_context"]["runned_functions"]
    assert error in run["error"] and run["output"].startswith("error: ")
    assert answer.choices[0].message.content == "Results: " + run["output"]


def test_client_tools_go_back_to_the_client_and_are_offered_beside_the_gateways(
    account: Account, upstream
) -> None:
    gateway = _agent(account, _function(account, "lookup", "echo"))
    client_tool = {"type": "function", "function": {"name": "get_time", "parameters": {}}}
    before = len(upstream.mock.function_calls)
    for stream in (False, True):
        kwargs = {
            "model": gateway["id"],
            "messages": [
                {"role": "user", "content": 'CALL lookup {"city": "Braga"}\nCALL get_time {}'}
            ],
            "tools": [client_tool],
        }
        if stream:
            chunks = list(account.openai().chat.completions.create(stream=True, **kwargs))
            deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
            assert [d.index for d in deltas] == [0, 0, 0]  # re-indexed: the client's first call
            assert deltas[0].function.name == "get_time" and deltas[0].id == "call_2"
            assert "".join(d.function.arguments or "" for d in deltas) == "{}"
            finish = [c.choices[0].finish_reason for c in chunks if c.choices]
            assert finish[-1] == "tool_calls"
        else:
            answer = account.openai().chat.completions.create(**kwargs)
            [call] = answer.choices[0].message.tool_calls
            assert call.function.name == "get_time" and call.id == "call_2"
            assert answer.choices[0].finish_reason == "tool_calls"
            assert answer.model_extra["generation_context"]["runned_functions"] == []
        offered = [t["function"]["name"] for t in upstream.mock.received[-1]["tools"]]
        assert offered == ["get_time", "lookup"]
    assert len(upstream.mock.function_calls) == before  # the server's call was not run


def test_a_client_tool_with_a_gateway_functions_name_is_refused(account: Account) -> None:
    gateway = _agent(account, _function(account, "lookup", "echo"))
    with account.http() as client:
        response = client.post(
            "/chat/completions",
            json={
                "model": gateway["id"],
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "lookup"}}],
            },
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tools.0.function.name"


@pytest.mark.parametrize("stream", [False, True])
def test_the_loop_is_bounded_and_the_last_round_must_answer(account: Account, stream) -> None:
    gateway = _agent(account, _function(account, "lookup", "echo"))
    kwargs = {
        "model": gateway["id"],
        "messages": [{"role": "user", "content": 'LOOP\nCALL lookup {"city": "Évora"}'}],
    }
    text, context = account.answer(stream=stream, **kwargs)
    assert len(context["runned_functions"]) == MAX_ROUNDS
    assert text.startswith("Results: ") and text.count("Évora") == MAX_ROUNDS


def test_function_schemas_are_checked_when_the_gateway_is_created(account: Account) -> None:
    bad = _function(account, "lookup", "echo", parameters={"type": "object", "properties": 3})
    with account.http() as client:
        response = client.post("/gateways", json={"name": "bad-fn", "model": "@mock/agent",
                                                  "functions": [bad]})  # fmt: skip
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == "functions.0.parameters" and "JSON Schema" in error["message"]
        twice = [_function(account, "lookup", "echo")] * 2
        response = client.post("/gateways", json={"name": "twice", "model": "@mock/agent",
                                                  "functions": twice})  # fmt: skip
        assert response.status_code == 400 and "unique" in response.json()["error"]["message"]


def test_a_function_on_a_private_address_is_not_called_unless_allowed(upstream) -> None:
    """Checked again at call time: a name may resolve to an internal address later."""
    url = upstream.url.removesuffix("/v1") + "/functions/echo"
    before = len(upstream.mock.function_calls)

    async def run(allow_private: bool) -> str | None:
        clients = HttpClients(
            allow_private=allow_private, pool_size=4, connect_timeout_s=2, read_timeout_s=2
        )
        await clients.start()
        try:
            function = Function(
                name="lookup", parameters=CITY, url=url.replace("127.0.0.1", "localhost")
            )
            toolbox = Toolbox([WebhookFunction(function, clients)])
            result = await toolbox.run(ToolCall("c1", "lookup", '{"city": "Lagos"}'))
            return result.error
        finally:
            await clients.close()

    error = asyncio.run(run(False))
    assert error is not None and "private address" in error
    assert len(upstream.mock.function_calls) == before
    assert asyncio.run(run(True)) is None
    assert len(upstream.mock.function_calls) == before + 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_round_that_fails_after_tools_ran_is_billed_for_the_rounds_before_it(
    account: Account, stream: bool
) -> None:
    """The first round was answered (and its function run) before the second failed: the
    request is recorded once, as failed, with what the first round cost."""
    gateway = _agent(account, _function(account, "lookup", "echo"))
    content = 'FAIL AFTER\nCALL lookup {"city": "Porto"}'
    body = {"model": gateway["id"], "messages": [{"role": "user", "content": content}]}
    with account.http() as client:
        response = client.post("/chat/completions", json={**body, "stream": stream})
        request_id = response.headers["x-request-id"]
        if stream:
            assert response.status_code == 200 and '"error"' in response.text
        else:
            assert response.status_code == 502, response.text
    record = account.alicerce.wait_for_record(request_id)
    assert record.status_code == 502 and record.error_type == "upstream_error"
    assert record.prompt_tokens > 0  # the first round's prompt, at least
    assert "inference.chat_completions.in" in {item["sku"] for item in record.line_items}
    assert Decimal(record.amount) > 0
