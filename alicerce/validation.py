"""Validating JSON bodies with pydantic, the one way every route does it.

Bodies the server validates itself (gateways, knowledge) are parsed by hand rather than by
FastAPI, so that a bad field is a 400 `invalid_request_error` naming it in `param`, as OpenAI
answers, never FastAPI's 422. Both halves of that live here: the strict base model (an unknown
field is an error, not silently dropped) and the conversion of pydantic's error.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from alicerce.errors import InvalidRequest


class Strict(BaseModel):
    """A body model that refuses fields it does not declare."""

    model_config = ConfigDict(extra="forbid")


M = TypeVar("M", bound=BaseModel)

# Control characters (C0 with NUL, DEL, C1), line and paragraph separators, and the bidi
# overrides that make a name display as another ("Trojan Source").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _printable(value: str) -> str:
    """A name is shown in lists, logs and the console, and sent in headers: a NUL or a line
    break in it is a mistake at best (a forged log line at worst), so it is refused."""
    found = _CONTROL.search(value)
    if found:
        raise ValueError(
            f"must not contain control characters (found U+{ord(found.group()):04X} at "
            f"position {found.start()})"
        )
    return value


# A human-given name: of an account, key, collection (200 characters) or document (500).
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
LongName = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_printable)]


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
