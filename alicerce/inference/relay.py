"""Relaying an upstream's chunk stream to the client in the contract's exact shape.

Each upstream chunk is re-addressed (our id, created time) and passed on at once: nothing is
buffered but the chunk that carries `finish_reason`, held until the upstream's usage arrives so
that it can carry `usage` and `generation_context` (or, with `include_usage`, so that one more
`choices: []` chunk can follow it, exactly as OpenAI does).

The relay works on chunk objects (dicts), never bytes: what it returns for one upstream chunk is
one write's worth (`Chunks`), which `api/http.py` encodes as server-sent events and the Responses
API (`inference/responses.py`) translates into its own events. A stream's items are `Chunks`,
then either `Closing` (the last write; the chat encoding adds `data: [DONE]`) or `Failure` (an
error after the stream began: the error event, and nothing after it).

With server-side tools, one client stream spans several upstream rounds: calls to the server's
tools are held back (collected for the gateway to run), calls to the client's tools are sent on
re-indexed from 0, and a round that only called server tools sends no finish chunk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from alicerce.errors import AlicerceError, UpstreamError
from alicerce.inference.functions import Toolbox, ToolCall
from alicerce.upstreams.base import message_fault

Chunk = dict[str, Any]  # a `chat.completion.chunk`
Chunks = list[Chunk]  # what one write to the client carries


@dataclass(slots=True)
class Closing:
    """The stream's last write: the finish chunk with usage and context; it ended well."""

    chunks: Chunks


@dataclass(slots=True)
class Failure:
    """A failure after the stream began (the client already has a 200): said, then the end."""

    error: AlicerceError


StreamItem = Chunks | Closing | Failure


def _delta(delta: Any) -> dict[str, Any]:
    """A copy of a chunk's `delta`, checked for the shape the relay reads and clients parse:
    anything else is the upstream's fault (502), not a bug here."""
    if delta is None:
        return {}
    if not isinstance(delta, dict):
        raise _malformed("a choice's delta is not an object")
    fault = message_fault(delta)
    if fault is not None:
        raise _malformed(f"a delta's {fault}")
    return dict(delta)


def _malformed(what: str) -> UpstreamError:
    return UpstreamError(f"The upstream sent a malformed stream chunk: {what}.")


class StreamRelay:
    def __init__(
        self,
        *,
        request_id: str,
        model: str,
        prefill: str | None,
        started: float,
        toolbox: Toolbox | None = None,
    ):
        self.id = request_id
        self.created = int(time.time())
        self.model = model
        self.prefill = prefill
        self.started = started
        self.role_sent = False
        self.tool_calls_seen: set[int] = set()
        self.finish_chunk: Chunk | None = None
        self.usage: Any = None
        self.pieces: list[str] = []  # the answer's text, for counting when usage is missing
        self.ttft_ms: float | None = None
        self.system_fingerprint: Any = None
        self.service_tier: Any = None
        self.toolbox = toolbox
        self.round_start = 0  # where this round's text begins in `pieces`
        self.server_calls: dict[int, ToolCall] = {}  # by upstream index, held for the gateway
        self.client_index: dict[int, int] = {}  # upstream index → the index the client sees

    def next_round(self) -> None:
        """Forgets the finished round's calls, finish and usage; keeps the text and timing."""
        self.round_start = len(self.pieces)
        self.tool_calls_seen.clear()
        self.server_calls.clear()
        self.client_index.clear()
        self.finish_chunk = None
        self.usage = None

    @property
    def round_text(self) -> str:
        return "".join(self.pieces[self.round_start :])

    def held_calls(self) -> list[ToolCall]:
        return list(self.server_calls.values())

    def _chunk(self, choices: list[dict[str, Any]]) -> Chunk:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": self.service_tier or "default",
            "system_fingerprint": self.system_fingerprint,
            "choices": choices,
        }

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def _mark_first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self.started) * 1000

    def opening(self) -> Chunks:
        """The role (and the prefill, which the answer begins with) before anything else."""
        if self.role_sent:
            return []
        self.role_sent = True
        delta: dict[str, Any] = {"role": "assistant", "content": self.prefill or ""}
        if self.prefill:
            self.pieces.append(self.prefill)
            self._mark_first_token()
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        return [self._chunk([choice])]

    def relay(self, chunk: Chunk) -> Chunks:
        """The chunks to send for one upstream chunk (maybe none: usage and finish are held)."""
        if chunk.get("usage") is not None:
            self.usage = chunk["usage"]
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]
        self.system_fingerprint = chunk.get("system_fingerprint") or self.system_fingerprint
        self.service_tier = chunk.get("service_tier") or self.service_tier
        out = self.opening()
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return out
        relayed = []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = _delta(choice.get("delta"))
            delta.pop("role", None)  # sent once, in the opening chunk
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.pieces.append(content)
                self._mark_first_token()
            if delta.get("tool_calls"):
                calls = self._dedupe_tool_calls(self._route_tool_calls(delta["tool_calls"]))
                if calls:
                    delta["tool_calls"] = calls
                    self._mark_first_token()
                else:
                    del delta["tool_calls"]
            finish = choice.get("finish_reason")
            if finish == "tool_calls" and self.toolbox and not self.client_index:
                finish = "stop"  # only server tools were called: not the client's business
            relayed_choice = {
                "index": choice.get("index", 0),
                "delta": delta,
                "logprobs": choice.get("logprobs"),
                "finish_reason": finish,
            }
            if finish is not None:
                self.finish_chunk = self._chunk([relayed_choice])
            elif delta:
                relayed.append(relayed_choice)
        if relayed:
            out.append(self._chunk(relayed))
        return out

    def _route_tool_calls(self, calls: Any) -> Any:
        """Holds the server's tool calls; re-indexes the client's from 0."""
        if self.toolbox is None or not isinstance(calls, list):
            return calls
        forwarded = []
        for call in calls:
            if not isinstance(call, dict):
                continue
            index = call.get("index", 0)
            raw_function = call.get("function")
            function: dict[str, Any] = raw_function if isinstance(raw_function, dict) else {}
            held = self.server_calls.get(index)
            if held is None and index not in self.client_index:
                name = function.get("name")
                if isinstance(name, str) and name in self.toolbox:
                    held = self.server_calls[index] = ToolCall(str(call.get("id") or ""), name, "")
                else:
                    self.client_index[index] = len(self.client_index)
            if held is not None:
                held.arguments += function.get("arguments") or ""
                continue
            forwarded.append(call | {"index": self.client_index[index]})
        return forwarded

    def _dedupe_tool_calls(self, calls: Any) -> Any:
        """A tool call's `id`, `type` and `function.name` go once per index: SDKs concatenate."""
        if not isinstance(calls, list):
            return calls
        cleaned = []
        for call in calls:
            if not isinstance(call, dict):
                continue
            index = call.get("index", 0)
            if index in self.tool_calls_seen:
                call = {k: v for k, v in call.items() if k not in ("id", "type")}
                function = call.get("function")
                if isinstance(function, dict):
                    call["function"] = {k: v for k, v in function.items() if k != "name"}
            else:
                self.tool_calls_seen.add(index)
            cleaned.append(call)
        return cleaned

    def closing(
        self, usage: dict[str, Any], generation_context: dict[str, Any], include_usage: bool
    ) -> Closing:
        """The finish chunk, usage and context where the contract puts them."""
        out = self.opening()
        finish = self.finish_chunk or self._chunk(
            [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
        )
        if include_usage:
            tail = self._chunk([]) | {"usage": usage, "generation_context": generation_context}
            out += [finish, tail]
        else:
            out.append(finish | {"usage": usage, "generation_context": generation_context})
        return Closing(out)
