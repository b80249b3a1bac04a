"""The Requests page: the log with its filters kept in the address, paging by the cursor, and
one request in full (line items, tokens, timing, error, metadata)."""

from __future__ import annotations

from typing import Any

from tests.console.conftest import Console, ConsoleAccount
from tests.console.traffic import make_traffic


def rows(page: Any) -> Any:
    return page.locator(".requests-results tbody tr")


def test_the_log_filters_and_pages_and_the_address_keeps_them(
    console: Console, console_account: ConsoleAccount
) -> None:
    traffic = make_traffic(console_account, answered=9, streamed=2, failed=2)
    page: Any = console.log_in(console_account.admin_key, "requests")
    page.get_by_role("heading", name="Requests", exact=True).wait_for()
    assert rows(page).count() == 13
    first = rows(page).first
    assert "flaky" in first.inner_text() and "web-app" in first.inner_text()  # the newest
    assert first.locator(".badge.bad").inner_text() == "502"  # the upstream's 500, as a gateway
    console.check("requests", dark=True)

    page.get_by_label("Status").select_option("error")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_function("() => location.hash.includes('status=error')")
    page.locator(".requests-results caption", has_text="2 requests").wait_for()
    assert all("flaky" in rows(page).nth(i).inner_text() for i in range(2))
    page.reload()  # the filter is in the address
    page.locator(".requests-results caption", has_text="2 requests").wait_for()
    assert page.get_by_label("Status").input_value() == "error"

    page.get_by_role("button", name="Clear").click()
    page.locator(".requests-results caption", has_text="13 requests").wait_for()
    page.get_by_label("Gateway").select_option(label="support-bot")
    page.get_by_label("Show").select_option("10")
    page.get_by_role("button", name="Apply").click()
    page.locator(".requests-results caption", has_text="10 requests").wait_for()
    seen = [rows(page).nth(i).locator("a").get_attribute("href") for i in range(10)]
    page.get_by_role("button", name="Next page").click()
    page.locator(".requests-results caption", has_text="1 request,").wait_for()
    assert page.get_by_role("button", name="Next page").count() == 0
    last = rows(page).first.locator("a").get_attribute("href")
    assert last not in seen and f"#/requests/{traffic.ids[0]}" == last  # the oldest
    page.go_back()  # the first page again, from the browser's history
    page.locator(".requests-results caption", has_text="10 requests").wait_for()
    assert page.get_by_label("Gateway").input_value() == traffic.answers["id"]
    page.get_by_role("button", name="Next page").click()
    page.get_by_role("button", name="First page").click()
    page.locator(".requests-results caption", has_text="10 requests").wait_for()

    page.get_by_label("Key").select_option(label="web-app")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("heading", name="No request matches").wait_for()


def test_a_bad_window_is_shown_beside_its_field(
    console: Console, console_account: ConsoleAccount
) -> None:
    make_traffic(console_account, answered=1, streamed=0, failed=0)
    page: Any = console.log_in(console_account.admin_key, "requests")
    page.get_by_label("From").fill("2026-03-02T10:00:00")
    page.get_by_label("Until").fill("2026-03-01T10:00:00")
    page.get_by_role("button", name="Apply").click()
    error = page.locator("[data-param='to'] .field-error")
    error.wait_for()
    assert "later than from" in error.inner_text()
    assert page.get_by_label("Until").get_attribute("aria-invalid") == "true"


def test_one_request_in_full(console: Console, console_account: ConsoleAccount) -> None:
    traffic = make_traffic(console_account, answered=1, streamed=1, failed=1)
    with console_account.api() as api:
        answered = api.get(f"/requests/{traffic.ids[0]}").json()
    page: Any = console.log_in(console_account.admin_key, "requests")
    rows(page).nth(2).click()  # the oldest: answered, with metadata
    page.wait_for_function(f"() => location.hash === '#/requests/{traffic.ids[0]}'")
    page.get_by_role("heading", name="Line items").wait_for()
    items = page.locator("section.card", has_text="Line items").locator("tbody tr")
    assert items.count() == len(answered["line_items"]) == 3  # in, cached in, out
    for item in answered["line_items"]:
        assert page.get_by_text(item["sku"], exact=True).is_visible()
        assert page.get_by_text(item["description"]).first.is_visible()
    assert "Total" in page.locator("tfoot").inner_text()
    summary = page.locator("section.card", has_text="Summary")
    assert summary.get_by_role("link", name="support-bot").is_visible()
    assert "cached-2026" in summary.inner_text()
    tokens = page.locator("section.card", has_text="of them cached").inner_text()
    assert str(answered["usage"]["prompt_tokens"]) in tokens
    assert "T-0" in page.locator("section.card", has_text="Metadata").inner_text()
    console.check("request-detail")
    page.set_viewport_size({"width": 390, "height": 844})
    console.fits(390)
    page.set_viewport_size({"width": 1280, "height": 860})

    page.get_by_role("link", name="← Requests").click()
    rows(page).first.locator("a").click()  # the failed one
    page.get_by_role("heading", name="Error").wait_for()
    assert "mock failure 500" in page.locator(".request-error").inner_text()
    assert page.locator(".request-detail h1 .badge.bad").is_visible()
    assert "Nothing was billed" in page.locator("section.card", has_text="Line items").inner_text()
    console.check("request-error", dark=True)

    console.go(f"requests/{traffic.ids[0][:-4]}0000")
    page.get_by_role("heading", name="No such request").wait_for()


def test_the_log_fits_a_phone_and_a_new_account_is_told_what_to_do(
    console: Console, console_account: ConsoleAccount
) -> None:
    page: Any = console.log_in(console_account.admin_key, "requests")
    page.get_by_role("heading", name="No requests yet").wait_for()
    assert page.get_by_role("link", name="Gateways").last.is_visible()
    console.check("requests-empty")
    make_traffic(console_account, answered=2, streamed=0, failed=1)
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    rows(page).first.wait_for()
    console.fits(390)
    console.check("requests-phone")
