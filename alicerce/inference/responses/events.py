"""A chat chunk stream translated into the Responses API's typed events."""

from __future__ import annotations

import time
from typing import Any

from alicerce.inference.relay import Closing, Failure, StreamItem
from alicerce.inference.responses.answer import (
    base_response,
    call_item,
    finished,
    message_item,
    text_part,
)
from alicerce.inference.responses.request import ResponsesRequest


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
                    part=text_part(""),
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
        part = text_part(text)
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
