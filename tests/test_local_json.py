"""The local model honours `response_format` through llama.cpp grammars (real model)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.conftest import Account

pytestmark = pytest.mark.slow

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 30},
        "population": {"type": "integer"},
        "coastal": {"type": "boolean"},
    },
    "required": ["city", "population", "coastal"],
    "additionalProperties": False,
}
QUESTION = "Describe Lisbon as JSON with its city name, population and whether it is coastal."


def _local(account: Account) -> dict[str, object]:
    return account.create_gateway(
        model="@local/smollm2-135m",
        parameters={"temperature": 0, "seed": 1, "max_tokens": 120},
    )


def test_json_schema_output_parses_and_validates_streamed_and_not(account: Account) -> None:
    gateway = _local(account)
    client = account.openai()
    response_format = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
    messages = [{"role": "user", "content": QUESTION}]
    completion = client.chat.completions.create(
        model=gateway["id"], messages=messages, response_format=response_format
    )
    jsonschema.validate(json.loads(completion.choices[0].message.content or ""), SCHEMA)

    chunks = client.chat.completions.create(
        model=gateway["id"], messages=messages, response_format=response_format, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    jsonschema.validate(json.loads(text), SCHEMA)


def test_json_object_and_the_responses_api_text_format(account: Account) -> None:
    gateway = _local(account)
    client = account.openai()
    completion = client.chat.completions.create(
        model=gateway["id"],
        messages=[{"role": "user", "content": 'Answer with {"answer": "yes"} or {"answer": "no"}'
                   ": is the sky blue?"}],
        response_format={"type": "json_object"},
    )  # fmt: skip
    # A grammar cannot make the model stop: an answer cut at max_tokens is not JSON (as with
    # OpenAI), so the question asks for something short.
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)

    response = client.responses.create(
        model=gateway["id"],
        input=QUESTION,
        text={"format": {"type": "json_schema", "name": "city", "schema": SCHEMA}},
    )
    jsonschema.validate(json.loads(response.output_text), SCHEMA)


def test_a_schema_the_grammar_cannot_express_is_a_400(account: Account) -> None:
    gateway = _local(account)
    schema = {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}}
    with account.http() as http:
        response = http.post(
            "/chat/completions",
            json={
                "model": gateway["id"],
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"schema": schema}},
            },
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "response_format.json_schema.schema"
