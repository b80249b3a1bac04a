"""OpenAPI for routes that validate their bodies themselves (to answer 400, never 422)."""

from __future__ import annotations

from typing import Any


def json_body(
    schema: str,
    *,
    answer: str | None = None,
    more: dict[str, Any] | None = None,
    required: bool = True,
) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is the component `schema`; `more` adds
    other media types of the same body (multipart uploads)."""
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    extra: dict[str, Any] = {
        "requestBody": {"required": required, "content": content | (more or {})}
    }
    if answer is not None:
        extra["responses"] = {"200": {"description": answer}}
    return extra
