"""`POST /embeddings`: OpenAI embeddings with the local embedding model."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from alicerce.api.auth import require_inference, services_of
from alicerce.api.inference import read_body
from alicerce.api.json import json_response
from alicerce.api.openapi import json_body
from alicerce.errors import AlicerceError
from alicerce.ids import new_id
from alicerce.inference.embeddings import EmbeddingsRequest, parse_embeddings_request
from alicerce.ledger import Call

router = APIRouter(tags=["inference"])

EMBEDDINGS_OPENAPI = json_body("EmbeddingsRequest", answer="An OpenAI embeddings list.")
SCHEMAS = [EmbeddingsRequest]  # documented by the app with the other hand-validated bodies


@router.post("/embeddings", openapi_extra=EMBEDDINGS_OPENAPI, summary="Create embeddings")
async def create_embeddings(request: Request) -> Response:
    started = time.perf_counter()
    services = services_of(request)
    principal = await require_inference(request)
    call = Call(new_id(), principal, None, "embeddings", started, None)
    try:
        body, texts = parse_embeddings_request(
            await read_body(request, services.settings.max_body_bytes)
        )
        answer = await services.embeddings.create(call, body, texts)
    except AlicerceError as exc:
        services.embeddings.record_failure(call, exc)
        exc.request_id = call.request_id
        raise
    return json_response(answer, headers={"x-request-id": call.request_id})
