"""The OpenAI-compatible inference routes: chat completions and the model list.

This is the hot path, and it is thin: the handler opens a call and hands the body to the
pipeline (`inference/pipeline.py`), which does the rest and gives back an answer dict or a
stream of chunk objects, encoded here (`api/http.py`). The key and the gateway come from
in-memory caches; the request is decoded and validated in one msgspec pass; the request log is
written later, in batches.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from alicerce.api.auth import require_inference, services_of
from alicerce.api.http import answer_headers, chat_stream, open_call, read_body
from alicerce.api.json import json_response
from alicerce.api.openapi import json_body
from alicerce.catalog import LOCAL_CHAT_MODEL
from alicerce.embeddings import LOCAL_EMBEDDING_MODEL
from alicerce.errors import NotFound
from alicerce.inference.pipeline import ChatStream
from alicerce.keys import Principal
from alicerce.services import Services

router = APIRouter(tags=["inference"])

CHAT_OPENAPI = json_body(
    "ChatRequest",
    answer="An OpenAI `chat.completion`, or with `stream: true` a stream of "
    "`chat.completion.chunk` Server-Sent Events ending with `data: [DONE]`.",
)


@router.post("/chat/completions", openapi_extra=CHAT_OPENAPI, summary="Create a chat completion")
async def chat_completions(request: Request) -> Response:
    services, call = await open_call(request, "chat.completions")
    body = read_body(request, services.settings.max_body_bytes)
    answer = await services.pipeline.chat(call, body)
    if isinstance(answer, ChatStream):
        return chat_stream(answer.items, answer.served)
    return json_response(answer.body, headers=answer_headers(answer.served))


router.add_api_route(
    "/chat-completions",
    chat_completions,
    methods=["POST"],
    openapi_extra=CHAT_OPENAPI,
    summary="Create a chat completion (alias)",
    operation_id="chat_completions_alias",
)


def _model_entry(model_id: str, created: int, owned_by: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


def _models_for(services: Services, principal: Principal) -> list[dict[str, Any]]:
    assert principal.account_id is not None
    data = []
    for gateway in services.gateways.list(principal.account_id):
        if principal.may_use_gateway(gateway["id"]):
            created = datetime.fromisoformat(gateway["created_at"]).timestamp()
            data.append(_model_entry(gateway["slug"], int(created), "gateway"))
    if principal.gateways is None:
        for model in services.catalog.models():
            owner = "alicerce" if model.id == LOCAL_CHAT_MODEL else model.provider.name
            data.append(_model_entry(model.id, 0, owner))
        if LOCAL_EMBEDDING_MODEL not in services.catalog:  # for /embeddings only
            data.append(_model_entry(LOCAL_EMBEDDING_MODEL, 0, "alicerce"))
    return data


@router.get("/models", summary="List the models (gateways and catalog models) a key may call")
async def list_models(request: Request) -> Response:
    principal = await require_inference(request)
    data = await run_in_threadpool(_models_for, services_of(request), principal)
    return json_response({"object": "list", "data": data})


@router.get("/models/{model_id:path}", summary="Retrieve one model")
async def get_model(request: Request, model_id: str) -> Response:
    principal = await require_inference(request)
    data = await run_in_threadpool(_models_for, services_of(request), principal)
    for entry in data:
        if entry["id"] == model_id:
            return json_response(entry)
    gateway = await services_of(request).pipeline.resolve_gateway(principal, model_id)
    if gateway is not None:
        return json_response(_model_entry(gateway.slug, 0, "gateway"))
    raise NotFound(f"The model {model_id!r} does not exist.", param="model", code="model_not_found")
