"""The console's shell: served by the server with a strict CSP, log in and out with a key,
inference keys refused, the root key's accounts, and hostile names shown as text."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx

from tests.conftest import ROOT_KEY
from tests.console.conftest import Console, ConsoleAccount, ConsoleServer


def test_the_server_serves_the_console_with_a_strict_content_security_policy(
    console_server: ConsoleServer,
) -> None:
    root = httpx.get(console_server.url + "/")
    assert root.status_code == 307 and root.headers["location"] == "/console/"
    bare = httpx.get(console_server.url + "/console")
    assert bare.status_code == 307 and bare.headers["location"] == "/console/"
    page = httpx.get(console_server.url + "/console/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    script = httpx.get(console_server.url + "/console/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "content-security-policy" in script.headers
    assert script.headers["content-encoding"] == "gzip"  # httpx asks for it, as browsers do
    plain = httpx.get(
        console_server.url + "/console/app.js", headers={"accept-encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers and plain.text == script.text
    assert httpx.get(console_server.url + "/console/missing.js").status_code == 404
    assert "<script>" not in page.text.replace('<script type="module" src="app.js"></script>', "")


def test_an_admin_key_logs_in_and_logging_out_forgets_it(
    console: Console, console_account: ConsoleAccount
) -> None:
    page = console.log_in(console_account.admin_key)
    assert page.get_by_text(console_account.name).first.is_visible()
    for name in ("Overview", "Gateways", "Playground", "Knowledge", "Keys", "Requests"):
        assert page.get_by_role("link", name=name, exact=True).is_visible()
    assert page.get_by_role("link", name="Accounts").count() == 0
    stored = page.evaluate("() => Object.keys(sessionStorage)")
    assert stored == ["alicerce.key"]
    assert console_account.admin_key not in page.url
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("API key").wait_for()
    assert page.evaluate("() => sessionStorage.length") == 0
    page.reload()
    page.get_by_label("API key").wait_for()  # still logged out: nothing was kept elsewhere
    assert page.evaluate("() => localStorage.length") == 0


def test_an_inference_key_is_refused_with_a_reason(
    console: Console, console_account: ConsoleAccount
) -> None:
    with console_account.api() as client:
        secret = client.post("/keys", json={"name": "app", "role": "inference"}).json()["key"]
    page = console.open()
    page.get_by_label("API key").fill(secret)
    page.get_by_role("button", name="Log in").click()
    refusal = page.locator(".field-error").filter(has_text="inference key")
    refusal.wait_for()
    assert "admin key" in refusal.inner_text()
    assert page.evaluate("() => sessionStorage.length") == 0
    page.get_by_label("API key").fill("alc_not_a_key")
    page.get_by_role("button", name="Log in").click()
    page.locator(".field-error").filter(has_text="not valid").wait_for()
    console.check("login")


def test_the_root_key_manages_accounts_and_acts_for_one(
    console: Console, console_server: ConsoleServer
) -> None:
    page = console.log_in(ROOT_KEY)
    page.get_by_role("heading", name="Accounts").wait_for()
    hostile = "<img src=x onerror=\"document.title='pwned'\">"
    page.get_by_role("button", name="New account").first.click()
    page.get_by_role("dialog").get_by_label("Name").fill(hostile)
    page.get_by_role("dialog").get_by_role("button", name="Create").click()
    secret = page.locator("[data-secret]")
    secret.wait_for()
    admin_key = secret.inner_text()
    assert admin_key.startswith("alc_")
    page.get_by_role("button", name="Done").click()
    page.locator("[data-secret]").wait_for(state="detached")  # shown once: gone when closed
    row = page.locator("tr", has_text=hostile)
    row.wait_for()  # the name is shown as text...
    assert page.locator("main img").count() == 0  # ...never parsed as markup
    assert page.title() != "pwned"
    console.check("accounts", dark=True)

    with console_server.api(admin_key) as client:  # the key shown works
        assert client.get("/me").json()["account"]["name"] == hostile

    row.get_by_role("button", name="Rename").click()
    page.get_by_role("dialog").get_by_label("Name").fill("renamed-team")
    page.get_by_role("dialog").get_by_role("button", name="Rename").click()
    page.locator("tr", has_text="renamed-team").wait_for()

    page.locator("tr", has_text="renamed-team").get_by_role(
        "button", name="Open renamed-team"
    ).click()
    page.get_by_role("link", name="Gateways", exact=True).wait_for()
    assert page.locator("[data-acting]").inner_text() == "renamed-team"

    console.go("accounts")
    page.locator("tr", has_text="renamed-team").get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.locator("tr", has_text="renamed-team").wait_for(state="detached")
    assert page.locator("[data-acting]").count() == 0


def test_the_shell_fits_a_phone(console: Console, console_account: ConsoleAccount) -> None:
    page: Any = console.log_in(console_account.admin_key)
    page.set_viewport_size({"width": 390, "height": 844})
    console.go("overview")
    console.fits(390)
