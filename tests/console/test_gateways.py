"""The Gateways page in a browser: create through the form on a catalog model, the API's 400s
beside the fields they name, edit as a merge patch, the snippets (which run), delete; an own
endpoint whose key is kept, `@auto` routing, knowledge; hostile text shown as text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.conftest import Upstream
from tests.console.conftest import Console, ConsoleAccount


def field(page: Any, param: str) -> Any:
    """The form's field for an API param (its wrapper carries `data-param`)."""
    return page.locator(f'[data-param="{param}"]')


def error_of(page: Any, param: str) -> Any:
    return field(page, param).locator(".field-error").first


def patches(page: Any) -> list[dict[str, Any]]:
    """Records the bodies of the PATCHes the page sends, in order."""
    sent: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: sent.append(json.loads(r.post_data)) if r.method == "PATCH" else None,
    )
    return sent


def test_a_gateway_is_created_refused_edited_called_and_deleted(
    console: Console, console_account: ConsoleAccount
) -> None:
    page = console.log_in(console_account.admin_key, "gateways")
    page.get_by_role("heading", name="No gateways yet").wait_for()
    page.get_by_role("link", name="New gateway").click()
    page.get_by_role("heading", name="New gateway").wait_for()

    page.get_by_label("Name", exact=True).fill("support-bot")
    page.get_by_label("Instructions").fill("You are the support assistant. Answer briefly.")
    model = page.get_by_label("Catalog model")
    option = model.locator("option", has_text="@mock/echo")
    assert "1.00 in · 1.00 out USD per 1M tokens" in option.inner_text()
    assert model.locator("option", has_text="@mock/embed").count() == 0  # chat models only
    model.select_option("@mock/priced")
    hint = field(page, "model").locator(".hint").inner_text()
    assert hint == "Per 1M tokens: input 2.50, cached input 1.25, output 10.00 USD."
    model.select_option("@mock/echo")

    # the API's 400 is shown beside the field its `param` names
    page.get_by_label("Temperature", exact=True).fill("5")
    page.get_by_role("button", name="Create gateway").click()
    error_of(page, "parameters.temperature").filter(has_text="2").wait_for()
    assert page.get_by_label("Temperature", exact=True).get_attribute("aria-invalid") == "true"
    page.get_by_label("Temperature", exact=True).fill("0.3")

    page.get_by_role("button", name="Add a function").click()
    function = page.locator(".function-card").first
    function.get_by_label("Function name").fill("order_status")
    function.get_by_label("URL").fill("http://127.0.0.1:9/hooks/order")
    function.get_by_label("Description").fill("An order's delivery status")
    schema = function.get_by_label("Parameters (JSON Schema)")
    schema.fill('{"type": "object",')  # not JSON: refused in the page, beside it
    page.get_by_role("button", name="Create gateway").click()
    error_of(page, "functions.0.parameters").filter(has_text="Not valid JSON").wait_for()
    schema.fill('{"type": "object", "properties": {"order": {"type": "strin"}}}')
    page.get_by_role("button", name="Create gateway").click()  # JSON, but no JSON Schema
    error_of(page, "functions.0.parameters").filter(has_text="not a valid JSON Schema").wait_for()
    schema.fill('{"type": "object", "properties": {"order": {"type": "string"}}}')

    page.get_by_role("button", name="Add a fallback").click()
    page.get_by_label("Fallback 1", exact=True).select_option("@mock/plain")
    page.get_by_role("button", name="Add a fallback").click()
    page.get_by_label("Fallback 2", exact=True).select_option("@mock/priced")
    page.get_by_role("button", name="Move fallback 2 up").click()
    assert page.get_by_label("Fallback 1", exact=True).input_value() == "@mock/priced"
    page.get_by_role("button", name="Remove fallback 2").click()
    with console_account.api() as client:
        assert client.get("/gateways").json()["data"] == []  # nothing saved while refused
    assert error_of(page, "functions.0.parameters").inner_text() == ""  # gone once changed
    page.evaluate("() => scrollTo(0, 0)")
    console.check("gateway-form", dark=True)

    page.get_by_role("button", name="Create gateway").click()
    page.get_by_role("heading", name="support-bot", exact=True).wait_for()
    with console_account.api() as client:
        [gateway] = client.get("/gateways").json()["data"]
    assert gateway["model"] == "@mock/echo"
    assert gateway["parameters"]["temperature"] == 0.3
    assert gateway["fallbacks"] == ["@mock/priced"]
    assert gateway["functions"][0]["parameters"]["properties"] == {"order": {"type": "string"}}
    assert gateway["overridable"] == ["temperature", "top_p", "max_tokens", "stop", "seed"]
    slug = gateway["slug"]
    assert page.locator("code.slug").inner_text() == slug

    # the snippets name the slug and this server, copy, and the Python one runs as it is
    base = console.server.url + "/api/v1"
    curl = page.get_by_role("tabpanel").locator("pre")
    assert f"curl {base}/chat/completions" in curl.inner_text()
    assert f'"model": "{slug}"' in curl.inner_text()
    page.get_by_role("tabpanel").get_by_role("button", name="Copy").click()
    assert page.evaluate("() => navigator.clipboard.readText()") == curl.inner_text()
    page.get_by_role("tab", name="Python").click()
    python = page.get_by_role("tabpanel").locator("pre").inner_text()
    assert f'model="{slug}"' in python and f'base_url="{base}"' in python
    page.get_by_role("tab", name="Python").press("ArrowRight")  # keyboard: the next tab
    assert page.get_by_role("tab", name="JavaScript").get_attribute("aria-selected") == "true"
    assert f'model: "{slug}"' in page.get_by_role("tabpanel").locator("pre").inner_text()
    ran = subprocess.run(
        [sys.executable, "-c", python],
        env=os.environ | {"ALICERCE_API_KEY": console_account.admin_key},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert "You are the support assistant" in ran.stdout  # echo: what the upstream received
    playground = page.get_by_role("link", name="Try in Playground")
    assert playground.get_attribute("href") == f"#/playground/{gateway['id']}"
    console.check("gateway-detail")

    # edit: the form holds the definition, and only what changed is sent
    sent = patches(page)
    page.get_by_role("link", name="Edit").click()
    page.get_by_role("heading", name="Edit support-bot").wait_for()
    assert page.get_by_label("Temperature", exact=True).input_value() == "0.3"
    assert page.get_by_label("Fallback 1", exact=True).input_value() == "@mock/priced"
    page.get_by_label("Temperature", exact=True).fill("0.7")
    page.get_by_label("Prefill", exact=True).fill("Sure! ")
    page.get_by_role("checkbox", name="seed").uncheck()
    page.get_by_role("button", name="Save changes").click()
    page.get_by_role("heading", name="support-bot", exact=True).wait_for()
    assert sent == [
        {
            "parameters": {"temperature": 0.7, "prefill": "Sure! "},
            "overridable": ["temperature", "top_p", "max_tokens", "stop"],
        }
    ]
    with console_account.api() as client:
        edited = client.get(f"/gateways/{gateway['id']}").json()
    assert edited["parameters"]["temperature"] == 0.7 and edited["functions"]
    assert edited["parameters"]["prefill"] == "Sure! "

    console.go("gateways")
    page.locator("tr", has_text="support-bot").wait_for()
    console.check("gateways", dark=True)
    page.set_viewport_size({"width": 390, "height": 844})
    console.fits(390)
    page.get_by_role("link", name="support-bot").click()
    page.get_by_role("heading", name="support-bot", exact=True).wait_for()
    console.fits(390)
    page.screenshot(path=str(console_screens() / "gateway-detail-phone.png"), full_page=True)
    page.get_by_role("link", name="Edit").click()
    page.get_by_role("heading", name="Edit support-bot").wait_for()
    console.fits(390)
    page.screenshot(path=str(console_screens() / "gateway-form-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 860})

    # delete, after a confirmation that can be refused
    page.get_by_role("link", name="Cancel").click()
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    with console_account.api() as client:
        assert client.get(f"/gateways/{gateway['id']}").status_code == 200
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_role("heading", name="No gateways yet").wait_for()
    with console_account.api() as client:
        assert client.get(f"/gateways/{gateway['id']}").status_code == 404


def console_screens() -> Any:
    from tests.console.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS


def test_an_own_endpoint_keeps_its_key_and_routing_and_knowledge_are_set_in_the_form(
    console: Console, console_account: ConsoleAccount, upstream: Upstream
) -> None:
    with console_account.api() as client:
        collection = client.post("/collections", json={"name": "manuals"}).json()
    page = console.log_in(console_account.admin_key, "gateways/new")
    page.get_by_label("Name", exact=True).fill("byo")
    page.get_by_role("radio", name="Your own endpoint").check()
    assert page.get_by_label("Catalog model").is_hidden()
    page.get_by_label("Base URL").fill(upstream.url)
    page.get_by_label("Upstream model").fill("echo")
    page.get_by_label("API key").fill("sk-upstream-secret")
    page.get_by_label("Headers (JSON, optional)").first.fill("[1]")
    page.get_by_role("button", name="Create gateway").click()
    error_of(page, "endpoint.headers").filter(has_text="JSON object").wait_for()
    page.get_by_label("Headers (JSON, optional)").first.fill("")

    # knowledge: a strategy without a collection, then a top_k out of range
    page.get_by_label("Strategy").select_option("always")
    page.get_by_role("button", name="Create gateway").click()
    error_of(page, "knowledge.collections").filter(has_text="collection").wait_for()
    page.get_by_role("checkbox", name="manuals").check()
    page.get_by_label("Top k").fill("60")
    page.get_by_role("button", name="Create gateway").click()
    error_of(page, "knowledge.top_k").filter(has_text="50").wait_for()
    page.get_by_label("Top k").fill("4")
    page.get_by_role("button", name="Create gateway").click()
    page.get_by_role("heading", name="byo", exact=True).wait_for()
    assert page.get_by_text("manuals").is_visible()
    with console_account.api() as client:
        [gateway] = client.get("/gateways").json()["data"]
    assert gateway["endpoint"] == {
        "base_url": upstream.url, "model": "echo", "headers": None, "api_key_set": True
    }  # fmt: skip
    assert gateway["knowledge"]["collections"] == [collection["id"]]
    assert (gateway["knowledge"]["strategy"], gateway["knowledge"]["top_k"]) == ("always", 4)

    # an edit that leaves the key empty keeps the stored one
    sent = patches(page)
    page.get_by_role("link", name="Edit").click()
    assert page.get_by_label("API key").input_value() == ""
    assert "Leave this empty to keep it" in field(page, "endpoint.api_key").inner_text()
    page.get_by_label("Upstream model").fill("plain")
    page.get_by_role("button", name="Save changes").click()
    page.get_by_role("heading", name="byo", exact=True).wait_for()
    assert sent == [{"endpoint": {"model": "plain"}}]
    with console_account.api() as client:
        kept = client.get(f"/gateways/{gateway['id']}").json()
        assert kept["endpoint"]["api_key_set"] is True
        question = {"model": "byo", "messages": [{"role": "user", "content": "Q"}]}
        answer = client.post("/chat/completions", json=question)
    assert answer.status_code == 200, answer.text
    assert upstream.mock.headers[-1]["authorization"] == "Bearer sk-upstream-secret"

    # switched to @auto routing: the endpoint goes, the tiers come in order
    page.get_by_role("link", name="Edit").click()
    page.get_by_role("radio", name="@auto routing").check()
    page.get_by_label("Router model", exact=True).select_option("@mock/router")
    page.get_by_label("Tier 1", exact=True).select_option("@mock/plain")
    page.get_by_role("button", name="Add a tier").click()
    page.get_by_label("Tier 2", exact=True).select_option("@mock/priced")
    assert page.get_by_role("button", name="Remove tier 1").is_enabled()
    page.get_by_role("button", name="Save changes").click()
    page.get_by_role("heading", name="byo", exact=True).wait_for()
    assert sent[-1]["model"] == "@auto" and sent[-1]["endpoint"] is None
    tiers = ["@mock/plain", "@mock/priced"]
    assert sent[-1]["routing"] == {"router": "@mock/router", "tiers": tiers}
    with console_account.api() as client:
        routed = client.get(f"/gateways/{gateway['id']}").json()
    assert routed["model"] == "@auto" and routed["endpoint"] is None
    assert routed["routing"]["tiers"] == ["@mock/plain", "@mock/priced"]
    assert page.get_by_text("@mock/router").first.is_visible()


def test_hostile_text_in_a_gateway_is_shown_as_text(
    console: Console, console_account: ConsoleAccount
) -> None:
    hostile = "<img src=x onerror=\"document.title='pwned'\">"
    with console_account.api() as client:
        response = client.post(
            "/gateways",
            json={
                "name": "hostile",
                "model": "@mock/echo",
                "instructions": hostile,
                "parameters": {"prefill": hostile},
                "functions": [
                    {"name": "f", "description": hostile, "url": "http://127.0.0.1:9/hook"}
                ],
            },
        )
    assert response.status_code == 201, response.text
    page = console.log_in(console_account.admin_key, f"gateways/{response.json()['id']}")
    page.get_by_role("heading", name="hostile", exact=True).wait_for()
    assert page.locator(".instructions").inner_text() == hostile
    assert page.get_by_text(hostile).count() == 3  # instructions, prefill, description
    assert page.locator("main img").count() == 0
    page.get_by_role("link", name="Edit").click()
    assert page.get_by_label("Instructions").input_value() == hostile
    assert page.locator("main img").count() == 0
    assert page.title() != "pwned"
