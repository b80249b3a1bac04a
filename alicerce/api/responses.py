"""`POST /responses`: the Responses API, served by the chat-completions pipeline."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from alicerce.api.auth import require_inference, services_of
from alicerce.api.inference import STREAM_HEADERS, prepare_chat, read_body, served_by
from alicerce.api.json import json_response
from alicerce.api.openapi import json_body
from alicerce.errors import AlicerceError
from alicerce.ids import new_id
from alicerce.inference.responses import (
    ResponseEvents,
    ResponsesRequest,
    parse_responses_request,
    response_from_chat,
    response_id,
    to_chat_request,
    translate_stream,
)
from alicerce.ledger import Call

router = APIRouter(tags=["inference"])

RESPONSES_OPENAPI = json_body(
    "ResponsesRequest",
    answer="A `response` object, or with `stream: true` its typed Server-Sent Events "
    "(`response.created` ... `response.completed`).",
)
SCHEMAS = [ResponsesRequest]  # documented by the app with the other hand-validated bodies


@router.post("/responses", openapi_extra=RESPONSES_OPENAPI, summary="Create a model response")
async def create_response(request: Request) -> Response:
    started = time.perf_counter()
    services = services_of(request)
    principal = await require_inference(request)
    call = Call(new_id(), principal, None, "responses", started, None)
    stream, model, charges = False, None, None
    try:
        body = parse_responses_request(await read_body(request, services.settings.max_body_bytes))
        stream, call.metadata = body.stream, body.metadata
        prepared = await prepare_chat(services, call, to_chat_request(body))
        charges, headers = prepared.plan.line_items, prepared.headers
        model = prepared.targets[0].upstream.model
        rid = response_id(call.request_id)
        if stream:
            chunks, target = await services.chat.open_stream(call, prepared.targets, prepared.plan)
            events = ResponseEvents(rid, body, target.upstream.model)
            headers |= STREAM_HEADERS | {"x-alicerce-model": served_by(target)}
            return StreamingResponse(
                translate_stream(chunks, events), media_type="text/event-stream", headers=headers
            )
        answer, target = await services.chat.complete(call, prepared.targets, prepared.plan)
        headers["x-alicerce-model"] = served_by(target)
        return json_response(response_from_chat(rid, body, answer), headers=headers)
    except AlicerceError as exc:
        services.chat.record_failure(call, model, exc, stream=stream, charges=charges)
        exc.request_id = call.request_id
        raise
