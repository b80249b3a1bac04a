"""The Responses API as a translation of chat completions, in both directions.

A `responses.create` request becomes a `ChatRequest` and runs through the same pipeline as a
chat completion (gateway, plan, server-side functions, fallbacks, request log); its answer, or its
stream of chat chunk objects, is then reshaped into a `response` object or the Responses API's
typed events (`ResponseEvents`; `api/http.py` sends them as Server-Sent Events). Nothing is
stored: `previous_response_id` and `conversation` are refused, so a client sends the whole
conversation in `input` (as it would to a stateless model).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from alicerce.errors import InvalidRequest
from alicerce.inference.relay import Closing, Failure, StreamItem
from alicerce.inference.request import (
    ChatRequest,
    Message,
    PositiveInt,
    Temperature,
    TopP,
    decode_body,
)


class ResponsesRequest(msgspec.Struct):
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    max_output_tokens: PositiveInt | None = None
    metadata: dict[str, str] | None = None
    stream: bool = False
    text: dict[str, Any] | None = None
    user: str | None = None
    # Features of a stateful server that this gateway refuses, clearly, rather than ignore.
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    background: bool | None = None
    prompt: dict[str, Any] | None = None


_decoder = msgspec.json.Decoder(ResponsesRequest)
_UNSUPPORTED = {
    "previous_response_id": "Responses are not stored; send the whole conversation in 'input'.",
    "conversation": "Conversations are not stored; send the whole conversation in 'input'.",
    "background": "Background responses are not supported.",
    "prompt": "Stored prompt templates are not supported; use a gateway's instructions.",
}


def parse_responses_request(raw: bytes) -> ResponsesRequest:
    request = decode_body(_decoder, raw)
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


# -- answer: chat → Responses --------------------------------------------------------------


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


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [_text_part(text)] if status == "completed" else []
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


# -- streaming: chat chunks → typed events -------------------------------------------------


class ResponseEvents:
    """Turns a chat chunk stream into the Responses API's events, in order.

    `write` takes the chat stream's items (`relay.StreamItem`: chunk objects, never bytes) and
    gives the events of each, to be sent together: the opening events go with the first item, a
    `Closing` adds the closing ones, a `Failure` the `error` and `response.failed` events.

    One output item is open at a time (OpenAI streams items one after another): text opens a
    message item, a tool call's first fragment closes what was open and opens a function_call
    item; everything still open is closed before `response.completed`.
    """

    def __init__(self, rid: str, request: ResponsesRequest, model: str) -> None:
        self.response = base_response(rid, request, model, int(time.time()))
        self._key = rid.removeprefix("resp_")
        self._sequence = 0
        self.output: list[dict[str, Any]] = []
        self._open: int | None = None  # output index of the open item
        self._texts: dict[int, list[str]] = {}  # output index → its text pieces
        self._calls: dict[int, int] = {}  # chat tool-call index → output index
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.generation_context: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def write(self, item: StreamItem) -> list[dict[str, Any]]:
        """The events of one item of the chat stream, in order."""
        events = self.opening() if self._sequence == 0 else []
        if isinstance(item, Failure):
            return events + self.failure(item.error.to_body()["error"])
        for chunk in item.chunks if isinstance(item, Closing) else item:
            events += self.chunk(chunk)
        if isinstance(item, Closing):
            events += self.closing()
        return events

    def opening(self) -> list[dict[str, Any]]:
        return [
            self._event("response.created", response=self.response),
            self._event("response.in_progress", response=self.response),
        ]

    def chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if isinstance(chunk.get("model"), str):
            self.response["model"] = chunk["model"]
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if chunk.get("generation_context") is not None:
            self.generation_context = chunk["generation_context"]
        events: list[dict[str, Any]] = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                events += self._text(delta["content"])
            for call in delta.get("tool_calls") or []:
                events += self._call_fragment(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _text(self, piece: str) -> list[dict[str, Any]]:
        events = []
        index = self._open
        if index is None or self.output[index]["type"] != "message":
            events += self._close()
            index = len(self.output)
            item = message_item(f"msg_{self._key}_{index}", "", "in_progress")
            self.output.append(item)
            self._texts[index] = []
            self._open = index
            events.append(self._event("response.output_item.added", output_index=index, item=item))
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=_text_part(""),
                )
            )
        self._texts[index].append(piece)
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=self.output[index]["id"],
                output_index=index,
                content_index=0,
                delta=piece,
                logprobs=[],
            )
        )
        return events

    def _call_fragment(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        events = []
        function = call.get("function") or {}
        index = self._calls.get(call.get("index", 0))
        if index is None:
            events += self._close()
            index = len(self.output)
            self._calls[call.get("index", 0)] = index
            item = call_item(
                f"fc_{self._key}_{index}",
                str(call.get("id") or ""),
                str(function.get("name") or ""),
                "",
                "in_progress",
            )
            self.output.append(item)
            self._open = index
            events.append(self._event("response.output_item.added", output_index=index, item=item))
        item = self.output[index]
        fragment = function.get("arguments") or ""
        if fragment:
            item["arguments"] += fragment
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=fragment,
                )
            )
        return events

    def _close(self) -> list[dict[str, Any]]:
        index, self._open = self._open, None
        if index is None:
            return []
        item = self.output[index]
        if item["type"] == "function_call":
            item["status"] = "completed"
            done = self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=item["arguments"],
            )
            return [done, self._event("response.output_item.done", output_index=index, item=item)]
        text = "".join(self._texts[index])
        part = _text_part(text)
        item |= {"status": "completed", "content": [part]}
        ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [
            self._event("response.output_text.done", **ids, text=text, logprobs=[]),
            self._event("response.content_part.done", **ids, part=part),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def closing(self) -> list[dict[str, Any]]:
        events = self._close()
        final = finished(
            self.response, self.output, self.finish_reason, self.usage, self.generation_context
        )
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        return [*events, self._event(kind, response=final)]

    def failure(self, error: dict[str, Any]) -> list[dict[str, Any]]:
        """An error after the stream began: OpenAI's `error` event, then `response.failed`."""
        message = str(error.get("message") or "The upstream failed.")
        failed = self.response | {
            "status": "failed",
            "output": self.output,
            "error": {"code": "server_error", "message": message},
        }
        return [
            self._event("error", code=error.get("code"), message=message, param=error.get("param")),
            self._event("response.failed", response=failed),
        ]
