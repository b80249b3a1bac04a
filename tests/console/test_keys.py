"""The Keys page in a browser: create a key with limits (the secret shown once, copied, and
working), a 400 beside its field, edit its rpm as a merge patch, revoke it after confirming."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx

from tests.conftest import ROOT_KEY
from tests.console.conftest import SCREENSHOTS, Console, ConsoleAccount


def test_a_key_is_created_shown_once_edited_and_revoked(
    console: Console, console_account: ConsoleAccount
) -> None:
    with console_account.api() as client:
        gateway = client.post("/gateways", json={"name": "web-bot", "model": "@mock/echo"}).json()
        client.post("/gateways", json={"name": "other-bot", "model": "@mock/echo"})
    page = console.log_in(console_account.admin_key, "keys")
    admin_row = page.locator("tr", has_text="this session")
    admin_row.wait_for()  # the console's own key, marked
    assert "admin" in admin_row.inner_text()

    page.get_by_role("button", name="New key").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name").fill("web")
    dialog.get_by_label("Role").select_option("inference")
    dialog.get_by_role("checkbox", name="web-bot").check()
    dialog.get_by_label("Requests per minute").fill("0")
    dialog.get_by_label("Monthly budget (USD)").fill("5")
    expiry = (datetime.now() + timedelta(days=30)).replace(second=0, microsecond=0)
    dialog.get_by_label("Expires").fill(expiry.strftime("%Y-%m-%dT%H:%M"))
    dialog.get_by_role("button", name="Create key").click()
    rpm_error = dialog.locator('[data-param="rpm"] .field-error')
    rpm_error.filter(has_text="greater than or equal to 1").wait_for()
    assert dialog.get_by_label("Requests per minute").get_attribute("aria-invalid") == "true"
    dialog.get_by_label("Requests per minute").fill("60")
    assert rpm_error.inner_text() == ""
    console.check("key-form")
    dialog.get_by_role("button", name="Create key").click()

    secret_node = page.locator("[data-secret]")
    secret_node.wait_for()
    secret = secret_node.inner_text()
    assert secret.startswith("alc_")
    page.get_by_role("dialog").get_by_role("button", name="Copy").click()
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    page.get_by_role("dialog").get_by_role("button", name="Done").click()
    page.locator("[data-secret]").wait_for(state="detached")
    assert secret not in page.content()  # shown once: gone when closed

    row = page.locator("tr", has_text="web-bot")
    row.wait_for()
    text = row.inner_text()
    assert "inference" in text and "60" in text and "5.00 USD" in text
    assert "other-bot" not in text

    # the secret works, for its gateway only, with its limits
    with httpx.Client(
        base_url=console.server.url + "/api/v1", headers={"authorization": f"Bearer {secret}"}
    ) as client:
        ok = client.post(
            "/chat/completions",
            json={"model": gateway["slug"], "messages": [{"role": "user", "content": "hi"}]},
        )
        assert ok.status_code == 200, ok.text
        assert ok.headers["x-ratelimit-limit-requests"] == "60"
        refused = client.post(
            "/chat/completions",
            json={"model": "other-bot", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert refused.status_code == 403
    with console_account.api() as client:
        [key] = [k for k in client.get("/keys").json()["data"] if k["name"] == "web"]
    assert key["gateways"] == [gateway["id"]] and key["monthly_budget"] == 5
    stored = datetime.fromisoformat(key["expires_at"])
    assert stored == expiry.astimezone(UTC)

    console.check("keys", dark=True)

    # edit: only the rpm changes
    sent: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: sent.append(json.loads(r.post_data)) if r.method == "PATCH" else None,
    )
    row.get_by_role("button", name="Edit web").click()
    dialog = page.get_by_role("dialog")
    assert dialog.get_by_label("Requests per minute").input_value() == "60"
    assert dialog.get_by_role("checkbox", name="web-bot").is_checked()
    dialog.get_by_label("Requests per minute").fill("120")
    dialog.get_by_role("button", name="Save").click()
    page.get_by_role("dialog").wait_for(state="detached")
    page.locator("tr", has_text="web-bot").filter(has_text="120").wait_for()
    assert sent == [{"rpm": 120}]
    with console_account.api() as client:
        [key] = [k for k in client.get("/keys").json()["data"] if k["name"] == "web"]
    assert key["rpm"] == 120 and key["monthly_budget"] == 5 and key["gateways"] == [gateway["id"]]

    page.set_viewport_size({"width": 390, "height": 844})
    console.fits(390)
    page.screenshot(path=str(SCREENSHOTS / "keys-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 860})

    # revoke: refused once, then confirmed
    row = page.locator("tr", has_text="web-bot")
    row.get_by_role("button", name="Revoke web").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    assert row.is_visible()
    row.get_by_role("button", name="Revoke web").click()
    confirm = page.get_by_role("dialog")
    assert "refused from now on" in confirm.inner_text()
    confirm.get_by_role("button", name="Revoke").click()
    row.wait_for(state="detached")
    with httpx.Client(
        base_url=console.server.url + "/api/v1", headers={"authorization": f"Bearer {secret}"}
    ) as client:
        assert client.get("/models").status_code == 401


def test_the_root_key_acting_for_an_account_manages_its_keys(
    console: Console, console_account: ConsoleAccount
) -> None:
    """The root key, acting for an account, sees its keys (the root key being none of them)
    and makes one there."""

    page = console.log_in(ROOT_KEY, "accounts")
    page.locator("tr", has_text=console_account.name).get_by_role(
        "button", name=f"Open {console_account.name}"
    ).click()
    page.get_by_role("link", name="Keys", exact=True).wait_for()
    console.go("keys")
    page.get_by_role("heading", name="Keys").wait_for()
    assert page.locator("tr").count() == 2  # the header and the account's first admin key
    assert page.locator("tr", has_text="this session").count() == 0  # the root key is none
    page.get_by_role("button", name="New key").click()
    page.get_by_role("dialog").get_by_label("Name").fill("made-by-root")
    page.get_by_role("dialog").get_by_role("button", name="Create key").click()
    page.locator("[data-secret]").wait_for()
    page.get_by_role("dialog").get_by_role("button", name="Done").click()
    page.locator("tr", has_text="made-by-root").wait_for()
    with console_account.api() as client:
        names = [k["name"] for k in client.get("/keys").json()["data"]]
    assert "made-by-root" in names
