"""The reference in `docs/` keeps up with the code (datasette's `tests/test_docs.py` is the model).

Each test is parametrized by what the code defines, collected from the code itself, so a failure
names the one thing that is missing: a setting (`Settings.model_fields`), an error `code` or
`type` (the error classes' attributes, and every literal `code=` in the package's source), a
SKU (the `*_SKU` constants and what `LineItem` is built with), an API route (the app's routes),
or a relative link in the README or `docs/` that leads nowhere. Adding the missing entry is one
row of a table in the page the failure names.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

import alicerce
from alicerce.billing import TokenUsage, inference_line_items
from alicerce.catalog import LOCAL_PROVIDER, CatalogModel
from alicerce.errors import AlicerceError
from alicerce.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "alicerce"


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _table_keys(text: str) -> set[str]:
    """The backquoted first cell of every table row: `| `ALICERCE_PORT` | ...` → ALICERCE_PORT."""
    return set(re.findall(r"^\|\s*`([^`]+)`\s*\|", text, flags=re.MULTILINE))


def _sources() -> dict[Path, ast.Module]:
    return {
        path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts
    }


SOURCES = _sources()


# -- settings ------------------------------------------------------------------------------

SETTINGS = sorted(f"ALICERCE_{name.upper()}" for name in Settings.model_fields)


@pytest.mark.parametrize("variable", SETTINGS)
def test_setting_is_documented(variable: str) -> None:
    assert variable in _table_keys(_page("settings.md")), (
        f"{variable} is not in the table of docs/settings.md"
    )


# -- error codes and types -----------------------------------------------------------------


def _import_package() -> None:
    """Every module of the package, so that every error class defined anywhere is known."""
    for module in pkgutil.walk_packages(alicerce.__path__, "alicerce."):
        if ".migrations" not in module.name and not module.name.endswith(".__main__"):
            importlib.import_module(module.name)


def _error_classes() -> list[type[AlicerceError]]:
    _import_package()
    found: list[type[AlicerceError]] = []
    pending: list[type[AlicerceError]] = [AlicerceError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def _literal_codes() -> set[str]:
    """Codes written in the source: `code="..."` in a call, `"code": "..."` in a dict literal,
    and `x.code = "..."`, wherever they are (the API layer included)."""
    codes: set[str] = set()

    def constant(node: ast.expr | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return None

    for tree in SOURCES.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                codes.update(
                    value
                    for keyword in node.keywords
                    if keyword.arg == "code" and (value := constant(keyword.value))
                )
            elif isinstance(node, ast.Dict):
                codes.update(
                    value
                    for key, item in zip(node.keys, node.values, strict=True)
                    if constant(key) == "code" and (value := constant(item))
                )
            elif (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Attribute) and t.attr == "code" for t in node.targets)
                and (value := constant(node.value))
            ):
                codes.add(value)
    return codes


ERROR_CLASSES = _error_classes()
ERROR_CODES = sorted({c.code for c in ERROR_CLASSES if c.code} | _literal_codes())
ERROR_TYPES = sorted({c.type for c in ERROR_CLASSES})


def test_error_codes_are_collected() -> None:
    """The collection itself works: class codes and literal codes are both found."""
    assert {"invalid_api_key", "upstream_timeout"} <= set(ERROR_CODES)  # class attributes
    assert {"model_not_found", "unsupported_file_type"} <= set(ERROR_CODES)  # literals


@pytest.mark.parametrize("code", ERROR_CODES)
def test_error_code_is_documented(code: str) -> None:
    assert code in _table_keys(_page("errors.md")), (
        f"error code {code!r} is not in the codes table of docs/errors.md"
    )


@pytest.mark.parametrize("error_type", ERROR_TYPES)
def test_error_type_is_documented(error_type: str) -> None:
    assert f"`{error_type}`" in _page("errors.md"), (
        f"error type {error_type!r} is not in the statuses table of docs/errors.md"
    )


# -- SKUs ----------------------------------------------------------------------------------


def _skus() -> set[str]:
    """Every SKU a line item can carry.

    A `*_SKU` constant (or a string) that `LineItem(...)` is built with is a SKU as it stands; a
    `*_SKU` constant used otherwise is the prefix of token SKUs, expanded the way
    `inference_line_items` expands it (`.in`, `.out`, `.in.cached`), by calling it."""
    constants: dict[str, set[str]] = {}
    for tree in SOURCES.values():
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id.endswith("_SKU"):
                        constants.setdefault(target.id, set()).add(node.value.value)

    def value_of(node: ast.expr) -> set[str] | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.Name) and node.id in constants:
            return constants[node.id]
        if isinstance(node, ast.JoinedStr):  # f"{SOME_SKU}.suffix"
            values = {""}
            for part in node.values:
                piece = value_of(part.value) if isinstance(part, ast.FormattedValue) else None
                if isinstance(part, ast.Constant):
                    piece = {str(part.value)}
                if piece is None:
                    return None  # a variable: `inference_line_items`' own template
                values = {v + p for v in values for p in piece}
            return values
        return None

    final: set[str] = set()
    used_as_final: set[str] = set()
    for tree in SOURCES.values():
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call):
                continue
            callee = call.func
            name = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", None)
            if name != "LineItem":
                continue
            sku = call.args[0] if call.args else None
            sku = next((k.value for k in call.keywords if k.arg == "sku"), sku)
            if sku is None:
                continue
            if (values := value_of(sku)) is not None:
                final |= values
                used_as_final |= {n.id for n in ast.walk(sku) if isinstance(n, ast.Name)}
    model = CatalogModel("@test/model", LOCAL_PROVIDER, "model", Decimal(1), Decimal(1), Decimal(1))
    usage = TokenUsage(prompt_tokens=3, completion_tokens=2, cached_tokens=1)
    for name, values in constants.items():
        if name in used_as_final:
            continue
        for prefix in values:
            final |= {item.sku for item in inference_line_items(model, usage, sku=prefix)}
    return final


SKUS = sorted(_skus())


def test_skus_are_collected() -> None:
    assert {"knowledge.search", "knowledge.indexing", "inference.embeddings.in"} <= set(SKUS)
    assert {
        "inference.chat_completions.in.cached",
        "inference.resolving.routing_complexity.out",
        "inference.resolving.query_rewrite.in",
    } <= set(SKUS)
    assert "inference.chat_completions" not in SKUS  # a prefix, never a SKU of its own


@pytest.mark.parametrize("sku", SKUS)
def test_sku_is_documented(sku: str) -> None:
    assert sku in _table_keys(_page("billing.md")), (
        f"SKU {sku!r} is not in the SKU table of docs/billing.md"
    )


# -- API routes ----------------------------------------------------------------------------


def _normalised(path: str) -> str:
    """`/api/v1/gateways/{ref}` and `/api/v1/gateways/{id}` are the same route."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def _routes() -> list[str]:
    from alicerce.api import create_app

    app = create_app(Settings.model_construct())  # no lifespan runs: nothing is started
    found = set()
    for route in iter_route_contexts(app.routes):  # included routers' routes too
        if not isinstance(route.original_route, APIRoute):
            continue  # FastAPI's own pages (/docs, /openapi.json)
        path = route.path or ""
        if path.startswith("/v1/"):
            continue  # the copies of `/api/v1/`, documented once
        for method in (route.methods or set()) - {"HEAD", "OPTIONS"}:
            found.add(f"{method} {path}")
    return sorted(found)


ROUTES = _routes()


def _documented_routes() -> set[str]:
    text = _page("api.md")
    return {
        f"{method} {_normalised(path)}"
        for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)`", text)
    }


def test_routes_are_collected() -> None:
    assert {"POST /api/v1/chat/completions", "GET /healthz"} <= set(ROUTES)


@pytest.mark.parametrize("route", ROUTES)
def test_route_is_documented(route: str) -> None:
    method, path = route.split(" ", 1)
    assert f"{method} {_normalised(path)}" in _documented_routes(), (
        f"`{route}` is not in docs/api.md (write it as `{route}` in the routes table)"
    )


# -- links ---------------------------------------------------------------------------------

PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _relative_links() -> list[tuple[str, str]]:
    links = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
        for target in _LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # http:, mailto:
            links.append((str(page.relative_to(ROOT)), target))
    return links


LINKS = _relative_links()


def test_links_are_collected() -> None:
    assert ("README.md", "docs/README.md") in LINKS


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces
    to hyphens (`## Keys (admin key)` → `keys-admin-key`)."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    headings = re.findall(r"^#+\s+(.+?)\s*$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize(("page", "target"), LINKS)
def test_relative_link_leads_to_a_file(page: str, target: str) -> None:
    file, _, anchor = target.partition("#")
    path = ((ROOT / page).parent / file).resolve() if file else ROOT / page
    assert path.is_relative_to(ROOT), f"{page} links to {target}, outside the repository"
    assert path.exists(), f"{page} links to {target}, and {path.relative_to(ROOT)} does not exist"
    if anchor and path.suffix == ".md":
        assert anchor in _anchors(path), f"{page} links to {target}: no such heading there"
