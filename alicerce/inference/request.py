"""The OpenAI chat-completions request, decoded and validated at the edge in one pass.

msgspec decodes and type-checks together, several times faster than building pydantic models,
and its error names the path of the offending field, which becomes the OpenAI `param`.
Unknown fields are ignored, as the contract says.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from alicerce.errors import InvalidRequest
from alicerce.inference.content import check_parts
from alicerce.json_input import load_json

Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
TopP = Annotated[float, msgspec.Meta(ge=0, le=1)]
Penalty = Annotated[float, msgspec.Meta(ge=-2, le=2)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
# Bounds on every integer a request hands on: the largest that the upstreams' own parsers take
# (int32 for token counts, int64 for a seed), so that 2**63 is our clear 400, not theirs.
MAX_TOKENS = 2**31 - 1
TokenCount = Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKENS)]
Seed = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# OpenAI's bounds on `metadata`, which the request log keeps for every request: 16 pairs, keys
# of 64 characters, values of 512 (else one request could store megabytes, for ever).
Metadata = Annotated[
    dict[Annotated[str, msgspec.Meta(max_length=64)], Annotated[str, msgspec.Meta(max_length=512)]],
    msgspec.Meta(max_length=16),
]
Tools = Annotated[list[dict[str, Any]], msgspec.Meta(max_length=128)]  # OpenAI's own bound
# OpenAI's `logit_bias`: token ids (as strings) to a bias in [-100, 100], 300 at most.
LogitBias = Annotated[
    dict[
        Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,9}$")],
        Annotated[float, msgspec.Meta(ge=-100, le=100)],
    ],
    msgspec.Meta(max_length=300),
]
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class Message(msgspec.Struct, omit_defaults=True):
    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ChatRequest(msgspec.Struct):
    model: str
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    stop: str | Annotated[list[str], msgspec.Meta(max_length=4)] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    seed: Seed | None = None
    n: int | None = None  # only 1: see `parse_chat_request`
    logit_bias: LogitBias | None = None
    tools: Tools | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    metadata: Metadata | None = None
    user: str | None = None


T = TypeVar("T")
_PATH = re.compile(r" - at `(?P<key>key` in `)?\$(?P<path>[^`]*)`$")


def _param_from_path(path: str) -> str:
    """`.messages[0].role` → `messages[0].role`; `.logit_bias[...]` (a value of a mapping)
    → `logit_bias`."""
    return path.lstrip(".").removesuffix("[...]")


def decode_body(kind: type[T], raw: bytes) -> T:
    """Decodes and validates any request struct; every failure is a 400 with `param` naming
    the field (shared by the OpenAI routes, so all of them answer bad input alike). The JSON
    is read by `json_input.load_json`, the rules of every JSON body (depth, duplicate keys,
    UTF-8), then typed by msgspec."""
    value = load_json(raw)
    if not isinstance(value, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _PATH.search(text)
        param = _param_from_path(match["path"]) if match else None
        message = text[: match.start()] if match else text
        if match and match["key"]:
            message += " (a key)"
        if message.startswith("Object missing required field"):
            field = message.split("`")[1]
            param = f"{param}.{field}" if param else field
            message = "Missing required parameter"
        raise InvalidRequest(
            f"{message}: '{param}'." if param else message + ".", param=param
        ) from None


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Decodes and validates; every failure is a 400 with `param` naming the field."""
    request = decode_body(ChatRequest, raw)
    if request.model == "":
        raise InvalidRequest("'model' must name a gateway.", param="model")
    check_parts(request.messages)
    if request.n is not None and request.n != 1:
        # One answer per request: grounding, server-side functions, billing and the request
        # log are per answer, and silently answering one of five would be worse than saying so.
        raise InvalidRequest(
            f"'n' must be 1 (got {request.n}): this gateway answers one choice per request; "
            "send several requests for several answers.",
            param="n",
            code="unsupported_parameter",
        )
    return request
