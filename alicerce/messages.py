"""Chat messages as the OpenAI API carries them, read the same way by every layer.

A message's `content` is a string, a list of content parts (`{"type": "text", "text": ...}`,
images, ...), or null; planning, grounding, routing, token counting and the local model all
need its text, so the one reading of it lives here, below all of them.
"""

from __future__ import annotations

from typing import Any


def text_of(content: Any) -> str:
    """The text of a message's content, whether a string or a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(
        part.get("text", "") for part in content if isinstance(part, dict) and "text" in part
    )
