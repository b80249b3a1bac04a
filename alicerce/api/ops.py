"""Operational routes: liveness, readiness and Prometheus metrics (no key needed, unless the
operator sets `ALICERCE_METRICS_KEY`: then `/metrics` wants it as a bearer token)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from alicerce.api.auth import bearer_token, services_of
from alicerce.api.json import json_response
from alicerce.errors import AuthenticationFailed
from alicerce.store.database import UNAVAILABLE_RETRY_AFTER_S

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """503 while the database is unreachable: nothing can be served. A Redis that is away
    (`ALICERCE_REDIS_URL`) is reported but keeps the worker ready, 200 `degraded`: only keys with
    a budget are refused meanwhile, and taking every replica out of the load balancer for it
    would refuse the rest too."""
    services = services_of(request)

    def ping() -> None:
        with services.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        await run_in_threadpool(ping)
    except Exception:
        return json_response(
            {"status": "unavailable", "database": "unreachable"},
            status=503,
            headers={"retry-after": str(UNAVAILABLE_RETRY_AFTER_S)},
        )
    answer = {"status": "ok", "database": "ok"}
    if services.settings.redis_url:
        if await services.limiter.reachable():
            answer["redis"] = "ok"
        else:
            answer |= {"status": "degraded", "redis": "unreachable"}
    return json_response(answer)


@router.get(
    "/metrics",
    responses={
        200: {
            "description": "The Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        401: {"description": "`ALICERCE_METRICS_KEY` is set and the bearer token is not it."},
    },
)
async def metrics(request: Request) -> Response:
    services = services_of(request)
    wanted = services.settings.metrics_key
    if wanted is not None:
        given = bearer_token(request) or ""
        if not hmac.compare_digest(given.encode(), wanted.encode()):  # in constant time
            raise AuthenticationFailed(
                "/metrics needs the metrics key (ALICERCE_METRICS_KEY) as a bearer token."
            )
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
