"""The rounds of one chat answer: model → server-side tools → model, decided in one place.

A gateway with server-side tools (webhook functions, `search_knowledge`) may need several model
calls for one answer: each round's calls to the server's tools are run and their results fed back
(`after_tools`), until the model answers, calls one of the client's tools (those go back to the
client, and the answer ends there), or `MAX_ROUNDS` tool rounds have run; the round after the
last one allowed is sent `tool_choice: none`, so it must answer. Every round is billed, the
unfinished one too when the client leaves a stream.

`ChatService` drives the same `ToolRounds` whether it answers whole or streams:

    rounds = ToolRounds(plan, tokens)
    loop:  ask the model with `rounds.body`; `rounds.started(target)` once one answers
           ... read the answer ...
           `await rounds.bill(reported_usage, text)`
           `if not await rounds.next(server_calls, client_called, text): break`
"""

from __future__ import annotations

from typing import Any

from alicerce.billing import TokenUsage
from alicerce.inference.answer import GenerationContext, bill
from alicerce.inference.functions import MAX_ROUNDS, ToolCall, ToolResult
from alicerce.inference.plan import Plan
from alicerce.tokens import TokenCounter
from alicerce.upstreams.registry import Target


def after_tools(
    plan: Plan,
    body: dict[str, Any],
    content: str | None,
    calls: list[ToolCall],
    results: list[ToolResult],
) -> dict[str, Any]:
    """`body` with a tool round added: the model's calls, then their results (before the
    prefill, which stays last)."""
    messages = body["messages"]
    cut = len(messages) - 1 if plan.prefill else len(messages)
    assistant = {
        "role": "assistant",
        "content": content,
        "tool_calls": [call.to_message() for call in calls],
    }
    turns = [assistant, *(result.to_message() for result in results)]
    return {**body, "messages": [*messages[:cut], *turns, *messages[cut:]]}


class ToolRounds:
    """One answer's rounds: what each sends, what they cost, and whether another follows."""

    __slots__ = ("_body", "_tokens", "billed", "context", "number", "plan", "target", "total")

    def __init__(self, plan: Plan, tokens: TokenCounter) -> None:
        self.plan = plan
        self.context = GenerationContext.of(plan)  # what was consumed and run, for the answer
        self.total = TokenUsage()  # of every round
        self.number = 0  # the current round, from 0
        self.target: Target | None = None  # who answers the current round
        self.billed = True  # whether the current round's tokens are in `total`
        self._tokens = tokens
        self._body = plan.body  # the conversation so far, tool rounds included

    @property
    def body(self) -> dict[str, Any]:
        """What the current round sends: the last one allowed must answer, so its tools stay
        offered (the conversation names them) but may not be called."""
        if self.plan.toolbox and self.number == MAX_ROUNDS:
            return {**self._body, "tool_choice": "none"}
        return self._body

    def started(self, target: Target) -> None:
        """The current round's model answered (its first chunk came): it is billed to it."""
        self.target = target
        self.billed = False
        routing = self.context.routing
        if routing is not None and target.model is not None:  # a fallback may have answered
            routing["model"] = target.model.id

    async def bill(self, reported: Any, text: str) -> TokenUsage:
        """Bills the current round: the upstream's usage, counted from the text if missing."""
        assert self.target is not None
        usage = await self._tokens.settle(reported, self._body["messages"], text)
        bill(self.context, self.target, usage)
        self.total += usage
        self.billed = True
        return usage

    async def next(self, server: list[ToolCall], client_called: bool, content: str | None) -> bool:
        """Whether another round follows; if so, runs the server's calls and feeds the results
        back. Not when the model called none of the server's tools, called one of the
        client's (the answer goes back to the client), or the last round allowed has run."""
        if not server or client_called or self.number >= MAX_ROUNDS:
            return False
        assert self.plan.toolbox is not None
        results = await self.plan.toolbox.run_all(server)
        self.context.absorb(results)
        self._body = after_tools(self.plan, self._body, content, server, results)
        self.number += 1
        return True
