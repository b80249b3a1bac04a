"""`POST /responses`: the Responses API, served by the chat-completions pipeline."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from alicerce.api.http import answer_headers, open_call, read_body, response_stream
from alicerce.api.json import json_response
from alicerce.api.openapi import json_body
from alicerce.inference.pipeline import ResponseStream
from alicerce.inference.responses import ResponsesRequest

router = APIRouter(tags=["inference"])

RESPONSES_OPENAPI = json_body(
    "ResponsesRequest",
    answer="A `response` object, or with `stream: true` its typed Server-Sent Events "
    "(`response.created` ... `response.completed`).",
)
SCHEMAS = [ResponsesRequest]  # documented by the app with the other hand-validated bodies


@router.post("/responses", openapi_extra=RESPONSES_OPENAPI, summary="Create a model response")
async def create_response(request: Request) -> Response:
    services, call = await open_call(request, "responses")
    body = read_body(request, services.settings.max_body_bytes)
    answer = await services.pipeline.respond(call, body)
    if isinstance(answer, ResponseStream):
        return response_stream(answer.items, answer.events, answer.served)
    return json_response(answer.body, headers=answer_headers(answer.served))
