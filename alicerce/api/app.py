"""The ASGI application: routes mounted under `/api/v1` and `/v1`, errors as OpenAI objects."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from fastapi import FastAPI

from alicerce import __version__
from alicerce.api import admin, console, embeddings, inference, knowledge, ops, responses, usage
from alicerce.api.docs import describe_security_and_errors, offline_app
from alicerce.api.errors import install_error_handlers
from alicerce.api.fastpath import FastPath, Handler
from alicerce.gateways import GatewaySpec
from alicerce.gc_pacing import GcPacer
from alicerce.inference.request import ChatRequest
from alicerce.loop_lag import LoopLag
from alicerce.services import Services
from alicerce.settings import Settings


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastPath:
    """The app; its parts are built in the lifespan (or handed in, already built)."""
    settings = settings or (services.settings if services else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        built = services or Services.build(settings)
        app.state.services = built
        await built.start()
        # Everything made at start lives as long as the process: move it out of the garbage
        # collector's sight, so that collections stay short on the request path.
        gc.collect()
        gc.freeze()
        # From here on, collections wait for the worker to be idle (alicerce/gc_pacing.py).
        pacer = GcPacer(
            lambda: door.in_flight,
            max_interval_s=settings.gc_max_interval_s,
            observe=built.metrics.gc_paused,
        )
        pacer.start()
        if settings.max_event_loop_lag_ms > 0:  # the door sheds while the loop runs late
            door.lag = LoopLag(settings.max_event_loop_lag_ms / 1000)
            door.lag.start()
        try:
            # The server's connection guard counts its refusals here (alicerce/connections.py).
            yield {"metrics": built.metrics}
        finally:
            if door.lag is not None:
                door.lag.stop()
                door.lag = None
            await pacer.stop()
            await built.close()

    app = offline_app(  # /docs and /redoc with their assets served here, not from a CDN
        title="Alicerce",
        version=__version__,
        description="An AI gateway with an OpenAI-compatible API.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    for prefix in ("/api/v1", "/v1"):
        app.include_router(inference.router, prefix=prefix, include_in_schema=prefix == "/api/v1")
        app.include_router(admin.router, prefix=prefix, include_in_schema=prefix == "/api/v1")
        app.include_router(usage.router, prefix=prefix, include_in_schema=prefix == "/api/v1")
        app.include_router(embeddings.router, prefix=prefix, include_in_schema=prefix == "/api/v1")
        app.include_router(responses.router, prefix=prefix, include_in_schema=prefix == "/api/v1")
        app.include_router(knowledge.router, prefix=prefix, include_in_schema=prefix == "/api/v1")
    app.include_router(ops.router)
    app.include_router(console.router)
    app.mount("/console", console.ConsoleFiles(), name="console")
    _document_hand_validated_bodies(app)
    handlers: dict[str, Handler] = {
        "chat/completions": inference.chat_completions,
        "chat-completions": inference.chat_completions,
        "responses": responses.create_response,
        "embeddings": embeddings.create_embeddings,
    }
    hot = {
        ("POST", f"{prefix}/{path}"): handler
        for prefix in ("/api/v1", "/v1")
        for path, handler in handlers.items()
    }
    door = FastPath(app, hot, max_in_flight=settings.max_requests_in_flight)
    return door


def _document_hand_validated_bodies(app: FastAPI) -> None:
    """Bodies validated by hand (msgspec, merge patches) still get their schema in the docs,
    and every route its key and its errors (`docs.py`)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        _, chat_defs = msgspec.json.schema_components(
            [ChatRequest, *embeddings.SCHEMAS, *responses.SCHEMAS],
            ref_template="#/components/schemas/{name}",
        )
        components.update(chat_defs)
        gateway = GatewaySpec.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(gateway.pop("$defs", {}))
        components["GatewaySpec"] = gateway
        for model in (*admin.SCHEMAS, *knowledge.SCHEMAS):
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        describe_security_and_errors(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
