"""The OpenAI-compatible inference routes: chat completions and the model list.

This is the hot path. The key and the gateway come from in-memory caches; the request is
decoded and validated in one msgspec pass; the request log is written later, in batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from alicerce.api.auth import require_inference, services_of
from alicerce.api.json import json_response
from alicerce.api.openapi import json_body
from alicerce.catalog import AUTO_MODEL, LOCAL_CHAT_MODEL
from alicerce.embeddings import LOCAL_EMBEDDING_MODEL
from alicerce.errors import AlicerceError, NotFound, PermissionDenied, RequestTooLarge
from alicerce.gateways import OVERRIDABLE, Gateway, GatewaySpec
from alicerce.ids import new_id
from alicerce.inference.answer import prompt_estimate
from alicerce.inference.functions import merge_tools
from alicerce.inference.plan import Plan, plan_chat
from alicerce.inference.request import ChatRequest, parse_chat_request
from alicerce.keys import Principal
from alicerce.ledger import Call
from alicerce.services import Services
from alicerce.upstreams.registry import Target

router = APIRouter(tags=["inference"])

CHAT_OPENAPI = json_body(
    "ChatRequest",
    answer="An OpenAI `chat.completion`, or with `stream: true` a stream of "
    "`chat.completion.chunk` Server-Sent Events ending with `data: [DONE]`.",
)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) anything over `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def direct_spec(model_id: str) -> GatewaySpec:
    """A catalog model called by its id: no instructions, every parameter the client's."""
    return GatewaySpec(name="direct", model=model_id, overridable=list(OVERRIDABLE))


async def resolve_gateway(services: Services, principal: Principal, ref: str) -> Gateway | None:
    assert principal.account_id is not None
    found, gateway = services.gateways.peek(principal.account_id, ref)
    if not found:
        gateway = await run_in_threadpool(services.gateways.resolve, principal.account_id, ref)
    if gateway is not None and not principal.may_use_gateway(gateway.id):
        raise PermissionDenied(
            f"This key may not call the gateway {ref!r}.", param="model", code="gateway_not_allowed"
        )
    return gateway


@dataclass(slots=True)
class Prepared:
    """A request ready for the upstream: its plan, who may serve it, headers to answer with."""

    plan: Plan
    targets: list[Target]
    headers: dict[str, str] = field(default_factory=dict)


async def prepare_chat(services: Services, call: Call, chat: ChatRequest) -> Prepared:
    """Resolves the gateway (or catalog model) and plans the request; then, once the key's
    limits let it through, routes it (`@auto`) and grounds it in the gateway's knowledge, so
    that a refused request has called no model and searched nothing."""
    principal = call.principal
    gateway = await resolve_gateway(services, principal, chat.model)
    if gateway is None:
        direct = services.catalog.get(chat.model)
        if principal.gateways is None and direct is not None and direct.kind == "chat":
            plan = plan_chat(direct_spec(chat.model), chat)
            await admit(services, principal, plan)
            targets = [services.upstreams.for_model(chat.model)]
            return Prepared(plan, targets, {"x-request-id": call.request_id})
        raise NotFound(
            f"The model {chat.model!r} does not exist: name a gateway by its id or slug "
            "(GET /api/v1/models lists what this key may call).",
            param="model",
            code="model_not_found",
        )
    call.gateway_id = gateway.id
    spec = gateway.spec
    plan = plan_chat(spec, chat)
    searches = spec.knowledge.strategy == "tool"
    if spec.functions or searches:
        more = (
            [services.grounder.search_tool(gateway.account_id, spec.knowledge)] if searches else []
        )
        plan.toolbox = services.tools.for_gateway(gateway.id, spec, spec.functions, *more)
        plan.body["tools"] = merge_tools(plan.body.get("tools"), plan.toolbox)
    await admit(services, principal, plan)
    prepared = Prepared(plan, [], {"x-request-id": call.request_id})
    chosen = None
    if spec.model == AUTO_MODEL and spec.routing is not None:
        routed = await services.router.route(spec.routing, plan.body["messages"])
        plan.line_items += routed.line_items
        chosen = routed.model_id
        complexity = routed.complexity
        if complexity is None:  # the router failed: the middle tier, said so
            complexity = 3
            prepared.headers["x-alicerce-routing-fallback"] = "true"
        prepared.headers["x-alicerce-routed-complexity"] = str(complexity)
    prepared.targets = services.upstreams.targets(gateway, chosen)
    if spec.knowledge.strategy != "none":
        await services.grounder.ground(
            gateway.account_id, spec.knowledge, plan, prepared.targets[0]
        )
    return prepared


STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def served_by(target: Target) -> str:
    """The `x-alicerce-model` header: the catalog model that answered, or `endpoint`."""
    return target.model.id if target.model is not None else "endpoint"


async def admit(services: Services, principal: Principal, plan: Plan) -> None:
    """Enforces the key's limits (429) before any model is called."""
    if services.limiter.applies(principal):
        await services.limiter.admit(principal, prompt_estimate(plan.body))


@router.post("/chat/completions", openapi_extra=CHAT_OPENAPI, summary="Create a chat completion")
async def chat_completions(request: Request) -> Response:
    started = time.perf_counter()
    services = services_of(request)
    principal = await require_inference(request)
    call = Call(new_id(), principal, None, "chat.completions", started, None)
    stream, model, charges = False, None, None
    try:
        chat = parse_chat_request(await read_body(request, services.settings.max_body_bytes))
        stream, call.metadata = chat.stream, chat.metadata
        prepared = await prepare_chat(services, call, chat)
        charges, headers = prepared.plan.line_items, prepared.headers
        model = prepared.targets[0].upstream.model
        if stream:
            chunks, target = await services.chat.open_stream(call, prepared.targets, prepared.plan)
            headers |= STREAM_HEADERS | {"x-alicerce-model": served_by(target)}
            return StreamingResponse(chunks, media_type="text/event-stream", headers=headers)
        answer, target = await services.chat.complete(call, prepared.targets, prepared.plan)
        headers["x-alicerce-model"] = served_by(target)
        return json_response(answer, headers=headers)
    except AlicerceError as exc:
        services.chat.record_failure(call, model, exc, stream=stream, charges=charges)
        exc.request_id = call.request_id
        raise


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
    gateway = await resolve_gateway(services_of(request), principal, model_id)
    if gateway is not None:
        return json_response(_model_entry(gateway.slug, 0, "gateway"))
    raise NotFound(f"The model {model_id!r} does not exist.", param="model", code="model_not_found")
