"""Admin routes: accounts (root key), keys and gateways (an account's admin key).

Handlers are plain `def`s: FastAPI runs them in its thread pool, where the synchronous
database work belongs. Another account's ids answer 404, never 403.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from alicerce.api.auth import authenticate, require_admin, require_root, services_of
from alicerce.api.http import json_payload
from alicerce.api.json import json_response, listing
from alicerce.api.openapi import json_body
from alicerce.catalog import describe_models
from alicerce.keys import AccountCreate, AccountUpdate, KeyCreate, KeyUpdate, Principal
from alicerce.services import Services
from alicerce.validation import parse_body

router = APIRouter()
SCHEMAS: tuple[type[BaseModel], ...] = (AccountCreate, AccountUpdate, KeyCreate, KeyUpdate)


def _services(request: Request) -> Services:
    return services_of(request)


# -- the caller (any key) ----------------------------------------------------------------


@router.get("/me", tags=["keys"])
def whoami(
    services: Services = Depends(_services), principal: Principal = Depends(authenticate)
) -> Response:
    """The calling key: its `role` (`root`, `admin`, `inference`), its `account` and itself
    (`key`), so that a client (the console) knows what it may do before it tries."""
    return json_response(services.keys.whoami(principal))


# -- accounts (root key) -----------------------------------------------------------------


@router.post(
    "/accounts", status_code=201, tags=["accounts"], openapi_extra=json_body("AccountCreate")
)
def create_account(
    services: Services = Depends(_services),
    _: Principal = Depends(require_root),
    payload: Any = Depends(json_payload),
) -> Response:
    """Creates an account; the answer carries its first admin key, shown this once."""
    spec = parse_body(AccountCreate, payload)
    return json_response(services.keys.create_account(spec), status=201)


@router.get("/accounts", tags=["accounts"])
def list_accounts(
    services: Services = Depends(_services), _: Principal = Depends(require_root)
) -> Response:
    return listing(services.keys.list_accounts())


@router.get("/accounts/{account_id}", tags=["accounts"])
def get_account(
    account_id: str, services: Services = Depends(_services), _: Principal = Depends(require_root)
) -> Response:
    return json_response(services.keys.get_account(account_id))


@router.patch("/accounts/{account_id}", tags=["accounts"], openapi_extra=json_body("AccountUpdate"))
def update_account(
    account_id: str,
    services: Services = Depends(_services),
    _: Principal = Depends(require_root),
    payload: Any = Depends(json_payload),
) -> Response:
    spec = parse_body(AccountUpdate, payload)
    return json_response(services.keys.update_account(account_id, spec))


@router.delete("/accounts/{account_id}", status_code=204, tags=["accounts"])
def delete_account(
    account_id: str, services: Services = Depends(_services), _: Principal = Depends(require_root)
) -> Response:
    """Deletes the account with its keys and gateways."""
    services.keys.delete_account(account_id)
    return Response(status_code=204)


# -- keys (admin key) --------------------------------------------------------------------


@router.post("/keys", status_code=201, tags=["keys"], openapi_extra=json_body("KeyCreate"))
def create_key(
    services: Services = Depends(_services),
    principal: Principal = Depends(require_admin),
    payload: Any = Depends(json_payload),
) -> Response:
    """Creates a key; the secret (`key`) is in this answer only."""
    assert principal.account_id is not None
    spec = parse_body(KeyCreate, payload)
    return json_response(services.keys.create_key(principal.account_id, spec), status=201)


@router.get("/keys", tags=["keys"])
def list_keys(
    services: Services = Depends(_services), principal: Principal = Depends(require_admin)
) -> Response:
    assert principal.account_id is not None
    return listing(services.keys.list_keys(principal.account_id))


@router.patch("/keys/{key_id}", tags=["keys"], openapi_extra=json_body("KeyUpdate"))
def update_key(
    key_id: str,
    services: Services = Depends(_services),
    principal: Principal = Depends(require_admin),
    payload: Any = Depends(json_payload),
) -> Response:
    """A JSON merge patch: the fields sent change (`null` clears a limit, an expiry or the
    gateway list), the rest stay, and the secret is kept. Takes effect from the next request."""
    assert principal.account_id is not None
    patch = parse_body(KeyUpdate, payload)
    return json_response(services.keys.update(principal.account_id, key_id, patch))


@router.delete("/keys/{key_id}", status_code=204, tags=["keys"])
def delete_key(
    key_id: str,
    services: Services = Depends(_services),
    principal: Principal = Depends(require_admin),
) -> Response:
    assert principal.account_id is not None
    services.keys.delete_key(principal.account_id, key_id)
    return Response(status_code=204)


# -- the catalog (admin key) -------------------------------------------------------------


@router.get("/catalog", tags=["gateways"])
def list_catalog(
    services: Services = Depends(_services), _: Principal = Depends(require_admin)
) -> Response:
    """The operator's catalog as a gateway's author chooses from it: each model's `kind`
    (`chat` or `embedding`), its prices per million tokens and the catalog's `currency`
    (`GET /models` is OpenAI's list, without either)."""
    catalog = services.catalog
    data = [
        {k: v for k, v in entry.items() if k != "upstream_model"}  # the operator's business
        for entry in describe_models(catalog)
    ]
    return json_response({"object": "list", "currency": catalog.currency, "data": data})


# -- gateways (admin key) ----------------------------------------------------------------


@router.post(
    "/gateways",
    status_code=201,
    tags=["gateways"],
    openapi_extra=json_body("GatewaySpec"),
)
def create_gateway(
    services: Services = Depends(_services),
    principal: Principal = Depends(require_admin),
    payload: Any = Depends(json_payload),
) -> Response:
    assert principal.account_id is not None
    return json_response(services.gateways.create(principal.account_id, payload), status=201)


@router.get("/gateways", tags=["gateways"])
def list_gateways(
    services: Services = Depends(_services), principal: Principal = Depends(require_admin)
) -> Response:
    assert principal.account_id is not None
    return listing(services.gateways.list(principal.account_id))


@router.get("/gateways/{ref}", tags=["gateways"])
def get_gateway(
    ref: str, services: Services = Depends(_services), principal: Principal = Depends(require_admin)
) -> Response:
    """A gateway by id or slug (`name:xxxx`)."""
    assert principal.account_id is not None
    return json_response(services.gateways.get(principal.account_id, ref))


MERGE_PATCH = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "A JSON merge patch (RFC 7396) of the GatewaySpec's fields.",
                }
            }
        },
    }
}


@router.patch("/gateways/{ref}", tags=["gateways"], openapi_extra=MERGE_PATCH)
def update_gateway(
    ref: str,
    services: Services = Depends(_services),
    principal: Principal = Depends(require_admin),
    patch: Any = Depends(json_payload),
) -> Response:
    """A JSON merge patch (RFC 7396): objects merge key by key, `null` clears a field.

    Setting `model` drops `endpoint` and the other way round; an `endpoint` patch without
    `api_key` keeps the stored key.
    """
    assert principal.account_id is not None
    return json_response(services.gateways.update(principal.account_id, ref, patch))


@router.delete("/gateways/{ref}", status_code=204, tags=["gateways"])
def delete_gateway(
    ref: str, services: Services = Depends(_services), principal: Principal = Depends(require_admin)
) -> Response:
    assert principal.account_id is not None
    services.gateways.delete(principal.account_id, ref)
    return Response(status_code=204)
