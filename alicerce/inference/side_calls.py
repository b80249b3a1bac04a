"""Small questions the gateway asks a model for itself (routing, query rewriting), billed.

Such a call must never fail the request it serves: an upstream error gives no text, and the
caller falls back to something sensible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from alicerce.billing import LineItem, inference_line_items
from alicerce.errors import AlicerceError, UpstreamError
from alicerce.tokens import TokenCounter
from alicerce.upstreams.registry import Target

log = logging.getLogger("alicerce.upstreams")


@dataclass(slots=True)
class Answered:
    text: str | None  # None: the model could not be asked
    line_items: list[LineItem] = field(default_factory=list)


async def ask(
    target: Target, body: dict[str, Any], tokens: TokenCounter, sku: str, purpose: str
) -> Answered:
    """The model's answer text and its tokens as line items under `sku`."""
    try:
        completion = await target.upstream.complete(body)
    except AlicerceError as exc:
        log.warning(
            "upstream %s failed for %s: %s; going on without it",
            target.name,
            purpose.lower(),
            exc.message,
            extra={
                "upstream": target.name,
                "upstream_status": exc.upstream_status if isinstance(exc, UpstreamError) else None,
                "error_code": exc.code,
                "purpose": purpose,
            },
        )
        return Answered(None)
    choices = completion.get("choices") or [{}]
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    text = content if isinstance(content, str) else ""
    usage = await tokens.settle(completion.get("usage"), body["messages"], text)
    return Answered(text, inference_line_items(target.model, usage, sku, purpose))
