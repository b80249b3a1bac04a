"""The API's own documentation: `/docs` (Swagger UI) and `/redoc` with their assets served
from a package, so they work without the internet, and an OpenAPI document that says what the
API really does: which routes take a key (Swagger's "Authorize" sends it) and the errors they
answer, OpenAI error objects with 400 for bad input, never FastAPI's 422.

Nothing here runs per request: the document is built once, at its first request.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

ASSETS_URL = "/docs/assets"  # Swagger UI's and ReDoc's scripts and styles
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # the contract's keyless routes
SECURITY_SCHEME = "bearer"
ERROR_SCHEMA = "Error"
METHODS = frozenset({"get", "post", "put", "patch", "delete"})

_ERROR_OBJECT: dict[str, Any] = {
    "type": "object",
    "description": "An OpenAI error object; `param` names the field at fault, when one is.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {
                    "type": "string",
                    "examples": ["invalid_request_error", "authentication_error"],
                },
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_RETRY_AFTER = {
    "retry-after": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}
_ERRORS = {
    "400": "Invalid request: a wrong type or range, with `param` naming the field.",
    "401": "The key is missing or wrong.",
    "403": "The key may not do this (its role, or a gateway outside its list).",
    "404": "Not found, or another account's: ids of other accounts are never confirmed.",
    "409": "In conflict with what is there: a name already taken, a collection that gateways "
    "use, a retry of something that has not failed.",
    "413": "The request body is larger than the server takes.",
    "429": "Over the key's `rpm` or `tpm` (`rate_limit_error`) or its `monthly_budget` "
    "(`insufficient_quota`).",
    "502": "The upstream answered with an error or something that is not an OpenAI answer.",
    "503": "The upstream (or the local model) is unavailable or overloaded.",
    "504": "The upstream did not answer in time.",
}
_KEY = (
    "An Alicerce key (`alc_…`): an account's admin or inference key, or the operator's root key "
    "for `/accounts`. Paste the key alone; Swagger UI adds `Bearer`."
)


def offline_app(**settings: Any) -> FastAPI:
    """A FastAPI app whose `/docs` and `/redoc` load their assets from this server."""
    return FastAPIOffline(docs_url="/docs", redoc_url="/redoc", static_url=ASSETS_URL, **settings)


def describe_security_and_errors(schema: dict[str, Any]) -> None:
    """Adds the bearer scheme to the routes that need a key and, on every route, the error
    answers it can give in place of FastAPI's 422 (the error handlers answer 400)."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": _KEY,
    }
    components.setdefault("schemas", {})[ERROR_SCHEMA] = _ERROR_OBJECT
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method in METHODS:
                _describe(path, method, operation)
    for unused in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(unused, None)


def _describe(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    if path in PUBLIC_PATHS:
        return
    operation["security"] = [{SECURITY_SCHEME: []}]
    calls_a_model = method == "post" and "inference" in operation.get("tags", ())
    codes = ["401", "403"]
    queried = any(p.get("in") == "query" for p in operation.get("parameters", ()))
    if queried or "requestBody" in operation:
        codes.append("400")
    filters = {p.get("name") for p in operation.get("parameters", ()) if p.get("in") == "query"}
    if "{" in path or calls_a_model or filters & _NAMED_FILTERS:
        codes.append("404")
    if method in ("post", "patch", "delete") and _may_conflict(path, method):
        codes.append("409")
    if calls_a_model or (method == "post" and path.endswith("/documents")):
        codes.append("413")
    if calls_a_model:
        codes += ["429", "502", "503", "504"]
    for code in sorted(codes):
        responses.setdefault(code, _error(code))
    if method == "post" and path.endswith(_CREATES) and not calls_a_model:
        for code in ("200", "201", "202"):
            if code in responses:
                responses[code].setdefault("content", {})["application/json"] = {"schema": _CREATED}


# The routes that create a resource answer it with its `id`: said in the document, so that a
# client generated from it (and schemathesis's stateful runs) can follow it to the resource.
_CREATES = ("/accounts", "/keys", "/gateways", "/collections", "/documents")
_CREATED: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object"],
    "properties": {"id": {"type": "string"}, "object": {"type": "string"}},
}


_NAMED_FILTERS = {"gateway", "key"}  # query filters naming a gateway or key: 404 when unknown


def _may_conflict(path: str, method: str) -> bool:
    """Names are unique per account (collections, gateways); a collection in use is not
    deleted without `force`; only a failed document or re-embedding is retried."""
    if path.endswith("/search"):
        return False
    if path.startswith("/api/v1/collections"):
        return True
    return path.startswith("/api/v1/gateways") and method != "delete"


def _error(code: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": _ERRORS[code],
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}
        },
    }
    if code in ("429", "503"):
        answer["headers"] = _RETRY_AFTER
    return answer
