"""Usage totals and the request log of an account (admin keys)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from alicerce.api.auth import require_admin, services_of
from alicerce.api.json import json_response
from alicerce.keys import Principal
from alicerce.request_listing import STATUS_HELP, RequestFilter
from alicerce.usage import parse_time

router = APIRouter(tags=["usage"])

_FROM = Query(None, alias="from", description="inclusive start; RFC 3339 or Unix seconds")
_TO = Query(None, description="exclusive end; RFC 3339 or Unix seconds")
_KEY = Query(None, description="a key's id or name (a deleted key's id too)")
_GATEWAY = Query(None, description="a gateway's id, slug or name (a deleted gateway's id too)")


@router.get("/usage")
def usage(
    request: Request,
    from_: str | None = _FROM,
    to: str | None = _TO,
    group_by: Literal["day", "sku", "gateway", "key", "model"] | None = None,
    key: str | None = _KEY,
    gateway: str | None = _GATEWAY,
    principal: Principal = Depends(require_admin),
) -> Response:
    """Totals over a time window, optionally grouped: the amount (in `currency`), quantities
    per SKU, requests served and refused."""
    assert principal.account_id is not None
    account_id, service = principal.account_id, services_of(request).usage
    totals = service.totals(
        account_id,
        start=parse_time(from_, "from"),
        end=parse_time(to, "to"),
        group_by=group_by,
        key_id=service.key_filter(account_id, key) if key else None,
        gateway_id=service.gateway_filter(account_id, gateway) if gateway else None,
    )
    return json_response(totals)


@router.get("/requests")
def requests(
    request: Request,
    gateway: str | None = _GATEWAY,
    key: str | None = _KEY,
    model: str | None = Query(None, description="the model that answered, as recorded"),
    status: str | None = Query(None, description=STATUS_HELP),
    from_: str | None = _FROM,
    to: str | None = _TO,
    limit: int = 50,
    cursor: str | None = None,
    principal: Principal = Depends(require_admin),
) -> Response:
    """The request log, newest first. Filter by metadata with `metadata.<name>=<value>`."""
    assert principal.account_id is not None
    account_id, service = principal.account_id, services_of(request).usage
    where = RequestFilter(
        gateway_id=service.gateway_filter(account_id, gateway) if gateway else None,
        key_id=service.key_filter(account_id, key) if key else None,
        model=model or None,
        status=status or None,
        start=parse_time(from_, "from"),
        end=parse_time(to, "to"),
        metadata={
            name.removeprefix("metadata."): value
            for name, value in request.query_params.items()
            if name.startswith("metadata.")
        },
    )
    page = service.requests(account_id, where, limit=limit, cursor=cursor)
    return json_response(page)
