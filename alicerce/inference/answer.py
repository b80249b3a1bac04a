"""The shape of an answer: OpenAI objects with Alicerce's `generation_context`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alicerce.billing import LineItem, TokenUsage, inference_line_items, merged, tokens_by_length
from alicerce.errors import UpstreamError
from alicerce.inference.functions import ToolResult
from alicerce.inference.plan import Plan
from alicerce.messages import text_of
from alicerce.money import DEFAULT_CURRENCY
from alicerce.upstreams.base import message_fault
from alicerce.upstreams.registry import Target


@dataclass(slots=True)
class GenerationContext:
    """What a request consumed and ran; later stages (knowledge, functions) add to it."""

    line_items: list[LineItem] = field(default_factory=list)
    runned_functions: list[dict[str, Any]] = field(default_factory=list)
    knowledge: list[dict[str, Any]] = field(default_factory=list)  # the passages given
    knowledge_searches: list[dict[str, Any]] = field(default_factory=list)  # and how found
    currency: str = DEFAULT_CURRENCY  # of the line items' amounts
    routing: dict[str, Any] | None = None  # `@auto` only: router, complexity, score, tier, model

    @classmethod
    def of(cls, plan: Plan) -> GenerationContext:
        """What planning consumed (routing, searches) and found (knowledge), to add to."""
        return cls(
            line_items=list(plan.line_items),
            knowledge=list(plan.knowledge),
            knowledge_searches=list(plan.searches),
            currency=plan.currency,
            routing=dict(plan.routing) if plan.routing is not None else None,
        )

    def absorb(self, results: list[ToolResult]) -> None:
        """A round of server-side tools: what they ran, charged and found."""
        for result in results:
            self.runned_functions.append(result.to_runned())
            self.line_items.extend(result.charges)
            self.knowledge.extend(result.knowledge)
            self.knowledge_searches.extend(result.searches)

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "currency": self.currency,
            "generated_usage": [item.to_json() for item in merged(self.line_items)],
            "runned_functions": self.runned_functions,
            "knowledge": self.knowledge,
            "knowledge_searches": self.knowledge_searches,
        }
        if self.routing is not None:
            answer["routing"] = self.routing
        return answer


def prompt_estimate(body: dict[str, Any]) -> int:
    """A quick upper-bound-ish count for admission checks, before any tokenizer runs."""
    return sum(tokens_by_length(text_of(m.get("content"))) + 4 for m in body["messages"])


def bill(context: GenerationContext, target: Target, usage: TokenUsage) -> None:
    context.line_items.extend(inference_line_items(target.model, usage))


def answer_choices(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """An upstream answer's choices, each checked for the shape the gateway reads: a choice is
    an object, its `message` an object (or absent), with `content` a string or null and
    `tool_calls` a list or null. Anything else is the upstream's fault (502), not a bug here."""
    choices = completion["choices"]
    for n, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise _malformed(f"choice {n} is not an object")
        message = choice.get("message")
        if message is None:
            continue
        if not isinstance(message, dict):
            raise _malformed(f"choice {n}'s message is not an object")
        fault = message_fault(message)
        if fault is not None:
            raise _malformed(f"choice {n}'s message {fault}")
    return choices  # type: ignore[no-any-return]


def _malformed(what: str) -> UpstreamError:
    return UpstreamError(f"The upstream answered a malformed chat completion: {what}.")


def normalise_message(message: Any, prefill: str | None) -> dict[str, Any]:
    """An upstream's `choices[].message` in OpenAI's full shape, with the prefill restored."""
    message = message if isinstance(message, dict) else {}
    content = message.get("content")
    if prefill and (isinstance(content, str) or not message.get("tool_calls")):
        content = prefill + (content if isinstance(content, str) else "")
    return {
        "role": "assistant",
        "content": content,
        "refusal": message.get("refusal"),
        "annotations": message.get("annotations") or [],
        "tool_calls": message.get("tool_calls") or None,
    }
