"""Planning a request: what the upstream is sent, given the gateway and the client's request.

- The gateway's `instructions` open the conversation as its system message. A client's own
  leading system (or developer) messages are merged into it, after the instructions, so the
  operator's words come first and the upstream sees one system message (small chat templates,
  SmolLM2's among them, expect exactly one). System messages later in the conversation stay put.
- Parameters: the gateway's values, replaced by the request's only for `overridable` ones.
- `prefill` is sent as a final assistant message for the upstream to continue.
- Client `tools`, `tool_choice`, `parallel_tool_calls`, `response_format`, `logit_bias` (token ids
  of the model that answers: the client's to know) and `user` pass through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alicerce.billing import LineItem
from alicerce.gateways import OVERRIDABLE, GatewaySpec
from alicerce.inference.functions import Toolbox
from alicerce.inference.request import ChatRequest
from alicerce.messages import text_of
from alicerce.money import DEFAULT_CURRENCY

_PASS_THROUGH = (
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "logit_bias",
    "user",
)


@dataclass(slots=True)
class Plan:
    body: dict[str, Any]  # the upstream request body, without `model` and `stream`
    prefill: str | None
    include_usage: bool
    # What planning itself consumed (routing, query rewriting, searches), billed with the answer.
    line_items: list[LineItem] = field(default_factory=list)
    knowledge: list[dict[str, Any]] = field(default_factory=list)  # chunks put in the context
    searches: list[dict[str, Any]] = field(default_factory=list)  # what grounding searched
    toolbox: Toolbox | None = None  # server-side tools the model may call, run by the gateway
    currency: str = DEFAULT_CURRENCY  # the catalog's, of every price this request is billed at
    routing: dict[str, Any] | None = None  # `@auto`: how it was routed (`inference/routing.py`)


def build_messages(instructions: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    leading: list[str] = []
    rest_start = 0
    for rest_start, message in enumerate(messages):  # noqa: B007
        if message["role"] not in ("system", "developer"):
            break
        leading.append(text_of(message.get("content")))
    else:
        rest_start = len(messages)
    system = "\n\n".join(part for part in [instructions, *leading] if part)
    head = [{"role": "system", "content": system}] if system else []
    return head + messages[rest_start:]


def plan_chat(spec: GatewaySpec, request: ChatRequest, currency: str = DEFAULT_CURRENCY) -> Plan:
    messages = build_messages(spec.instructions, [m.to_dict() for m in request.messages])
    body: dict[str, Any] = {"messages": messages}

    params = spec.parameters
    overridable = spec.overridable
    for name in OVERRIDABLE:
        value = getattr(params, name)
        if name in overridable:
            wanted = getattr(request, name)
            if name == "max_tokens" and request.max_completion_tokens is not None:
                wanted = request.max_completion_tokens
            if wanted is not None:
                value = wanted
        if value is not None:
            body[name] = value
    # Newer OpenAI models only take `max_completion_tokens`: mirror the client's own choice.
    if request.max_completion_tokens is not None and "max_tokens" in body:
        body["max_completion_tokens"] = body.pop("max_tokens")

    for name in _PASS_THROUGH:
        value = getattr(request, name)
        if value is not None:
            body[name] = value

    if params.prefill:
        messages.append({"role": "assistant", "content": params.prefill})
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return Plan(body=body, prefill=params.prefill, include_usage=include_usage, currency=currency)
