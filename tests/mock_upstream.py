"""A mock OpenAI-compatible upstream: a real HTTP server on loopback, steered by `model`.

Models: `echo` answers with the request it received; `cached` reports cached prompt tokens;
`nousage` reports no usage; `slow` waits `SLOW_SECONDS`; `pause` waits `PAUSE_SECONDS`;
`garbage` answers non-JSON;
`fail-<status>` answers that HTTP status; `stream-error` breaks off a stream with an error event;
`stream-garbage` sends a non-JSON event; `stream-cut` sends its first `CUT_AFTER` content pieces
and then its connection is cut (no error event, no end of the chunked body); `toolcall` answers
with a tool call;
`router` rates complexity (1 for EASY, 5 for HARD, nonsense otherwise);
`agent` calls the tools named in the last user message's `CALL name {json}` lines, and once
tool results arrive answers "Results: ..." with them (streamed as OpenAI streams tool calls), or
fails with 500 if that message says `FAIL AFTER`;
`/functions/{name}` are webhooks for server-side functions (`echo`, `fail`, `slow`).
`slow-stream` streams 100 pieces 50 ms apart and notes in `streams_closed_early` if the
request was abandoned before its end.
`/v1/embeddings` answers `fail-<status>` and `slow` as chat does; any other model gets vectors.
Every request body is kept in `received` for the tests to inspect.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

SLOW_SECONDS = 3.0
PAUSE_SECONDS = 0.8  # `pause`: a model that takes a while, within the tests' read timeout
CUT_AFTER = 3  # `stream-cut`: content pieces sent before the connection is cut


class ConnectionCut(Exception):
    """Raised inside a response already begun: uvicorn drops the connection mid-body."""


class MockUpstream:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.streams_closed_early: list[str] = []  # `slow-stream` requests the client left
        self._closed_early = threading.Condition()
        self.function_calls: list[tuple[str, Any]] = []  # (name, arguments) the webhooks got
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/functions/{name}", self.function, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            ]
        )

    async def function(self, request: Request) -> Response:
        name = request.path_params["name"]
        arguments = await request.json()
        self.function_calls.append((name, arguments))
        if name == "fail":
            return PlainTextResponse("boom", status_code=500)
        if name == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        return JSONResponse({"function": name, "received": arguments})

    async def embeddings(self, request: Request) -> Response:
        """8-dimensional vectors from the text's bytes, in shuffled order (index says which)."""
        body = await request.json()
        self.received.append(body)
        self.headers.append(dict(request.headers))
        model = body.get("model", "")
        if model.startswith("fail-"):
            return self.failure(int(model.split("-", 1)[1]))
        if model == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i,
             "embedding": [float(sum(text.encode()[j::8]) + 1) for j in range(8)]}
            for i, text in enumerate(texts)
        ][::-1]  # fmt: skip
        tokens = sum(len(text.split()) for text in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse(
            {"object": "list", "data": data, "model": body["model"], "usage": usage}
        )

    @staticmethod
    def agent_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
        """The tool calls `agent` makes: none once tool results are in the conversation."""
        messages = body["messages"]
        last_user = next(m for m in reversed(messages) if m.get("role") == "user")
        looping = "LOOP" in str(last_user.get("content"))  # calls again, whatever it gets
        answered = messages[-1].get("role") == "tool" and not looping
        if answered or body.get("tool_choice") == "none":
            return []
        calls = []
        for line in str(last_user.get("content")).splitlines():
            if line.startswith("CALL "):
                _, name, arguments = line.split(" ", 2)
                call_id = f"call_{len(calls) + 1}"
                calls.append(
                    {"id": call_id, "type": "function",
                     "function": {"name": name, "arguments": arguments}}
                )  # fmt: skip
        return calls

    @staticmethod
    def fails_after_tools(body: dict[str, Any]) -> bool:
        """`agent` answers 500 to the round after its tools ran when asked to (`FAIL AFTER`)."""
        messages = body["messages"]
        last_user = next(m for m in reversed(messages) if m.get("role") == "user")
        return "FAIL AFTER" in str(last_user.get("content")) and messages[-1].get("role") == "tool"

    def closed_early(self, marker: str, timeout: float = 5.0) -> bool:
        """Waits until the `slow-stream` request carrying `marker` was left by its client."""
        with self._closed_early:
            return self._closed_early.wait_for(lambda: marker in self.streams_closed_early, timeout)

    def last(self) -> dict[str, Any]:
        return self.received[-1]

    def sent_with(self, marker: str) -> dict[str, Any]:
        """The last request whose messages hold `marker`: robust where other tests' requests
        (a stream still ending, another server's) may arrive after the one a test made."""
        for body in reversed(self.received):
            if marker in json.dumps(body.get("messages", "")):
                return body
        raise AssertionError(f"no request carried {marker!r}")

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.received.append(body)
        self.headers.append(dict(request.headers))
        model = body.get("model", "")
        if model.startswith("fail-"):
            return self.failure(int(model.split("-", 1)[1]))
        if model == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        if model == "pause":
            await asyncio.sleep(PAUSE_SECONDS)
        if model == "garbage":
            return PlainTextResponse("<html>definitely not json</html>")
        if model == "agent" and self.fails_after_tools(body):
            return self.failure(500)
        text = self.answer_text(body)
        usage = self.usage(body, text)
        calls = self.agent_calls(body) if model == "agent" else []
        if calls and body.get("stream"):
            return StreamingResponse(self.stream_calls(body, calls), media_type="text/event-stream")
        if body.get("stream"):
            return StreamingResponse(self.stream(body, text, usage), media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        finish = "stop"
        if model == "toolcall":
            message = {"role": "assistant", "content": None, "tool_calls": [self.tool_call()]}
            finish = "tool_calls"
        if calls:
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            finish = "tool_calls"
        answer: dict[str, Any] = {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": f"{model}-2026",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "system_fingerprint": "fp_mock",
        }
        if usage is not None:
            answer["usage"] = usage
        return JSONResponse(answer)

    @staticmethod
    def failure(status: int) -> Response:
        """An OpenAI error body with `status` (and `retry-after: 7` for 429 and 503)."""
        headers = {"retry-after": "7"} if status in (429, 503) else {}
        return JSONResponse(
            {"error": {"message": f"mock failure {status}", "type": "server_error"}},
            status_code=status,
            headers=headers,
        )

    @staticmethod
    def answer_text(body: dict[str, Any]) -> str:
        if body.get("model") == "router":  # a complexity router: EASY → 1, HARD → 5
            prompt = str(body["messages"][-1].get("content"))
            return "1" if "EASY" in prompt else "5" if "HARD" in prompt else "banana"
        if body.get("model") == "agent":
            results = [m["content"] for m in body["messages"] if m.get("role") == "tool"]
            return "Results: " + " | ".join(results) if results else "No call."
        if body.get("model") == "echo":
            return json.dumps({k: v for k, v in body.items() if k != "model"}, sort_keys=True)
        return "Hello from the mock upstream."

    @staticmethod
    def usage(body: dict[str, Any], text: str) -> dict[str, Any] | None:
        if body.get("model") == "nousage":
            return None
        prompt = sum(len(str(m.get("content", ""))) for m in body["messages"]) // 4 + 10
        cached = 8 if body.get("model") == "cached" else 0
        completion = max(1, len(text) // 4)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }

    @staticmethod
    def tool_call() -> dict[str, Any]:
        return {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
        }

    async def stream_calls(self, body: dict[str, Any], calls: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
        """Tool calls as OpenAI streams them: id and name first, then argument fragments."""

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = {
                "id": "chatcmpl-mock",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": "agent-2026",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(chunk)}\n\n".encode()

        yield event({"role": "assistant", "content": None})
        for index, call in enumerate(calls):
            head = {"index": index, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""}}  # fmt: skip
            yield event({"tool_calls": [head]})
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            for part in (arguments[:half], arguments[half:]):
                yield event({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
        yield event({}, "tool_calls")
        yield b"data: [DONE]\n\n"

    async def stream(self, body: dict[str, Any], text: str, usage: dict[str, Any] | None):  # type: ignore[no-untyped-def]
        model = body["model"]

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            chunk = {
                "id": "chatcmpl-mock",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": f"{model}-2026",
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(chunk)}\n\n".encode()

        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
        if model == "slow-stream":
            finished = False
            try:
                for i in range(100):
                    yield event([{"index": 0, "delta": {"content": f"{i} "}}])
                    await asyncio.sleep(0.05)
                finished = True
            finally:
                if not finished:
                    with self._closed_early:
                        self.streams_closed_early.append(body["messages"][-1]["content"])
                        self._closed_early.notify_all()
        if model == "stream-stall":  # two pieces, then silence past the read timeout
            for i in range(2):
                yield event([{"index": 0, "delta": {"content": f"piece{i} "}}])
            await asyncio.sleep(SLOW_SECONDS)
        if model == "stream-cut":
            for i in range(CUT_AFTER):
                yield event([{"index": 0, "delta": {"content": f"piece{i} "}}])
                await asyncio.sleep(0.01)
            raise ConnectionCut("the upstream dies mid-stream")
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
            await asyncio.sleep(0)
            if model == "stream-error" and i == 1:
                yield b'data: {"error": {"message": "mock broke off", "type": "server_error"}}\n\n'
                return
            if model == "stream-garbage" and i == 1:
                yield b"data: {not json\n\n"
                return
        yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        include = (body.get("stream_options") or {}).get("include_usage")
        if usage is not None and include:
            yield event([], usage=usage)
        yield b"data: [DONE]\n\n"
