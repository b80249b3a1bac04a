"""Validating bodies: a strict model, and pydantic's first error as a 400 naming its field."""

from __future__ import annotations

import pytest
from pydantic import Field, field_validator

from alicerce.errors import InvalidRequest
from alicerce.validation import Strict, parse_body


class Inner(Strict):
    size: int = Field(ge=1)


class Body(Strict):
    name: str
    inner: Inner | None = None

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


def test_a_valid_body_is_its_model() -> None:
    body = parse_body(Body, {"name": "n", "inner": {"size": 2}})
    assert isinstance(body, Body) and body.inner == Inner(size=2)


def test_the_body_must_be_an_object() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_body(Body, ["name"])
    assert caught.value.message == "The body must be a JSON object."
    assert caught.value.param is None


@pytest.mark.parametrize(
    ("payload", "message", "param"),
    [
        ({"name": "n", "colour": "red"}, "colour: Extra inputs are not permitted", "colour"),
        ({}, "name: Field required", "name"),
        ({"name": " "}, "name: must not be blank", "name"),  # "Value error, " is dropped
        (
            {"name": "n", "inner": {"size": 0}},
            "inner.size: Input should be greater than or equal to 1",
            "inner.size",
        ),
    ],
)
def test_the_first_problem_is_a_400_naming_its_field(
    payload: dict[str, object], message: str, param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_body(Body, payload)
    assert caught.value.message == message
    assert caught.value.param == param
    assert caught.value.status == 400
