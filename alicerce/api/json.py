"""JSON responses through msgspec: the hot path's encoder, used everywhere for one behaviour.

Amounts are `money.Money` and are written as plain JSON numbers (`0.0000005`, never `5E-7`); a
bare `Decimal` would be written as its `str()`, which may use an exponent, so views hand amounts
over as `Money`.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from alicerce.money import encode_json as encode


def json_response(
    payload: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(encode(payload), status, headers, media_type="application/json")


def listing(data: list[dict[str, Any]]) -> Response:
    """A list answer in OpenAI's envelope: `{"object": "list", "data": [...]}`."""
    return json_response({"object": "list", "data": data})
