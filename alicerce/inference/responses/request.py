"""A Responses API request, decoded and validated, and its translation into a chat request."""

from __future__ import annotations

from typing import Any

import msgspec

from alicerce.errors import InvalidRequest
from alicerce.inference.content import check_image
from alicerce.inference.request import (
    ChatRequest,
    Message,
    Metadata,
    Temperature,
    TokenCount,
    Tools,
    TopP,
    decode_body,
)


class ResponsesRequest(msgspec.Struct):
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: Tools | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    max_output_tokens: TokenCount | None = None
    metadata: Metadata | None = None
    stream: bool = False
    text: dict[str, Any] | None = None
    user: str | None = None
    # Features of a stateful server that this gateway refuses, clearly, rather than ignore.
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    background: bool | None = None
    prompt: dict[str, Any] | None = None


_UNSUPPORTED = {
    "previous_response_id": "Responses are not stored; send the whole conversation in 'input'.",
    "conversation": "Conversations are not stored; send the whole conversation in 'input'.",
    "background": "Background responses are not supported.",
    "prompt": "Stored prompt templates are not supported; use a gateway's instructions.",
}


def parse_responses_request(raw: bytes) -> ResponsesRequest:
    request = decode_body(ResponsesRequest, raw)
    if request.model == "":
        raise InvalidRequest("'model' must name a gateway.", param="model")
    for name, message in _UNSUPPORTED.items():
        if getattr(request, name):
            raise InvalidRequest(message, param=name, code="unsupported_parameter")
    return request


# -- request: Responses → chat ------------------------------------------------------------


def _user_part(part: Any, param: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        image = {"url": part["image_url"], "detail": part.get("detail") or "auto"}
        check_image(image, f"{param}.image_url")
        return {"type": "image_url", "image_url": image}
    raise InvalidRequest(
        f"Content part type {kind!r} is not supported; use 'input_text' or 'input_image' "
        "with an image_url.",
        param=f"{param}.type",
    )


def _assistant_text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("output_text", "input_text") and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        else:
            raise InvalidRequest(
                f"Assistant content part type {kind!r} is not supported.",
                param=f"{param}[{index}].type",
            )
    return "".join(texts)


def _message(item: dict[str, Any], param: str) -> Message:
    role, content = item.get("role"), item.get("content")
    if role not in ("user", "assistant", "system", "developer"):
        raise InvalidRequest(
            f"Message role {role!r} is not one of user, assistant, system, developer.",
            param=f"{param}.role",
        )
    if not isinstance(content, str | list):
        raise InvalidRequest(
            "A message's content must be a string or a list of content parts.",
            param=f"{param}.content",
        )
    if role == "assistant":
        return Message(role="assistant", content=_assistant_text(content, f"{param}.content"))
    if isinstance(content, list):
        parts = [_user_part(p, f"{param}.content[{i}]") for i, p in enumerate(content)]
        content = parts if role == "user" else "".join(p.get("text", "") for p in parts)
    return Message(role=role, content=content)


def _output_text(output: Any, param: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(
            p.get("text", "") for p in output if isinstance(p, dict) and p.get("type") != "refusal"
        )
    raise InvalidRequest("'output' must be a string or a list of content parts.", param=param)


def _messages(request: ResponsesRequest) -> list[Message]:
    messages: list[Message] = []
    if request.instructions:
        messages.append(Message(role="system", content=request.instructions))
    if isinstance(request.input, str):
        return [*messages, Message(role="user", content=request.input)]
    for index, item in enumerate(request.input):
        param = f"input[{index}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise InvalidRequest(
                    "A function_call item needs 'call_id' and 'name'.", param=f"{param}.call_id"
                )
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": str(item.get("arguments") or "")},
            }
            previous = messages[-1] if messages else None
            if previous is not None and previous.role == "assistant":
                previous.tool_calls = [*(previous.tool_calls or []), call]
            else:
                messages.append(Message(role="assistant", content=None, tool_calls=[call]))
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise InvalidRequest(
                    "A function_call_output item needs 'call_id'.", param=f"{param}.call_id"
                )
            output = _output_text(item.get("output"), f"{param}.output")
            messages.append(Message(role="tool", content=output, tool_call_id=call_id))
        elif kind == "reasoning":
            continue  # a reasoning model's summary, fed back: nothing a chat upstream can use
        else:
            raise InvalidRequest(
                f"Input item type {kind!r} is not supported; use messages, function_call and "
                "function_call_output items.",
                param=f"{param}.type",
            )
    if not messages:
        raise InvalidRequest("'input' must not be empty.", param="input")
    return messages


def _chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    converted = []
    for index, tool in enumerate(tools):
        if tool.get("type") != "function" or not isinstance(tool.get("name"), str):
            raise InvalidRequest(
                f"Tool type {tool.get('type')!r} is not supported: this gateway offers only "
                "function tools ({'type': 'function', 'name', 'parameters'}); built-in tools "
                "such as web_search or file_search are not available.",
                param=f"tools[{index}].type",
            )
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        converted.append({"type": "function", "function": function})
    return converted


def _chat_tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str) and choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(
        "'tool_choice' must be auto, none, required or {'type': 'function', 'name': ...}.",
        param="tool_choice",
    )


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    form = (text or {}).get("format")
    if not isinstance(form, dict) or form.get("type") in (None, "text"):
        return None
    if form["type"] == "json_object":
        return {"type": "json_object"}
    if form["type"] == "json_schema" and isinstance(form.get("schema"), dict):
        keys = ("name", "schema", "strict", "description")
        return {"type": "json_schema", "json_schema": {k: form[k] for k in keys if k in form}}
    raise InvalidRequest(
        "'text.format' must be text, json_object or json_schema with a schema.",
        param="text.format",
    )


def to_chat_request(request: ResponsesRequest) -> ChatRequest:
    """The equivalent chat request; `instructions` is a leading system message, so it is
    merged after the gateway's own instructions exactly as a chat client's would be."""
    return ChatRequest(
        model=request.model,
        messages=_messages(request),
        stream=request.stream,
        temperature=request.temperature,
        top_p=request.top_p,
        max_completion_tokens=request.max_output_tokens,
        tools=_chat_tools(request.tools) if request.tools else None,
        tool_choice=_chat_tool_choice(request.tool_choice) if request.tool_choice else None,
        parallel_tool_calls=request.parallel_tool_calls,
        response_format=_response_format(request.text),
        metadata=request.metadata,
        user=request.user,
    )
