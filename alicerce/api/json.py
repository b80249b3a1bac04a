"""JSON responses through msgspec: the hot path's encoder, used everywhere for one behaviour."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

_encode = msgspec.json.Encoder(decimal_format="number").encode


def json_response(
    payload: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(_encode(payload), status, headers, media_type="application/json")


def listing(data: list[dict[str, Any]]) -> Response:
    """A list answer in OpenAI's envelope: `{"object": "list", "data": [...]}`."""
    return json_response({"object": "list", "data": data})
