"""Who is calling: the bearer key turned into a `Principal`, and the role checks."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from alicerce.errors import AuthenticationFailed, PermissionDenied
from alicerce.keys import Principal
from alicerce.services import Services


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


MAX_KEY_LENGTH = 4096  # a key is 47 characters; an operator's root key may be longer, not this


def bearer_token(request: Request) -> str | None:
    """The key of `Authorization: Bearer <key>`. Two `Authorization` headers are refused, not
    resolved: which one a server, a proxy or a log takes differs, and an admin key sent beside
    an inference key must not make the request an admin's."""
    headers = request.headers.getlist("authorization")
    if len(headers) > 1:
        raise AuthenticationFailed(
            f"The request has {len(headers)} Authorization headers; send exactly one.",
            code="ambiguous_api_key",
        )
    header = headers[0] if headers else None
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if len(token) > MAX_KEY_LENGTH:
        raise AuthenticationFailed(
            f"The API key sent is {len(token)} characters long; no key is longer than "
            f"{MAX_KEY_LENGTH}. Send the key you were given."
        )
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
