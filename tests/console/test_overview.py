"""The Overview: spend, requests, errors and latency per day as charts, the breakdowns, and
what a brand new account is told to do first."""

from __future__ import annotations

from typing import Any

from tests.console.conftest import Console, ConsoleAccount
from tests.console.traffic import make_traffic


def test_the_overview_charts_the_requests_made(
    console: Console, console_account: ConsoleAccount
) -> None:
    traffic = make_traffic(console_account)
    with console_account.api() as api:
        usage = api.get("/usage").json()
    page: Any = console.log_in(console_account.admin_key, "overview")
    page.get_by_role("heading", name="Overview").wait_for()

    def figure(name: str) -> str:
        return page.locator(f"[data-figure='{name}'] .stat").inner_text()  # type: ignore[no-any-return]

    assert figure("Requests") == "9"
    assert figure("Error rate") == "22.2%"
    spend = figure("Spend")
    assert spend.endswith(" USD") and float(spend.split()[0]) == usage["amount"] > 0

    charts = page.get_by_role("img")
    assert charts.count() == 3
    names = [charts.nth(i).get_attribute("aria-labelledby") for i in range(3)]
    labels = [page.locator(f"[id='{name}']").text_content() for name in names]
    assert labels[0].startswith("Spend per day, last 30 days: ")
    assert "9 served, 2 of them failed, 0 refused" in labels[1]
    assert "p50" in labels[2] and "p95" in labels[2]
    assert page.locator(".chart .bar").count() >= 2  # today's spend, today's requests (ok, failed)
    assert page.locator(".chart .line circle").count() >= 2

    requests_card = page.locator("section.card", has_text="Requests per day")
    requests_card.get_by_text("Show the numbers").click()
    today = requests_card.locator("tbody tr").last
    assert today.locator("td").nth(1).inner_text() == "7"  # succeeded
    assert today.locator("td").nth(2).inner_text() == "2"  # failed
    requests_card.get_by_text("Show the numbers").click()  # closed again

    breakdown = page.get_by_role("tabpanel")
    breakdown.get_by_role("link", name="support-bot").wait_for()
    assert breakdown.get_by_role("link", name="flaky").is_visible()
    page.get_by_role("tab", name="SKUs").click()
    breakdown.get_by_text("inference.chat_completions.out").wait_for()
    page.get_by_role("tab", name="SKUs").press("ArrowRight")
    assert page.get_by_role("tab", name="Keys").get_attribute("aria-selected") == "true"
    breakdown.get_by_text(console_account.name).or_(
        breakdown.get_by_text("web-app")
    ).first.wait_for()
    page.get_by_role("tab", name="Gateways").click()
    breakdown.get_by_role("link", name="support-bot").wait_for()
    page.evaluate("() => window.scrollTo(0, 0)")
    console.check("overview", dark=True)

    page.get_by_label("Period", exact=True).select_option("7")
    page.wait_for_function("() => location.hash === '#/overview/7'")
    page.locator(".overview-figure").first.wait_for()
    assert "last 7 days" in page.locator(".chart title").first.text_content()
    assert traffic.ids


def test_the_overview_fits_a_phone(console: Console, console_account: ConsoleAccount) -> None:
    make_traffic(console_account, answered=2, streamed=1, failed=1)
    page: Any = console.log_in(console_account.admin_key, "overview")
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("heading", name="Spend per day").wait_for()
    page.wait_for_function("() => document.querySelector('.chart').getAttribute('width') < 390")
    console.fits(390)
    console.check("overview-phone")


def test_a_new_account_is_told_what_to_do_first(
    console: Console, console_account: ConsoleAccount
) -> None:
    page: Any = console.log_in(console_account.admin_key, "overview")
    page.get_by_role("heading", name="No requests yet").wait_for()
    for link in ("Create a gateway", "Create a key", "Try it in the Playground"):
        assert page.get_by_role("link", name=link).is_visible()
    assert console.server.url + "/api/v1" in page.locator(".snippet code").inner_text()
    console.check("overview-empty", dark=True)
    page.get_by_role("link", name="Create a gateway").click()
    page.wait_for_function("() => location.hash === '#/gateways'")
