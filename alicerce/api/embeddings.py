"""`POST /embeddings`: OpenAI embeddings with the local embedding model."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from alicerce.api.http import answer_headers, open_call, read_body
from alicerce.api.json import json_response
from alicerce.api.openapi import json_body
from alicerce.inference.embeddings import EmbeddingsRequest

router = APIRouter(tags=["inference"])

EMBEDDINGS_OPENAPI = json_body("EmbeddingsRequest", answer="An OpenAI embeddings list.")
SCHEMAS = [EmbeddingsRequest]  # documented by the app with the other hand-validated bodies


@router.post("/embeddings", openapi_extra=EMBEDDINGS_OPENAPI, summary="Create embeddings")
async def create_embeddings(request: Request) -> Response:
    services, call = await open_call(request, "embeddings")
    answer = await services.pipeline.embed(
        call, read_body(request, services.settings.max_body_bytes)
    )
    return json_response(answer.body, headers=answer_headers(answer.served))
