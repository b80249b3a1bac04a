"""A chat completion reshaped as a `response` object, and the pieces the stream shares."""

from __future__ import annotations

from typing import Any

from alicerce.inference.responses.request import ResponsesRequest


def response_id(request_id: str) -> str:
    """`resp_` and the request log's id without dashes (sent as `x-request-id` too)."""
    return "resp_" + request_id.replace("-", "")


def response_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    details = usage.get("prompt_tokens_details") or {}
    return {
        "input_tokens": usage.get("prompt_tokens", 0),
        "input_tokens_details": {
            "cached_tokens": details.get("cached_tokens", 0),
            "cache_write_tokens": 0,
        },
        "output_tokens": usage.get("completion_tokens", 0),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.get("total_tokens", 0),
    }


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def base_response(
    rid: str, request: ResponsesRequest, model: str, created_at: int
) -> dict[str, Any]:
    """A response object in progress: what `response.created` carries, to be completed."""
    return {
        "id": rid,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "metadata": request.metadata or {},
        "model": model,
        "output": [],
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": request.temperature,
        "text": request.text or {"format": {"type": "text"}},
        "tool_choice": request.tool_choice or "auto",
        "tools": request.tools or [],
        "top_p": request.top_p,
        "truncation": "disabled",
        "usage": None,
        "user": request.user,
    }


def finished(
    response: dict[str, Any],
    output: list[dict[str, Any]],
    finish_reason: str | None,
    usage: dict[str, Any] | None,
    generation_context: dict[str, Any] | None,
) -> dict[str, Any]:
    reason = _INCOMPLETE.get(finish_reason or "")
    return response | {
        "status": "incomplete" if reason else "completed",
        "incomplete_details": {"reason": reason} if reason else None,
        "output": output,
        "usage": response_usage(usage),
        "generation_context": generation_context,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [text_part(text)] if status == "completed" else []
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def response_from_chat(
    rid: str, request: ResponsesRequest, answer: dict[str, Any]
) -> dict[str, Any]:
    """A chat completion as a `response` object."""
    choice = answer["choices"][0] if answer.get("choices") else {}
    message = choice.get("message") or {}
    key = rid.removeprefix("resp_")
    output: list[dict[str, Any]] = []
    content, calls = message.get("content"), message.get("tool_calls") or []
    if message.get("refusal"):
        refusal = {"type": "refusal", "refusal": message["refusal"]}
        output.append(message_item(f"msg_{key}_0", "") | {"content": [refusal]})
    elif content or not calls:
        output.append(message_item(f"msg_{key}_0", content or ""))
    for call in calls:
        function = call.get("function") or {}
        output.append(
            call_item(
                f"fc_{key}_{len(output)}",
                str(call.get("id") or ""),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
                "completed",
            )
        )
    base = base_response(rid, request, answer.get("model") or request.model, answer["created"])
    return finished(
        base,
        output,
        choice.get("finish_reason"),
        answer.get("usage"),
        answer.get("generation_context"),
    )
