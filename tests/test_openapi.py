"""`/docs` and `/redoc` work offline, and the OpenAPI document says what the API does: which
routes take a key, and the errors they answer (400, never 422)."""

from __future__ import annotations

import re
from typing import Any

import httpx2 as httpx
import jsonschema
import pytest

from tests.conftest import Alicerce

ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture(scope="module")
def document(alicerce: Alicerce) -> dict[str, Any]:
    response = httpx.get(alicerce.url + "/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_every_asset_from_this_server(alicerce: Alicerce, page: str) -> None:
    html = httpx.get(alicerce.url + page).text
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls, html
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url  # nothing from a CDN
        asset = httpx.get(alicerce.url + url)
        assert asset.status_code == 200, url
        kind = ASSET_TYPES[url[url.rindex(".") :]]
        assert kind in asset.headers["content-type"] and len(asset.content) > 1000, url
    assert "cdn" not in html.lower() and "https://" not in html


def test_routes_that_need_a_key_say_so_with_a_bearer_scheme(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path, method, operation in _operations(document):
        if path in ("/healthz", "/readyz", "/metrics"):  # the contract's keyless routes
            assert "security" not in operation, path
        else:
            assert operation["security"] == [{"bearer": []}], (method, path)
            assert {"401", "403"} <= operation["responses"].keys(), (method, path)


def test_bad_input_is_documented_as_400_with_the_error_object_never_422(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    error = {"$ref": "#/components/schemas/Error"}
    for path, method, operation in _operations(document):
        responses = operation["responses"]
        assert "422" not in responses, (method, path)
        if "requestBody" in operation:
            assert responses["400"]["content"]["application/json"]["schema"] == error
    chat = document["paths"]["/api/v1/chat/completions"]["post"]["responses"]
    assert {"400", "401", "403", "404", "413", "429", "502", "503", "504"} <= chat.keys()
    assert "retry-after" in chat["429"]["headers"] and "retry-after" in chat["503"]["headers"]
    assert "404" in document["paths"]["/api/v1/gateways/{ref}"]["get"]["responses"]


def test_the_documented_error_object_is_what_the_api_answers(
    alicerce: Alicerce, document: dict[str, Any]
) -> None:
    schema = document["components"]["schemas"]["Error"]
    with alicerce.http(alicerce.root_key) as root:
        refused = root.post("/accounts", json={"name": 7})
    with alicerce.http(None) as anonymous:
        unknown = anonymous.get("/gateways")
    assert (refused.status_code, unknown.status_code) == (400, 401)
    for answer in (refused, unknown):
        jsonschema.validate(answer.json(), schema)
    assert refused.json()["error"]["param"] == "name"
