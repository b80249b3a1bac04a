"""Usage totals and the request log of an account (admin keys)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from alicerce.api.auth import require_admin, services_of
from alicerce.api.json import json_response
from alicerce.keys import Principal
from alicerce.usage import parse_time

router = APIRouter(tags=["usage"])


@router.get("/usage")
def usage(
    request: Request,
    from_: str | None = Query(None, alias="from", description="RFC 3339 or Unix seconds"),
    to: str | None = Query(None, description="exclusive end; RFC 3339 or Unix seconds"),
    group_by: Literal["day", "sku", "gateway", "key"] | None = None,
    key: str | None = Query(None, description="only this key's usage"),
    principal: Principal = Depends(require_admin),
) -> Response:
    """Totals (amount, quantity, requests) over a time window, optionally grouped."""
    assert principal.account_id is not None
    totals = services_of(request).usage.totals(
        principal.account_id,
        start=parse_time(from_, "from"),
        end=parse_time(to, "to"),
        group_by=group_by,
        key_id=key,
    )
    return json_response(totals)


@router.get("/requests")
def requests(
    request: Request,
    gateway: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    principal: Principal = Depends(require_admin),
) -> Response:
    """The request log, newest first. Filter by metadata with `metadata.<name>=<value>`."""
    assert principal.account_id is not None
    services = services_of(request)
    gateway_id = services.gateways.resolve_id(principal.account_id, gateway) if gateway else None
    metadata = {
        name.removeprefix("metadata."): value
        for name, value in request.query_params.items()
        if name.startswith("metadata.")
    }
    page = services.usage.requests(
        principal.account_id, gateway_id=gateway_id, limit=limit, cursor=cursor, metadata=metadata
    )
    return json_response(page)
