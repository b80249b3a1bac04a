"""The upstream interface: one chat completion, whole or as a stream of chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

# An OpenAI `chat.completion` (or `chat.completion.chunk`) object, decoded.
Completion = dict[str, Any]


def message_fault(message: dict[str, Any]) -> str | None:
    """What of an upstream's `message` (or a chunk's `delta`) is not the shape the gateway reads
    and clients parse, content a string or null and tool_calls a list or null; None if it is."""
    if not isinstance(message.get("content"), str | None):
        return "content is not a string"
    if not isinstance(message.get("tool_calls"), list | None):
        return "tool_calls is not a list"
    return None


class Upstream(Protocol):
    """A model that answers OpenAI chat-completion bodies.

    `body` is an OpenAI request body without `model` and `stream`: the upstream knows its own
    model name. Failures before the first byte raise `alicerce.errors.UpstreamError` subclasses
    (so fallbacks can try the next model); a failure during a stream raises the same from the
    iterator.
    """

    label: str  # how errors name this upstream, without secrets
    model: str  # the model name the upstream reports

    async def complete(self, body: dict[str, Any]) -> Completion: ...

    def stream(self, body: dict[str, Any]) -> AsyncIterator[Completion]: ...
