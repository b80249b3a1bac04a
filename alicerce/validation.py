"""Validating JSON bodies with pydantic, the one way every route does it.

Bodies the server validates itself (gateways, knowledge) are parsed by hand rather than by
FastAPI, so that a bad field is a 400 `invalid_request_error` naming it in `param`, as OpenAI
answers, never FastAPI's 422. Both halves of that live here: the strict base model (an unknown
field is an error, not silently dropped) and the conversion of pydantic's error.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from alicerce.errors import InvalidRequest


class Strict(BaseModel):
    """A body model that refuses fields it does not declare."""

    model_config = ConfigDict(extra="forbid")


M = TypeVar("M", bound=BaseModel)


def validation_error(exc: ValidationError) -> InvalidRequest:
    """The first problem of a pydantic error as an OpenAI error with `param` set."""
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    message = first["msg"].removeprefix("Value error, ")
    return InvalidRequest(f"{param}: {message}" if param else message, param=param)


def parse_body(model: type[M], payload: Any) -> M:
    """A JSON body validated into `model`, or a 400 naming the field (never a 422)."""
    if not isinstance(payload, dict):
        raise InvalidRequest("The body must be a JSON object.")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc) from None
