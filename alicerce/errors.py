"""Every error a client can see, each mapped once to its OpenAI error type and HTTP status.

    AlicerceError
    ├── InvalidRequest          400 invalid_request_error
    ├── AuthenticationFailed    401 authentication_error
    ├── PermissionDenied        403 permission_error
    ├── NotFound                404 not_found_error
    ├── RequestTimeout          408 invalid_request_error
    ├── Conflict                409 invalid_request_error
    ├── RequestTooLarge         413 invalid_request_error
    ├── HeadersTooLarge         431 invalid_request_error
    ├── RateLimited             429 rate_limit_error        (retry-after)
    ├── QuotaExceeded           429 insufficient_quota
    ├── Overloaded              503 service_unavailable     (retry-after)
    │   ├── LimitsUnavailable   503 limits_unavailable      (retry-after)
    │   └── StoreUnavailable    503 database_unavailable    (retry-after)
    ├── ClientDisconnected      499 client_disconnected     (recorded only: nobody to answer)
    └── UpstreamError           502 upstream_error
        ├── UpstreamUnavailable 503 upstream_unavailable    (retry-after)
        ├── UpstreamSaturated   503 upstream_saturated      (retry-after)
        └── UpstreamTimeout     504 upstream_timeout

Messages never carry secrets or stack traces: upstream failures name the upstream model
and what went wrong, never its URL credentials or key.
"""

from __future__ import annotations

from typing import Any


class AlicerceError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after
        self.extra_headers = headers  # e.g. a 429's `x-ratelimit-*`
        self.details = details  # fields beside the four, for programs: a 409's `gateways`
        self.request_id: str | None = None

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }
        if self.details:
            error |= {k: v for k, v in self.details.items() if k not in error}
        return {"error": error}

    def headers(self) -> dict[str, str]:
        headers = dict(self.extra_headers) if self.extra_headers else {}
        if self.retry_after is not None:
            headers["retry-after"] = str(max(1, round(self.retry_after)))
        if self.request_id is not None:
            headers["x-request-id"] = self.request_id
        return headers


class InvalidRequest(AlicerceError):
    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(AlicerceError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(AlicerceError):
    status = 403
    type = "permission_error"


class NotFound(AlicerceError):
    status = 404
    type = "not_found_error"


class RequestTimeout(AlicerceError):
    """The client sent its request too slowly (`ALICERCE_HTTP_*_TIMEOUT_S`)."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class Conflict(AlicerceError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class RequestTooLarge(AlicerceError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class HeadersTooLarge(AlicerceError):
    """The request line and headers passed `ALICERCE_HTTP_MAX_HEADER_BYTES`."""

    status = 431
    type = "invalid_request_error"
    code = "headers_too_large"


class RateLimited(AlicerceError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class QuotaExceeded(AlicerceError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class Overloaded(AlicerceError):
    status = 503
    type = "service_unavailable"
    code = "overloaded"


class LimitsUnavailable(Overloaded):
    """The key's limits cannot be checked (Redis is unreachable) and it has a budget: refused,
    never admitted unchecked (docs/decisions.md, "When Redis goes away")."""

    code = "limits_unavailable"


class StoreUnavailable(Overloaded):
    """The database is unreachable: the request cannot be served now (docs/operations.md)."""

    code = "database_unavailable"


class ClientDisconnected(AlicerceError):
    """The client left before its body was read: recorded as 499 (nginx's "client closed
    request"), logged as one line at info; nothing is sent, there is no one to send it to."""

    status = 499
    type = "client_disconnected"
    code = "client_disconnected"


class UpstreamError(AlicerceError):
    """The upstream answered with an error or with something that is not an OpenAI answer."""

    status = 502
    type = "upstream_error"
    code = "bad_gateway"
    upstream_status: int | None = None  # the upstream's own HTTP status, when it answered one


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached, or said it is overloaded (5xx, 429)."""

    status = 503
    code = "upstream_unavailable"


class UpstreamSaturated(UpstreamError):
    """This worker holds as many calls to the upstream's host as it may
    (`ALICERCE_UPSTREAM_MAX_CONNECTIONS_PER_HOST`): refused before any byte was sent, so the
    next model may serve it, and not retried on the same one (it would only wait)."""

    status = 503
    code = "upstream_saturated"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


def internal_error() -> AlicerceError:
    """The 500 a client sees for a bug: it says nothing of the bug (the log does)."""
    return AlicerceError("The server had an error while processing your request.")
