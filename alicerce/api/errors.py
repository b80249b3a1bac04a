"""Every failure leaves as an OpenAI error object; nothing leaves as a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from alicerce.api.json import json_response
from alicerce.errors import AlicerceError, InvalidRequest, internal_error

log = logging.getLogger("alicerce.api")

_HTTP_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
}


def error_response(exc: AlicerceError) -> Response:
    return json_response(exc.to_body(), status=exc.status, headers=exc.headers())


def _validation_param(exc: RequestValidationError) -> tuple[str | None, str]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    message = str(first.get("msg", "Invalid request")).removeprefix("Value error, ")
    return param, message


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AlicerceError)
    async def _alicerce(_: Request, exc: AlicerceError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        param, message = _validation_param(exc)
        text = f"{param}: {message}" if param else message
        return error_response(InvalidRequest(text, param=param))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> Response:
        error = AlicerceError(str(exc.detail))
        error.status = exc.status_code
        error.type = _HTTP_TYPES.get(exc.status_code, "server_error")
        headers = dict(exc.headers or {})
        return json_response(error.to_body(), status=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        error = internal_error()
        return json_response(error.to_body(), status=500)
