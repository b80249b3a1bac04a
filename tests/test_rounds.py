"""The tool rounds, decided in one place for whole and streamed answers alike."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from alicerce.billing import TokenUsage
from alicerce.catalog import CatalogModel, Provider
from alicerce.inference.functions import MAX_ROUNDS, Toolbox, ToolCall, ToolResult
from alicerce.inference.plan import Plan
from alicerce.inference.rounds import ToolRounds, after_tools
from alicerce.tokens import TokenCounter
from alicerce.upstreams.registry import Target


class Echo:
    name = "echo"

    def spec(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": "echo", "parameters": {}}}

    async def run(self, call: ToolCall, arguments: dict[str, Any]) -> ToolResult:
        return ToolResult(call, f"echo {call.arguments}")


def _plan(prefill: str | None = None) -> Plan:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Q"}]
    if prefill:
        messages.append({"role": "assistant", "content": prefill})
    return Plan({"messages": messages}, prefill, False, toolbox=Toolbox([Echo()]))


def _target() -> Target:
    provider = Provider(name="p", kind="openai", base_url="http://p")
    model = CatalogModel("@p/m", provider, "m", price_in=Decimal(1), price_out=Decimal(2))
    return Target(upstream=None, model=model)  # type: ignore[arg-type]


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion}


def test_rounds_go_on_only_for_server_calls_alone_and_are_bounded() -> None:
    async def run() -> None:
        rounds = ToolRounds(_plan(), TokenCounter())
        call = ToolCall("c1", "echo", "{}")
        assert not await rounds.next([], False, None)  # no server call: the answer
        assert not await rounds.next([call], True, None)  # the client's call: back to it
        for number in range(1, MAX_ROUNDS + 1):
            assert "tool_choice" not in rounds.body
            assert await rounds.next([call], False, "thinking")
            assert rounds.number == number
        assert rounds.body["tool_choice"] == "none"  # the last round must answer
        assert not await rounds.next([call], False, None)
        assert len(rounds.context.runned_functions) == MAX_ROUNDS

    asyncio.run(run())


def test_every_round_is_billed_against_its_own_conversation() -> None:
    async def run() -> None:
        rounds = ToolRounds(_plan(), TokenCounter())
        rounds.started(_target())
        assert not rounds.billed
        await rounds.bill(_usage(10, 2), "")
        assert rounds.billed
        await rounds.next([ToolCall("c1", "echo", "{}")], False, None)
        assert rounds.billed  # until the next round's model answers
        rounds.started(_target())
        await rounds.bill(_usage(20, 3), "answer")
        assert rounds.total == TokenUsage(30, 5, 0)
        skus = [item.sku for item in rounds.context.line_items]
        assert skus.count("inference.chat_completions.out") == 2

    asyncio.run(run())


def test_a_tool_round_goes_before_the_prefill() -> None:
    plan = _plan(prefill="Sure:")
    call = ToolCall("c1", "echo", "{}")
    body = after_tools(plan, plan.body, None, [call], [ToolResult(call, "out")])
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert body["messages"][-1] == {"role": "assistant", "content": "Sure:"}
    assert plan.body["messages"] == [  # the plan's own body is left as it was
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "Sure:"},
    ]
