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

Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
TopP = Annotated[float, msgspec.Meta(ge=0, le=1)]
Penalty = Annotated[float, msgspec.Meta(ge=-2, le=2)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
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
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    stop: str | Annotated[list[str], msgspec.Meta(max_length=4)] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None


T = TypeVar("T")
_decoder = msgspec.json.Decoder(ChatRequest)
_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def _param_from_path(path: str) -> str:
    """`.messages[0].role` → `messages[0].role`."""
    return path.lstrip(".")


def decode_body(decoder: msgspec.json.Decoder[T], raw: bytes) -> T:
    """Decodes and validates any request struct; every failure is a 400 with `param` naming
    the field (shared by the OpenAI routes, so all of them answer bad input alike)."""
    if not raw.strip():
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _PATH.search(text)
        param = _param_from_path(match["path"]) if match else None
        message = text[: match.start()] if match else text
        if message.startswith("Object missing required field"):
            field = message.split("`")[1]
            param = f"{param}.{field}" if param else field
            message = "Missing required parameter"
        raise InvalidRequest(
            f"{message}: '{param}'." if param else message + ".", param=param
        ) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from None


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Decodes and validates; every failure is a 400 with `param` naming the field."""
    request = decode_body(_decoder, raw)
    if request.model == "":
        raise InvalidRequest("'model' must name a gateway.", param="model")
    return request
