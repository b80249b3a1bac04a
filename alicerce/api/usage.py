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
_MODEL = Query(None, description="the model that answered, as recorded")


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


def _metadata(request: Request) -> dict[str, str]:
    """`metadata.<name>=<value>` parameters, as a filter."""
    return {
        name.removeprefix("metadata."): value
        for name, value in request.query_params.items()
        if name.startswith("metadata.")
    }


def _filter(
    request: Request,
    account_id: str,
    *,
    gateway: str | None,
    key: str | None,
    model: str | None,
    from_: str | None,
    to: str | None,
    status: str | None = None,
) -> RequestFilter:
    """The request log filter that `/requests` and `/requests/stats` take alike: gateway and
    key by id or name, model, status, time, and `metadata.<name>=<value>`."""
    service = services_of(request).usage
    return RequestFilter(
        gateway_id=service.gateway_filter(account_id, gateway) if gateway else None,
        key_id=service.key_filter(account_id, key) if key else None,
        model=model or None,
        status=status or None,
        start=parse_time(from_, "from"),
        end=parse_time(to, "to"),
        metadata=_metadata(request),
    )


@router.get("/requests")
def requests(
    request: Request,
    gateway: str | None = _GATEWAY,
    key: str | None = _KEY,
    model: str | None = _MODEL,
    status: str | None = Query(None, description=STATUS_HELP),
    from_: str | None = _FROM,
    to: str | None = _TO,
    limit: int = 50,
    cursor: str | None = None,
    principal: Principal = Depends(require_admin),
) -> Response:
    """The request log, newest first. Filter by metadata with `metadata.<name>=<value>`."""
    assert principal.account_id is not None
    account_id = principal.account_id
    where = _filter(
        request,
        account_id,
        gateway=gateway,
        key=key,
        model=model,
        from_=from_,
        to=to,
        status=status,
    )
    page = services_of(request).usage.requests(account_id, where, limit=limit, cursor=cursor)
    return json_response(page)


@router.get("/requests/stats")
def request_stats(
    request: Request,
    from_: str | None = _FROM,
    to: str | None = _TO,
    group_by: Literal["day", "gateway", "key", "model"] | None = None,
    gateway: str | None = _GATEWAY,
    key: str | None = _KEY,
    model: str | None = _MODEL,
    principal: Principal = Depends(require_admin),
) -> Response:
    """How the inference requests went: counts, error rate, and latency and time-to-first-token
    percentiles (p50, p95), overall and optionally grouped. Filter by metadata with
    `metadata.<name>=<value>`."""
    assert principal.account_id is not None
    account_id = principal.account_id
    where = _filter(request, account_id, gateway=gateway, key=key, model=model, from_=from_, to=to)
    return json_response(services_of(request).usage.stats(account_id, where, group_by=group_by))


@router.get("/requests/{request_id}")
def request_record(
    request_id: str, request: Request, principal: Principal = Depends(require_admin)
) -> Response:
    """One record of the request log, by its id (an answer's `id` and `x-request-id`)."""
    assert principal.account_id is not None
    return json_response(services_of(request).usage.request(principal.account_id, request_id))
