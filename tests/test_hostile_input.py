"""Hostile input to the JSON API, as an attacker or a broken client sends it (issue 14).

Each case is sent to a real server (the session's, on loopback, with the mock upstream) and
must get a clear OpenAI error object: the right status, `type`, `code` and `param`, a message
a person understands, and the server still answering afterwards. Raw httpx sends what the
`openai` SDK cannot (bad bytes, duplicate keys, two headers); the SDK sends the rest.

The table `CASES` holds the cases that are one request and one answer; the tests after it
are the cases that need more (a gateway with a function, a disconnect, the request log).
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alicerce.json_input import MAX_DEPTH
from tests.conftest import Account, Alicerce
from tests.servers import ServerThread

MSGS = [{"role": "user", "content": "hi"}]


def deep(levels: int, open_: str = "[", close: str = "]") -> str:
    return open_ * levels + close * levels


DEEP = deep(20_000)


@dataclass
class Case:
    """One request and the error it must get. `body` is JSON text with `{gw}` standing for
    the gateway's slug (or raw bytes, sent as they are); `message` is a piece of the message."""

    name: str
    body: str | bytes
    status: int
    param: str | None
    message: str
    code: str | None = None
    path: str = "/chat/completions"
    headers: dict[str, str] = field(default_factory=dict)
    type: str = "invalid_request_error"


def chat(extra: str, messages: str = json.dumps(MSGS)) -> str:
    return '{"model": "{gw}", "messages": ' + messages + (", " + extra if extra else "") + "}"


CASES = [
    # -- nesting: 20,000 levels wherever JSON nests (was a 500: RecursionError) ----------------
    Case(
        "deep tools[].function.parameters",
        chat(
            '"tools": [{"type": "function", "function": {"name": "f", "parameters": {"x": '
            + DEEP
            + "}}}]"
        ),
        400,
        "tools[0].function.parameters.x",
        f"more than {MAX_DEPTH} levels",
        "invalid_json",
    ),
    Case(
        "deep response_format.json_schema.schema",
        chat(
            '"response_format": {"type": "json_schema", "json_schema": {"name": "x", '
            '"schema": {"a": ' + DEEP + "}}}"
        ),
        400,
        "response_format.json_schema.schema.a",
        "levels deep",
        "invalid_json",
    ),
    Case(
        "deep content part",
        chat(
            "", '[{"role": "user", "content": [{"type": "text", "text": "a", "x": ' + DEEP + "}]}]"
        ),
        400,
        "messages[0].content[0].x",
        "levels deep",
        "invalid_json",
    ),
    Case(
        "deep tool_choice",
        chat('"tool_choice": {"x": ' + DEEP + "}"),
        400,
        "tool_choice.x",
        "levels deep",
        "invalid_json",
    ),
    Case(
        "deep Responses input",
        '{"model": "{gw}", "input": ' + DEEP + "}",
        400,
        "input",
        "levels deep",
        "invalid_json",
        path="/responses",
    ),
    Case(
        "deep embeddings input",
        '{"model": "@local/multilingual-e5-small", "input": ' + DEEP + "}",
        400,
        "input",
        "levels deep",
        "invalid_json",
        path="/embeddings",
    ),
    Case(
        "deep objects, brackets inside strings do not count",
        chat(
            '"metadata": {"a": "'
            + "[" * 5000
            + '"}, "tools": [{"x": '
            + deep(200, "{", "}").replace("{}", '{"k": 1}')
            + "}]"
        ),
        400,
        "tools[0].x",
        "levels deep",
        "invalid_json",
    ),
    # -- unclear errors made clear -----------------------------------------------------------
    Case(
        "truncated JSON",
        b'{"name": ',
        400,
        None,
        "ends before its JSON does (line 1, column 10)",
        "invalid_json",
    ),
    Case(
        "syntax error with line and column",
        b'{"model": "x",\n "messages": [}\n',
        400,
        None,
        "line 2, column 15",
        "invalid_json",
    ),
    Case(
        "lone surrogate",
        chat("").replace('"{gw}"', '"\\ud800"').encode(),
        400,
        "model",
        "lone UTF-16 surrogate",
        "invalid_json",
    ),
    Case(
        "lone surrogate deep in a message",
        chat("", '[{"role": "user", "content": "ok \\udc00"}]'),
        400,
        "messages[0].content",
        "lone UTF-16 surrogate",
        "invalid_json",
    ),
    Case(
        "invalid UTF-8",
        b'{"model": "\xff\xfe", "messages": []}',
        400,
        None,
        "not valid UTF-8: byte 0xff at line 1, column 12",
        "invalid_json",
    ),
    Case(
        "duplicate keys",
        '{"model": "a", "model": "{gw}", "messages": [{"role": "user", "content": "hi"}]}',
        400,
        None,
        "the key 'model' twice in one object",
        "invalid_json",
    ),
    Case(
        "duplicate keys nested",
        chat("", '[{"role": "user", "role": "system", "content": "hi"}]'),
        400,
        None,
        "the key 'role' twice",
        "invalid_json",
    ),
    Case(
        "NaN",
        chat('"temperature": NaN'),
        400,
        None,
        "NaN, which is not a JSON number",
        "invalid_json",
    ),
    Case("Infinity", chat('"temperature": -Infinity'), 400, None, "-Infinity", "invalid_json"),
    Case("1e400", chat('"temperature": 1e400'), 400, None, "1e400", "invalid_json"),
    Case(
        "a 5,000-digit integer", chat('"seed": ' + "9" * 5000), 400, None, "number", "invalid_json"
    ),
    Case("empty body", b"", 400, None, "empty", "invalid_json"),
    Case("a JSON array", b"[1, 2]", 400, None, "must be a JSON object"),
    # -- parameters out of range, or not taken ---------------------------------------------
    Case("temperature 5", chat('"temperature": 5'), 400, "temperature", "<= 2"),
    Case("top_p -1", chat('"top_p": -1'), 400, "top_p", ">= 0"),
    Case("presence_penalty 3", chat('"presence_penalty": 3'), 400, "presence_penalty", "<= 2"),
    Case("max_tokens 0", chat('"max_tokens": 0'), 400, "max_tokens", ">= 1"),
    Case("max_tokens 2**63", chat(f'"max_tokens": {2**63}'), 400, "max_tokens", "<= 2147483647"),
    Case(
        "max_completion_tokens 2**64",
        chat(f'"max_completion_tokens": {2**64}'),
        400,
        "max_completion_tokens",
        "<= 2147483647",
    ),
    Case("seed 2**64", chat(f'"seed": {2**64}'), 400, "seed", "<= 9223372036854775807"),
    Case(
        "Responses max_output_tokens 2**63",
        f'{{"model": "{{gw}}", "input": "hi", "max_output_tokens": {2**63}}}',
        400,
        "max_output_tokens",
        "<= 2147483647",
        path="/responses",
    ),
    Case("n 5", chat('"n": 5'), 400, "n", "'n' must be 1", "unsupported_parameter"),
    Case("n 0", chat('"n": 0'), 400, "n", "'n' must be 1", "unsupported_parameter"),
    Case(
        "logit_bias out of range",
        chat('"logit_bias": {"50256": 500}'),
        400,
        "logit_bias",
        "<= 100",
    ),
    Case(
        "logit_bias not a token id",
        chat('"logit_bias": {"hello": 1}'),
        400,
        "logit_bias",
        "matching regex '^[0-9]{1,9}$' (a key)",
    ),
    Case(
        "logit_bias of 301 tokens",
        chat('"logit_bias": ' + json.dumps({str(i): 1 for i in range(301)})),
        400,
        "logit_bias",
        "length <= 300",
    ),
    Case("129 tools", chat('"tools": ' + json.dumps([{}] * 129)), 400, "tools", "length <= 128"),
    Case("5,000 tools", chat('"tools": ' + json.dumps([{}] * 5000)), 400, "tools", "length <= 128"),
    Case("empty messages", '{"model": "{gw}", "messages": []}', 400, "messages", "length >= 1"),
    Case("no messages", '{"model": "{gw}"}', 400, "messages", "Missing required parameter"),
    Case(
        "a message without role",
        chat("", '[{"content": "hi"}]'),
        400,
        "messages[0].role",
        "Missing required parameter",
    ),
    Case(
        "metadata of 17 pairs",
        chat('"metadata": ' + json.dumps({f"k{i}": "v" for i in range(17)})),
        400,
        "metadata",
        "length <= 16",
    ),
    Case(
        "a metadata value of 513 characters",
        chat('"metadata": {"k": "' + "v" * 513 + '"}'),
        400,
        "metadata",
        "length <= 512",
    ),
    # -- content parts -----------------------------------------------------------------------
    Case(
        "unknown content part type",
        chat("", '[{"role": "user", "content": [{"type": "video", "url": "x"}]}]'),
        400,
        "messages[0].content[0].type",
        "'video' is not a content part type",
    ),
    Case(
        "content part without type",
        chat("", '[{"role": "user", "content": [{"text": "x"}]}]'),
        400,
        "messages[0].content[0].type",
        "none is not a content part type",
    ),
    *[
        Case(
            f"image_url {url}",
            chat(
                "",
                json.dumps(
                    [
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": "what is this?"},
                                {"type": "image_url", "image_url": {"url": url}},
                            ],
                        }
                    ]
                ),
            ),
            400,
            "messages[0].content[1].image_url.url",
            why,
        )
        for url, why in [
            ("file:///etc/passwd", "only http(s) and data: image URLs"),
            ("ftp://example.com/cat.png", "only http(s) and data: image URLs"),
            ("gopher://example.com/", "only http(s) and data: image URLs"),
            ("http://127.0.0.1/cat.png", "loopback, private or link-local"),
            ("http://169.254.169.254/latest/meta-data/", "loopback, private or link-local"),
            ("http://[::1]:8080/cat.png", "loopback, private or link-local"),
            ("http://[::ffff:10.0.0.1]/cat.png", "loopback, private or link-local"),
            ("http://2130706433/cat.png", "loopback, private or link-local"),
            ("http://0x7f.1/cat.png", "loopback, private or link-local"),
            ("http://localhost./cat.png", "loopback, private or link-local"),
            ("http://192.168.1.1/cat.png", "loopback, private or link-local"),
        ]
    ],
    Case(
        "Responses input_image to an internal address",
        '{"model": "{gw}", "input": [{"role": "user", "content": [{"type": "input_image", '
        '"image_url": "http://10.0.0.1/x.png"}]}]}',
        400,
        "input[0].content[0].image_url",
        "loopback, private or link-local",
        path="/responses",
    ),
    # -- admin routes: the same rules ---------------------------------------------------------
    Case(
        "admin: truncated JSON",
        b'{"name": ',
        400,
        None,
        "ends before its JSON does (line 1, column 10)",
        "invalid_json",
        path="/keys",
    ),
    Case(
        "admin: deep JSON",
        '{"name": "k", "gateways": ' + DEEP + "}",
        400,
        "gateways",
        "levels deep",
        "invalid_json",
        path="/keys",
    ),
    Case(
        "admin: duplicate keys",
        b'{"name": "a", "name": "b"}',
        400,
        None,
        "'name' twice",
        "invalid_json",
        path="/keys",
    ),
    Case(
        "admin: a form, not JSON",
        b"name=k&role=admin",
        400,
        None,
        "sent as application/x-www-form-urlencoded",
        "invalid_json",
        path="/keys",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    Case(
        "admin: invalid UTF-8",
        b'{"name": "\xc3\x28"}',
        400,
        None,
        "not valid UTF-8",
        "invalid_json",
        path="/keys",
    ),
    Case(
        "key rpm 2**64",
        f'{{"name": "k", "rpm": {2**64}}}',
        400,
        "rpm",
        "less than or equal",
        path="/keys",
    ),
    Case(
        "key tpm 2**63",
        f'{{"name": "k", "tpm": {2**63}}}',
        400,
        "tpm",
        "less than or equal",
        path="/keys",
    ),
    Case(
        "key budget 1e300",
        '{"name": "k", "monthly_budget": 1e300}',
        400,
        "monthly_budget",
        "less than or equal",
        path="/keys",
    ),
    *[
        Case(
            f"NUL in a {what} name",
            json.dumps(body),
            400,
            "name",
            "control characters (found U+0000",
            path=path,
        )
        for what, path, body in [
            ("key", "/keys", {"name": "a\u0000b"}),
            ("collection", "/collections", {"name": "a\u0000b"}),
        ]
    ],
    Case(
        "NUL in a gateway name",
        json.dumps({"name": "a\u0000b", "model": "@mock/echo"}),
        400,
        "name",
        "should match pattern",
        path="/gateways",
    ),
    Case(
        "line break in a key name",
        json.dumps({"name": "ok\nFORGED LOG LINE"}),
        400,
        "name",
        "U+000A",
        path="/keys",
    ),
    Case(
        "bidi override in a collection name",
        json.dumps({"name": "evil\u202etxt.exe"}),
        400,
        "name",
        "U+202E",
        path="/collections",
    ),
]


@dataclass
class Hostile(Account):
    gateway: dict[str, Any] = field(default_factory=dict)  # on the mock's `echo`


@pytest.fixture(scope="module")
def hostile(alicerce: Alicerce, upstream: Any) -> Hostile:
    """One account for the module's cases, with a gateway on the mock's `echo`."""
    with alicerce.http(alicerce.root_key) as client:
        body = client.post("/accounts", json={"name": "hostile"}).json()
    account = Hostile(body["id"], body["admin_key"], alicerce, upstream)
    account.gateway = account.create_gateway()
    return account


def still_answers(account: Account) -> None:
    with account.http() as client:
        assert client.get("/models").status_code == 200


def assert_error(response: httpx.Response, status: int, **expected: Any) -> dict[str, Any]:
    """The answer is an OpenAI error object with `status` and the fields `expected` names
    (`message` is a piece of the message), with no traceback in it."""
    assert response.status_code == status, response.text[:500]
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    piece = expected.pop("message", "")
    assert piece in error["message"], error["message"]
    assert "Traceback" not in error["message"] and len(error["message"]) < 600
    for name, value in expected.items():
        assert error[name] == value, (name, error)
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_request(hostile: Hostile, case: Case) -> None:
    slug = hostile.gateway["slug"]
    body = case.body if isinstance(case.body, bytes) else case.body.replace("{gw}", slug).encode()
    headers = {"content-type": "application/json", **case.headers}
    with hostile.http() as client:
        response = client.post(case.path, content=body, headers=headers)
    assert_error(
        response,
        case.status,
        message=case.message,
        type=case.type,
        code=case.code,
        param=case.param,
    )
    still_answers(hostile)


# -- what a hostile request must not do --------------------------------------------------------


def test_a_large_body_within_the_limit_still_works(hostile: Hostile) -> None:
    """Deep nesting below the bound, many messages and an unused huge object are fine."""
    nested: Any = "leaf"
    for _ in range(MAX_DEPTH - 10):
        nested = [nested]
    messages = [{"role": "user", "content": f"m{i}"} for i in range(3000)]
    client = hostile.openai()
    answer = client.chat.completions.create(
        model=hostile.gateway["slug"],  # type: ignore[attr-defined]
        messages=messages,  # type: ignore[arg-type]
        metadata={"nested": "ok"},
        extra_body={"unknown_field": nested},
    )
    assert answer.choices[0].message.content


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_bodies_over_the_limit_are_413(hostile: Hostile, declared: bool) -> None:
    limit = hostile.alicerce.services.settings.max_body_bytes
    body = b'{"model": "x", "messages": [], "pad": "' + b"a" * (limit + 10) + b'"}'
    content: bytes | Any = (
        body if declared else iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    )
    for path in ("/chat/completions", "/keys"):
        with hostile.http() as client:
            response = client.post(path, content=content)
        assert_error(response, 413, code="request_too_large", message="larger than")
        if not declared:  # an iterator is spent: make another for the next route
            content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    still_answers(hostile)


def test_a_body_cannot_choose_the_upstream(hostile: Hostile, upstream: Any) -> None:
    """`api_base`, `base_url`, `api_key`, `endpoint`, `headers` in the body are never used:
    the gateway's upstream answers, and none of them reaches it."""
    marker = uuid.uuid4().hex
    smuggled = {
        "api_base": "http://169.254.169.254/v1",
        "base_url": "http://127.0.0.1:1/v1",
        "api_key": "sk-stolen",
        "endpoint": {"base_url": "http://127.0.0.1:1/v1", "model": "x"},
        "headers": {"authorization": "Bearer sk-stolen"},
        "instructions": "ignore the gateway",
    }
    answer = hostile.openai().chat.completions.create(
        model=hostile.gateway["slug"],  # type: ignore[attr-defined]
        messages=[{"role": "user", "content": marker}],
        extra_body=smuggled,
    )
    assert answer.choices[0].message.content
    sent = upstream.mock.sent_with(marker)
    assert not set(smuggled) & set(sent)
    assert "sk-stolen" not in json.dumps(upstream.mock.headers[-1])


def test_text_plain_and_form_content_types_are_read_as_json(hostile: Hostile) -> None:
    """One rule for every JSON route: the body is JSON whatever its Content-Type says (curl's
    `-d` sends `application/x-www-form-urlencoded`)."""
    for content_type in ("application/x-www-form-urlencoded", "text/plain", None):
        headers = {"content-type": content_type} if content_type else {}
        name = "k-" + uuid.uuid4().hex[:6]
        with hostile.http() as client:
            key = client.post("/keys", content=json.dumps({"name": name}), headers=headers)
            gateway = client.post(
                "/gateways",
                content=json.dumps({"name": name, "model": "@mock/echo"}),
                headers=headers,
            )
            collection = client.post(
                "/collections", content=json.dumps({"name": name}), headers=headers
            )
            answer = client.post(
                "/chat/completions",
                content=json.dumps({"model": gateway.json().get("slug"), "messages": MSGS}),
                headers=headers,
            )
        assert key.status_code == 201, key.text
        assert gateway.status_code == 201, gateway.text
        assert collection.status_code == 201, collection.text
        assert answer.status_code == 200, answer.text


def test_n_1_and_logit_bias_are_taken(hostile: Hostile, upstream: Any) -> None:
    """`n: 1` is what every answer is; `logit_bias` goes to the upstream as sent."""
    marker = uuid.uuid4().hex
    answer = hostile.openai().chat.completions.create(
        model=hostile.gateway["slug"],  # type: ignore[attr-defined]
        messages=[{"role": "user", "content": marker}],
        n=1,
        logit_bias={"50256": -100, "15": 2.5},
    )
    assert len(answer.choices) == 1
    assert upstream.mock.sent_with(marker)["logit_bias"] == {"50256": -100, "15": 2.5}


def test_n_above_1_is_refused_through_the_sdk(hostile: Hostile) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        hostile.openai().chat.completions.create(
            model=hostile.gateway["slug"],  # type: ignore[attr-defined]
            messages=MSGS,  # type: ignore[arg-type]
            n=5,
        )
    assert raised.value.body["param"] == "n"  # type: ignore[index]
    assert raised.value.body["code"] == "unsupported_parameter"  # type: ignore[index]


def test_nul_in_names_through_updates_and_accounts(hostile: Hostile) -> None:
    """A rename cannot sneak a control character in either; nor can an account's name."""
    with hostile.http() as client:
        key = client.post("/keys", json={"name": "fine"}).json()
        renamed = client.patch(f"/keys/{key['id']}", json={"name": "bad\u0000"})
        document = client.post(
            f"/collections/{client.post('/collections', json={'name': 'docs'}).json()['id']}"
            "/documents",
            json={"name": "a\u0000.txt", "content": "hello"},
        )
    assert_error(renamed, 400, param="name", message="control characters")
    assert_error(document, 400, param="name", message="control characters")
    with hostile.alicerce.http(hostile.alicerce.root_key) as root:
        account = root.post("/accounts", json={"name": "evil\u0000"})
    assert_error(account, 400, param="name", message="control characters")
    with hostile.http() as client:
        names = [k["name"] for k in client.get("/keys").json()["data"]]
    assert "bad\u0000" not in names


def test_gateway_parameters_are_bounded(hostile: Hostile) -> None:
    for parameters, param in [
        ({"max_tokens": 2**63}, "parameters.max_tokens"),
        ({"seed": 2**64}, "parameters.seed"),
        ({"temperature": 1e300}, "parameters.temperature"),
    ]:
        with hostile.http() as client:
            response = client.post(
                "/gateways", json={"name": "g", "model": "@mock/echo", "parameters": parameters}
            )
        assert_error(response, 400, param=param)
    with hostile.http() as client:
        key = client.post("/keys", json={"name": "limits"}).json()
        patched = client.patch(f"/keys/{key['id']}", json={"rpm": 2**64})
    assert_error(patched, 400, param="rpm", message="less than or equal")
    still_answers(hostile)


# -- authentication ------------------------------------------------------------------------------


def test_two_authorization_headers_are_refused(hostile: Hostile) -> None:
    """An admin key beside an inference key does not make the request an admin's."""
    inference = hostile.create_key(role="inference")
    url = hostile.alicerce.url + "/api/v1"
    for keys in [
        (hostile.admin_key, inference),
        (inference, hostile.admin_key),
        (inference, inference),
    ]:
        headers = [("authorization", f"Bearer {k}") for k in keys]
        for method, path in [("GET", "/keys"), ("POST", "/chat/completions")]:
            response = httpx.request(method, url + path, headers=headers, json={})
            assert_error(
                response,
                401,
                type="authentication_error",
                code="ambiguous_api_key",
                message="2 Authorization headers",
            )


def test_an_oversized_authorization_header_is_401(hostile: Hostile) -> None:
    url = hostile.alicerce.url + "/api/v1"
    for size in (5_000, 60_000):
        headers = {"authorization": "Bearer " + "x" * size}
        for method, path in [("GET", "/keys"), ("POST", "/chat/completions")]:
            response = httpx.request(method, url + path, headers=headers, json={})
            assert_error(response, 401, code="invalid_api_key", message="characters long")
    still_answers(hostile)


def test_keys_in_the_query_string_are_refused_and_never_logged(
    hostile: Hostile, caplog: pytest.LogCaptureFixture
) -> None:
    url = hostile.alicerce.url + "/api/v1"
    key = hostile.admin_key
    with caplog.at_level(logging.DEBUG):
        for query in (f"api_key={key}", f"key={key}", f"authorization=Bearer%20{key}"):
            response = httpx.get(f"{url}/keys?{query}")
            assert_error(response, 401, code="missing_api_key")
            response = httpx.post(f"{url}/chat/completions?{query}", json={"model": "x"})
            assert_error(response, 401, code="missing_api_key")
        with hostile.http() as client:  # with a key where it belongs: served, and logged
            served = client.post(
                f"/chat/completions?api_key={key}",
                json={"model": hostile.gateway["slug"], "messages": MSGS},
            )
        assert served.status_code == 200
        hostile.alicerce.flushed()
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert server_side  # the server's own lines were captured: the check below means something
    assert not [r.name for r in server_side if key in r.getMessage() + str(vars(r))]
    with hostile.http() as client:
        logged = json.dumps(client.get("/requests", params={"limit": 100}).json())
    assert key not in logged


# -- function schemas ----------------------------------------------------------------------------


def webhook(upstream: Any) -> str:
    return upstream.url.removesuffix("/v1") + "/functions/echo"


def function_gateway(account: Account, parameters: Any) -> httpx.Response:
    spec = {
        "name": "fn-" + uuid.uuid4().hex[:6],
        "endpoint": {"base_url": account.upstream.url, "api_key": "sk", "model": "agent"},
        "functions": [{"name": "f", "parameters": parameters, "url": webhook(account.upstream)}],
    }
    with account.http() as client:
        return client.post("/gateways", json=spec)


def nested_schema(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


@pytest.mark.parametrize(
    ("parameters", "param", "message"),
    [
        ({"$ref": "#"}, "functions.0.parameters", "the schema never ends"),
        (
            {
                "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
                "$ref": "#/$defs/a",
            },
            "functions.0.parameters",
            "the schema never ends",
        ),
        ({"$ref": "#/$defs/missing"}, "functions.0.parameters", "cannot be resolved"),
        # A remote `$ref` is never fetched (the library's default would, from the server).
        (
            {"$ref": "http://169.254.169.254/latest/schema.json"},
            "functions.0.parameters",
            "points outside the schema",
        ),
        (
            {"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:1/secret.json"}}},
            "functions.0.parameters",
            "at properties/a points outside the schema",
        ),
        (
            {"type": "object", "properties": {"a": {"type": 5}}},
            "functions.0.parameters",
            "not a valid JSON Schema",
        ),
        (nested_schema(300), "functions[0].parameters.properties.x.properties", "levels deep"),
    ],
    ids=[
        "ref-root",
        "defs-cycle",
        "ref-missing",
        "ref-remote",
        "ref-remote-nested",
        "invalid",
        "nested-300",
    ],
)
def test_function_schemas_that_cannot_work_are_refused_at_creation(
    hostile: Hostile, parameters: Any, param: str, message: str
) -> None:
    assert_error(function_gateway(hostile, parameters), 400, param=param, message=message)
    still_answers(hostile)


def test_a_schema_nested_to_the_bound_is_accepted(hostile: Hostile) -> None:
    """60 nested objects are 121 levels of JSON: within the bound, and checked without a
    RecursionError (the 300 that were a 500 are refused above as too deep)."""
    response = function_gateway(hostile, nested_schema((MAX_DEPTH - 8) // 2))
    assert response.status_code == 201, response.text


def test_recursive_schemas_work_and_a_hidden_loop_fails_only_the_tool(
    hostile: Hostile, upstream: Any
) -> None:
    """A tree schema (legal, recursive through the arguments) validates; a loop that only
    arguments reach (creation's probe cannot see it) makes the tool's call fail with an error
    the model reads, never the request (it was a 500 after the upstream had been paid)."""
    tree = {
        "type": "object",
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
            }
        },
        "properties": {"root": {"$ref": "#/$defs/node"}},
    }
    hidden = {"type": "object", "properties": {"x": {"$ref": "#/properties/x"}}}
    for schema, arguments, expected in [
        (tree, {"root": {"kids": [{"kids": []}]}}, None),
        (hidden, {"x": 1}, "loops"),
    ]:
        created = function_gateway(hostile, schema)
        assert created.status_code == 201, created.text
        text, context = hostile.answer(
            stream=False,
            model=created.json()["slug"],
            messages=[{"role": "user", "content": f"CALL f {json.dumps(arguments)}"}],
        )
        (ran,) = context["runned_functions"]
        if expected is None:
            assert ran["error"] is None and "received" in ran["output"]
        else:
            assert expected in ran["error"]
        assert text.startswith("Results:")


# -- faults: every request is recorded, whatever happens ------------------------------------------


class BrokenUpstream:
    """A real OpenAI-compatible server on loopback whose answers are broken in the ways a
    buggy or hostile upstream's are, steered by `model`."""

    ANSWERS: dict[str, dict[str, Any]] = {
        # `message` a string: not a chat completion the gateway can read (once a 500)
        "message-string": {
            "choices": [{"index": 0, "message": "hello", "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3},
        },
        # a count no call has: not believed (it poisoned the request log's batch forever)
        "usage-2**70": {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 2**70, "completion_tokens": 1, "total_tokens": 2**70},
        },
    }

    def __init__(self) -> None:
        async def chat(request: Request) -> Response:
            body = await request.json()
            if body.get("stream"):  # `delta` a string: not a chunk the relay can read
                chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
                          {"choices": [{"index": 0, "delta": "x"}]}]  # fmt: skip
                events = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
                return Response(events + b"data: [DONE]\n\n", media_type="text/event-stream")
            return JSONResponse(self.ANSWERS[body["model"]])

        app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
        self.server = ServerThread(app).start()
        self.url = self.server.url + "/v1"


@pytest.fixture(scope="module")
def broken() -> Any:
    upstream = BrokenUpstream()
    yield upstream
    upstream.server.stop()


def broken_gateway(account: Account, broken: BrokenUpstream, model: str) -> str:
    spec = {"endpoint": {"base_url": broken.url, "api_key": "sk", "model": model}}
    return account.create_gateway(**spec)["slug"]  # type: ignore[no-any-return]


def first_record(account: Account, params: dict[str, str], timeout: float) -> dict[str, Any]:
    """The newest request log record `GET /requests?params` finds, once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        account.alicerce.flushed()
        with account.http() as client:
            rows = client.get("/requests", params=params).json()["data"]
        if rows or time.monotonic() > deadline:
            assert rows, f"no record with {params}"
            return rows[0]  # type: ignore[no-any-return]
        time.sleep(0.05)


def record_of(account: Account, marker: str, *, timeout: float = 10) -> dict[str, Any]:
    """The request log record whose metadata carries `marker`, once it is written."""
    return first_record(account, {"metadata.case": marker}, timeout)


def stream_error(account: Account, slug: str, marker: str) -> dict[str, Any]:
    """The last event of a stream that began (200) and then failed: its error event, with no
    `[DONE]` after it."""
    body = {"model": slug, "messages": MSGS, "stream": True, "metadata": {"case": marker}}
    with account.http() as client:
        response = client.post("/chat/completions", json=body)
    assert response.status_code == 200  # the stream had begun
    assert "data: [DONE]" not in response.text
    events = [line for line in response.text.split("\n") if line.startswith("data: ")]
    return json.loads(events[-1].removeprefix("data: "))  # type: ignore[no-any-return]


def test_a_malformed_answer_is_a_502_recorded_with_what_the_upstream_reported(
    hostile: Hostile, broken: BrokenUpstream
) -> None:
    """`message` a string: the upstream's fault, said as one (502, not a 500), and what it
    reported it consumed is billed: it was paid for."""
    slug = broken_gateway(hostile, broken, "message-string")
    marker = uuid.uuid4().hex
    with hostile.http() as client:
        response = client.post(
            "/chat/completions",
            json={"model": slug, "messages": MSGS, "metadata": {"case": marker}},
        )
    assert_error(response, 502, type="upstream_error", message="message is not an object")
    record = record_of(hostile, marker)
    assert record["status"] == 502 and record["error"]["type"] == "upstream_error"
    assert record["usage"]["prompt_tokens"] == 7 and record["usage"]["completion_tokens"] == 3
    assert record["id"] == response.headers["x-request-id"]


def test_a_malformed_answer_reaches_the_sdk_as_an_upstream_error(
    hostile: Hostile, broken: BrokenUpstream
) -> None:
    """The official client sees the 502 as an `APIStatusError` with the OpenAI error object,
    whole and streamed (the stream's error event raises in the SDK's iterator)."""
    slug = broken_gateway(hostile, broken, "message-string")
    client = hostile.openai()
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=slug, messages=MSGS)  # type: ignore[arg-type]
    assert raised.value.status_code == 502
    assert raised.value.body["type"] == "upstream_error"  # type: ignore[index]
    with pytest.raises(openai.APIError, match="delta is not an object"):
        for _ in client.chat.completions.create(
            model=slug,
            messages=MSGS,  # type: ignore[arg-type]
            stream=True,
        ):
            pass


def test_a_malformed_stream_chunk_ends_the_stream_with_a_502_event(
    hostile: Hostile, broken: BrokenUpstream
) -> None:
    slug = broken_gateway(hostile, broken, "message-string")
    marker = uuid.uuid4().hex
    last = stream_error(hostile, slug, marker)
    assert last["error"]["type"] == "upstream_error"
    assert "delta is not an object" in last["error"]["message"]
    record = record_of(hostile, marker)
    assert record["status"] == 502 and record["error"]["type"] == "upstream_error"


def test_a_500_after_the_upstream_answered_is_recorded_with_its_line_items(
    hostile: Hostile,
    upstream: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug after the upstream was paid (injected: the answer cannot be shaped) is a 500,
    logged with its traceback, and recorded with what the upstream reported."""

    def bug(message: Any, prefill: str | None) -> dict[str, Any]:
        raise RuntimeError("injected fault")

    monkeypatch.setattr("alicerce.inference.chat.normalise_message", bug)
    slug = hostile.create_gateway(
        endpoint={"base_url": upstream.url, "api_key": "sk", "model": "mock"}
    )["slug"]
    marker = uuid.uuid4().hex
    messages = [{"role": "user", "content": marker}]
    with caplog.at_level(logging.ERROR), hostile.http() as client:
        response = client.post(
            "/chat/completions",
            json={"model": slug, "messages": messages, "metadata": {"case": marker}},
        )
    assert_error(response, 500, type="server_error", message="The server had an error")
    assert "unexpected error" in caplog.text and "injected fault" in caplog.text
    record = record_of(hostile, marker)
    assert record["status"] == 500
    assert record["error"]["type"] == "server_error"
    reported = upstream.mock.usage(upstream.mock.sent_with(marker), "")
    assert record["usage"]["prompt_tokens"] == reported["prompt_tokens"]
    assert record["usage"]["completion_tokens"] > 0
    assert record["id"] == response.headers["x-request-id"]
    still_answers(hostile)


def test_a_bug_in_a_stream_ends_it_with_an_error_event_and_a_500_record(
    hostile: Hostile, upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug(self: Any, *args: Any) -> Any:
        raise RuntimeError("injected fault")

    monkeypatch.setattr("alicerce.inference.relay.StreamRelay.closing", bug)
    slug = hostile.create_gateway(
        endpoint={"base_url": upstream.url, "api_key": "sk", "model": "mock"}
    )["slug"]
    marker = uuid.uuid4().hex
    last = stream_error(hostile, slug, marker)
    assert last["error"]["type"] == "server_error"
    record = record_of(hostile, marker)
    assert record["status"] == 500 and record["error"]["type"] == "server_error"
    assert record["usage"]["completion_tokens"] > 0  # what was streamed is billed
    still_answers(hostile)


def test_an_upstream_reporting_absurd_usage_is_counted_not_believed(
    hostile: Hostile, broken: BrokenUpstream
) -> None:
    slug = broken_gateway(hostile, broken, "usage-2**70")
    marker = uuid.uuid4().hex
    with hostile.http() as client:
        response = client.post(
            "/chat/completions",
            json={"model": slug, "messages": MSGS, "metadata": {"case": marker}},
        )
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["prompt_tokens"] < 1000
    record = record_of(hostile, marker)  # written: the batch is not stuck on it
    assert record["usage"]["estimated"] is True


def test_a_client_that_leaves_before_a_whole_answer_is_recorded_499(
    hostile: Hostile, upstream: Any
) -> None:
    """The model takes 0.8 s (`pause`); the client gives up after 0.2 s. The request is
    recorded as 499 (not 200), with what the upstream was paid for."""
    slug = hostile.create_gateway(
        endpoint={"base_url": upstream.url, "api_key": "sk", "model": "pause"}
    )["slug"]
    marker = uuid.uuid4().hex
    with hostile.http() as client, pytest.raises(httpx.ReadTimeout):
        client.post(
            "/chat/completions",
            json={"model": slug, "messages": MSGS, "metadata": {"case": marker}},
            timeout=0.2,
        )
    record = record_of(hostile, marker)
    assert record["status"] == 499
    assert record["usage"]["completion_tokens"] > 0
    still_answers(hostile)


@pytest.mark.slow
def test_a_client_that_leaves_embeddings_is_recorded_499(hostile: Hostile) -> None:
    """The same for embeddings: the local model reads ~3,000 words while the client leaves."""
    key = hostile.create_key(name="embed-" + uuid.uuid4().hex[:6])
    text = " ".join(f"word{i} of a long passage" for i in range(600))
    with hostile.http(key) as client, pytest.raises(httpx.ReadTimeout):
        client.post(
            "/embeddings",
            json={"model": "@local/multilingual-e5-small", "input": [text] * 3},
            timeout=0.05,
        )
    record = records_of_key(hostile, key)
    assert record["status"] == 499 and record["usage"]["prompt_tokens"] > 0


def records_of_key(account: Account, key: str, *, timeout: float = 60) -> dict[str, Any]:
    """The newest request log record of `key`, once there is one."""
    with account.http() as client:
        key_id = next(
            k["id"]
            for k in client.get("/keys").json()["data"]
            if key.startswith(k["prefix"].rstrip("…"))
        )
    return first_record(account, {"key": key_id}, timeout)


def test_a_client_that_leaves_mid_body_is_one_info_line(
    hostile: Hostile, caplog: pytest.LogCaptureFixture
) -> None:
    """Headers promise 10,000 bytes, 20 come, the socket closes: recorded as 499, logged at
    info as one line, no error, no traceback."""
    key = hostile.create_key(name="leaver-" + uuid.uuid4().hex[:6])
    host, port = hostile.alicerce.url.removeprefix("http://").split(":")
    with caplog.at_level(logging.INFO):
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /api/v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                + f"authorization: Bearer {key}\r\n".encode()
                + b"content-type: application/json\r\ncontent-length: 10000\r\n\r\n"
                + b'{"model": "x", "mes'
            )
            time.sleep(0.1)  # the server is reading the body when the client goes
        record = records_of_key(hostile, key)
    assert record["status"] == 499, record
    assert record["error"]["type"] == "client_disconnected"
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not errors, [r.getMessage() for r in errors]
    assert "Traceback" not in caplog.text
    still_answers(hostile)
