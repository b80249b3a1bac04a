"""Who is calling: the bearer key turned into a `Principal`, and the role checks."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from alicerce.errors import PermissionDenied
from alicerce.keys import Principal
from alicerce.services import Services


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def authenticate(request: Request) -> Principal:
    keys = services_of(request).keys
    token = bearer_token(request)
    principal = keys.cached(token)
    if principal is None:  # a cache miss costs one indexed lookup, off the event loop
        principal = await run_in_threadpool(keys.authenticate, token)
    return principal


ACCOUNT_HEADER = "x-alicerce-account"


async def require_admin(request: Request) -> Principal:
    """An account's admin key; or the root key acting for the account that the
    `X-Alicerce-Account` header names (the operator sees every account, the console too)."""
    principal = await authenticate(request)
    if principal.role == "root" and (account_id := request.headers.get(ACCOUNT_HEADER)):
        keys = services_of(request).keys
        await run_in_threadpool(keys.get_account, account_id)  # 404 for an unknown account
        return Principal(principal.key_id, account_id, "admin", None)
    if principal.role != "admin" or principal.account_id is None:
        raise PermissionDenied(
            "This endpoint needs an admin key of an account."
            + (
                " The root key manages accounts; it acts for one with the X-Alicerce-Account"
                " header."
                if principal.role == "root"
                else ""
            )
        )
    return principal


async def require_root(request: Request) -> Principal:
    principal = await authenticate(request)
    if principal.role != "root":
        raise PermissionDenied("This endpoint needs the operator's root key.")
    return principal


async def require_inference(request: Request) -> Principal:
    principal = await authenticate(request)
    if principal.account_id is None:
        raise PermissionDenied("The root key cannot call models; use a key of an account.")
    return principal
