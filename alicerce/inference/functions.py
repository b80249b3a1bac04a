"""Server-side functions: the operator's webhooks that a gateway's model may call.

When the model calls one, the gateway checks the arguments against the function's JSON Schema,
POSTs them to its URL, and hands the answer back to the model. A function that fails, times out
or answers badly gives the model an error it can read; it never fails the request. Tools sent by
the client are not run here: their calls go back to the client.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jsonschema
import msgspec

from alicerce.gateways import Function
from alicerce.upstreams.http import HttpClients

MAX_ROUNDS = 5  # model → functions → model, at most this many times per request
MAX_OUTPUT_CHARS = 16_000
_decode = msgspec.json.decode
_encode = msgspec.json.encode


def as_tool(function: Function) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": function.name,
            "description": function.description,
            "parameters": function.parameters,
        },
    }


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str

    def to_message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(slots=True)
class FunctionResult:
    call: ToolCall
    output: str  # what the model reads: the function's answer, or an error it can act on
    error: str | None
    duration_ms: float

    def to_runned(self) -> dict[str, Any]:
        return {
            "name": self.call.name,
            "arguments": self.call.arguments,
            "output": self.output,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 3),
        }

    def to_message(self) -> dict[str, Any]:
        return {"role": "tool", "tool_call_id": self.call.id, "content": self.output}


@dataclass
class FunctionSet:
    """A gateway's functions, ready to offer to a model and to run."""

    functions: dict[str, Function]
    clients: HttpClients
    validators: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, function in self.functions.items():
            cls = jsonschema.validators.validator_for(function.parameters)
            self.validators[name] = cls(function.parameters)

    def __contains__(self, name: object) -> bool:
        return name in self.functions

    def tools(self) -> list[dict[str, Any]]:
        return [as_tool(f) for f in self.functions.values()]

    async def run_all(self, calls: list[ToolCall]) -> list[FunctionResult]:
        return list(await asyncio.gather(*(self.run(call) for call in calls)))

    async def run(self, call: ToolCall) -> FunctionResult:
        started = time.perf_counter()
        output, error = await self._run(call)
        if len(output) > MAX_OUTPUT_CHARS:
            output = output[:MAX_OUTPUT_CHARS] + " …[truncated]"
        return FunctionResult(call, output, error, (time.perf_counter() - started) * 1000)

    async def _run(self, call: ToolCall) -> tuple[str, str | None]:
        function = self.functions[call.name]
        try:
            arguments = _decode(call.arguments or "{}")
        except msgspec.DecodeError:
            return _failed("the arguments are not valid JSON; call the function again with a "
                           "JSON object")  # fmt: skip
        problem = next(iter(self.validators[call.name].iter_errors(arguments)), None)
        if problem is not None:
            where = "/".join(str(p) for p in problem.absolute_path) or "arguments"
            return _failed(f"the arguments do not match the schema at {where}: {problem.message}")
        session = self.clients.guarded
        assert session is not None
        headers = {"content-type": "application/json", **(function.headers or {})}
        try:
            async with session.post(
                function.url,
                data=_encode(arguments),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=function.timeout_s),
            ) as response:
                body = await response.text(errors="replace")
                if response.status >= 400:
                    return _failed(f"the function answered HTTP {response.status}: {body[:500]}")
                return body, None
        except TimeoutError:
            return _failed(f"the function did not answer within {function.timeout_s} s")
        except aiohttp.ClientError as exc:
            return _failed(f"the function could not be reached: {exc}")


def _failed(reason: str) -> tuple[str, str]:
    return f"error: {reason}", reason
