"""Server-side tools: what a gateway's model may call and the gateway itself runs.

Two kinds share one loop: the operator's webhook `functions` (SPEC section 2), and knowledge's
`search_knowledge` (the `tool` strategy). When the model calls one, the gateway runs it and
feeds the result back, up to `MAX_ROUNDS` times. A tool that fails, times out or answers badly
gives the model an error it can read; it never fails the request. Tools sent by the client are
not run here: their calls go back to the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import msgspec

from alicerce.billing import LineItem
from alicerce.errors import InvalidRequest
from alicerce.function_schemas import schema_validator
from alicerce.gateways import Function
from alicerce.upstreams.http import HttpClients

log = logging.getLogger("alicerce.functions")

MAX_ROUNDS = 5  # model → tools → model, at most this many tool rounds per request
MAX_OUTPUT_CHARS = 16_000
_decode = msgspec.json.decode
_encode = msgspec.json.encode


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
class ToolResult:
    call: ToolCall
    output: str  # what the model reads: the tool's answer, or an error it can act on
    error: str | None = None
    duration_ms: float = 0.0
    charges: list[LineItem] = field(default_factory=list)  # e.g. a knowledge search
    knowledge: list[dict[str, Any]] = field(default_factory=list)  # chunks the model was given
    searches: list[dict[str, Any]] = field(default_factory=list)  # `search_knowledge`'s report

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


class ServerTool(Protocol):
    name: str

    def spec(self) -> dict[str, Any]:
        """The OpenAI `tools[]` entry offered to the model."""
        ...

    async def run(self, call: ToolCall, arguments: dict[str, Any]) -> ToolResult:
        """Runs a call whose arguments already passed the schema."""
        ...


def tool_spec(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


class WebhookFunction:
    """An operator's function: arguments POSTed as JSON to its URL, the body read back."""

    def __init__(self, function: Function, clients: HttpClients) -> None:
        self.name = function.name
        self._function = function
        self._clients = clients

    def spec(self) -> dict[str, Any]:
        f = self._function
        return tool_spec(f.name, f.description, f.parameters)

    async def run(self, call: ToolCall, arguments: dict[str, Any]) -> ToolResult:
        function = self._function
        session = self._clients.guarded  # a user-typed URL: internal addresses refused
        assert session is not None
        headers = {"content-type": "application/json", **(function.headers or {})}
        try:
            async with session.post(
                function.url,
                data=_encode(arguments),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=function.timeout_s),
                allow_redirects=False,  # a redirect could lead to an internal address
            ) as response:
                body = await response.text(errors="replace")
                if 300 <= response.status < 400:
                    return failed(
                        call,
                        f"the function answered a redirect (HTTP {response.status}), "
                        "which is not followed",
                    )
                if response.status >= 400:
                    return failed(
                        call, f"the function answered HTTP {response.status}: {body[:500]}"
                    )
                return ToolResult(call, body)
        except TimeoutError:
            return failed(call, f"the function did not answer within {function.timeout_s} s")
        except aiohttp.ClientConnectorError as exc:
            return failed(call, f"the function could not be reached: {exc.os_error}")
        except (aiohttp.ClientError, OSError) as exc:
            return failed(call, f"the function could not be reached: {exc}")


def failed(call: ToolCall, reason: str) -> ToolResult:
    return ToolResult(call, f"error: {reason}", reason)


class Toolbox:
    """The server-side tools of one request, with their argument validators."""

    def __init__(self, tools: Iterable[ServerTool]) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._validators: dict[str, Any] = {}
        for name, tool in self._tools.items():
            schema = tool.spec()["function"].get("parameters") or {"type": "object"}
            self._validators[name] = schema_validator(schema)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __bool__(self) -> bool:
        return bool(self._tools)

    def specs(self) -> list[dict[str, Any]]:
        return [tool.spec() for tool in self._tools.values()]

    async def run_all(self, calls: list[ToolCall]) -> list[ToolResult]:
        return list(await asyncio.gather(*(self.run(call) for call in calls)))

    async def run(self, call: ToolCall) -> ToolResult:
        started = time.perf_counter()
        result = await self._run(call)
        if len(result.output) > MAX_OUTPUT_CHARS:
            result.output = result.output[:MAX_OUTPUT_CHARS] + " …[truncated]"
        result.duration_ms = (time.perf_counter() - started) * 1000
        return result

    async def _run(self, call: ToolCall) -> ToolResult:
        try:
            arguments = _decode(call.arguments or "{}")
        except (msgspec.DecodeError, RecursionError):
            return failed(call, "the arguments are not valid JSON; call again with a JSON object")
        if not isinstance(arguments, dict):
            return failed(call, "the arguments must be a JSON object")
        try:
            problem = next(iter(self._validators[call.name].iter_errors(arguments)), None)
        except RecursionError:  # a `$ref` loop under a property that creation's probe missed
            return failed(call, "the function's schema loops on these arguments; it cannot run")
        except Exception as exc:  # a `$ref` that cannot be resolved, say: the tool's fault
            return failed(call, f"the function's schema cannot check arguments: {exc}")
        if problem is not None:
            where = "/".join(str(p) for p in problem.absolute_path) or "arguments"
            return failed(
                call, f"the arguments do not match the schema at {where}: {problem.message}"
            )
        try:
            return await self._tools[call.name].run(call, arguments)
        except Exception as exc:  # a tool's bug must not fail the request
            log.exception("server tool %s failed", call.name)
            return failed(call, f"the tool failed: {type(exc).__name__}")


class GatewayTools:
    """Each gateway's server-side tools as a Toolbox (schema validators and all), built once per
    gateway definition rather than on every request."""

    def __init__(self, clients: HttpClients) -> None:
        self._clients = clients
        self._built: dict[str, tuple[object, Toolbox]] = {}

    def for_gateway(
        self, gateway_id: str, spec: object, functions: list[Function], *more: ServerTool
    ) -> Toolbox:
        """The toolbox of `functions` and `more`, remade when `spec` (the gateway's
        definition, which the tools come from) is another object."""
        cached = self._built.get(gateway_id)
        if cached is not None and cached[0] is spec:
            return cached[1]
        if len(self._built) > 10_000:
            self._built.clear()
        toolbox = Toolbox([*(WebhookFunction(f, self._clients) for f in functions), *more])
        self._built[gateway_id] = (spec, toolbox)
        return toolbox


def merge_tools(client_tools: Any, toolbox: Toolbox) -> list[dict[str, Any]]:
    """The client's tools and the server's, offered together; a name clash is the client's
    error (the model could not tell them apart)."""
    tools = list(client_tools or [])
    for i, tool in enumerate(tools):
        name = (tool.get("function") or {}).get("name") if isinstance(tool, dict) else None
        if name in toolbox:
            raise InvalidRequest(
                f"tools.{i}: the gateway already offers a function named {name!r}; rename yours.",
                param=f"tools.{i}.function.name",
            )
    return tools + toolbox.specs()


def split_calls(tool_calls: Any, toolbox: Toolbox) -> tuple[list[ToolCall], list[dict[str, Any]]]:
    """A message's tool calls, as (the server's to run, the client's to hand back)."""
    server: list[ToolCall] = []
    client: list[dict[str, Any]] = []
    for raw in tool_calls or []:
        if not isinstance(raw, dict):
            continue
        function = raw.get("function") or {}
        name = function.get("name")
        if isinstance(name, str) and name in toolbox:
            arguments = function.get("arguments")
            server.append(ToolCall(str(raw.get("id") or ""), name, str(arguments or "")))
        else:
            client.append(raw)
    return server, client
