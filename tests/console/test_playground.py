"""The Playground page: answers stream in (and a stop cancels the request upstream), each
column keeps its own conversation, two gateways answer side by side, and under each answer
what Alicerce knows of it: line items and total, the chunks the model read (their text fetched
on click), the functions run, the routed tier and the timing. Model answers are text, never
markup."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

from playwright.sync_api import expect

from tests.conftest import ROOT_KEY, Upstream
from tests.console.conftest import Console, ConsoleAccount

WARRANTY = (
    "# Warranty\n\nThe Aurora X2 coffee machine is covered for two years from the date of "
    "purchase. Keep the receipt to claim it.\n\n# Cleaning\n\nDescale the Aurora X2 every month "
    "with white vinegar."
)


def make_gateway(account: ConsoleAccount, **definition: Any) -> dict[str, Any]:
    definition.setdefault("name", "gw-" + uuid.uuid4().hex[:6])
    with account.api() as client:
        response = client.post("/gateways", json=definition)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def grounded_gateway(account: ConsoleAccount) -> dict[str, Any]:
    """A collection holding one small document, embedded by the server's real e5 model, and
    a gateway on the echo model that searches it before every answer."""
    with account.api() as client:
        collection = client.post("/collections", json={"name": "manuals"}).json()["id"]
        document = client.post(
            f"/collections/{collection}/documents",
            json={"name": "warranty.md", "content": WARRANTY},
        ).json()
        deadline = time.monotonic() + 90
        while document["status"] not in ("ready", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)  # indexing runs in the server's own process: poll its status
            document = client.get(f"/collections/{collection}/documents/{document['id']}").json()
        assert document["status"] == "ready", document
    return make_gateway(
        account,
        name="support",
        model="@mock/echo",
        knowledge={"collections": [collection], "strategy": "always", "min_score": 0},
    )


def ask(page: Any, question: str) -> None:
    page.get_by_label("Message").fill(question)
    page.get_by_label("Message").press("Enter")


def turn(page: Any, column: str, index: int) -> Any:
    return page.locator(f'[data-column="{column}"] .pg-turn').nth(index)


def finished(page: Any, column: str, index: int, status: str = "done") -> Any:
    """The `index`-th turn of `column`, once its answer ended as `status`."""
    found = turn(page, column, index)
    expect(found).to_have_attribute("data-status", status, timeout=15_000)
    return found


def open_section(answer: Any, name: str) -> Any:
    section = answer.locator(f'details[data-section="{name}"]')
    section.locator("summary").click()
    return section


def check_whole_page(console: Console, name: str, *, dark: bool = False) -> None:
    """`console.check` with the window as tall as the page: the question box sticks to the
    window's bottom, and a full-page screenshot of a shorter window would draw it mid-page."""
    page = console.page
    size = page.viewport_size
    page.evaluate("() => window.scrollTo(0, 0)")
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": height})
    console.check(name, dark=dark)
    page.set_viewport_size(size)


def test_the_root_key_is_told_to_log_in_with_an_admin_key(
    console: Console, console_account: ConsoleAccount
) -> None:
    page = console.log_in(ROOT_KEY)
    page.get_by_role("button", name=f"Open {console_account.name}").click()
    console.go("playground")
    page.get_by_role("heading", name="The root key cannot call models").wait_for()
    assert "admin key" in page.locator(".empty").inner_text()
    page.get_by_role("link", name="Keys", exact=True).last.click()
    page.wait_for_url("**/#/keys")


def test_an_account_without_gateways_is_sent_to_make_one(
    console: Console, console_account: ConsoleAccount
) -> None:
    page = console.log_in(console_account.admin_key, "playground")
    page.get_by_role("heading", name="No gateway to talk to yet").wait_for()
    assert page.locator(".empty a[href='#/gateways']").is_visible()


def test_tokens_appear_as_they_come_and_stop_cancels_the_request(
    console: Console, console_account: ConsoleAccount, upstream: Upstream
) -> None:
    slow = make_gateway(
        console_account, endpoint={"base_url": upstream.url, "model": "slow-stream"}
    )  # 100 pieces, 50 ms apart
    page = console.log_in(console_account.admin_key, f"playground/{slow['id']}")
    marker = "count slowly " + uuid.uuid4().hex[:8]
    ask(page, marker)
    answer = turn(page, "A", 0)
    bubble = answer.locator(".pg-assistant .pg-bubble")
    page.wait_for_function(
        "el => el.textContent.includes('3 ')", arg=bubble.element_handle()
    )  # the first pieces are shown while the rest is still coming
    early = len(bubble.inner_text())
    assert answer.get_attribute("data-status") == "streaming"
    assert page.get_by_role("button", name="Send").is_disabled()
    page.wait_for_function(
        "([el, n]) => el.textContent.length > n + 6", arg=[bubble.element_handle(), early]
    )
    assert answer.get_attribute("data-status") == "streaming"  # it grew before it was done
    answer.get_by_role("button", name="Stop").click()
    finished(page, "A", 0, "stopped")
    assert "Stopped" in answer.locator(".pg-status").inner_text()
    assert "99 " not in bubble.inner_text()  # cut short, not finished
    assert upstream.mock.closed_early(marker)  # the server closed the upstream request
    assert page.get_by_role("button", name="Send").is_enabled()
    server = answer.locator('[data-server-latency]:not(:has-text("…"))')
    server.wait_for(state="attached")
    assert "not in the request log" not in server.inner_text()
    with console_account.api() as client:
        record = client.get("/requests", params={"gateway": slow["id"]}).json()["data"][0]
    assert record["status"] == 499 and record["metadata"] == {"source": "console.playground"}

    message = page.get_by_label("Message")
    expect(message).to_be_focused()  # the Stop button is gone: the question box has the focus
    ask(page, "again " + marker)
    page.wait_for_function(
        "el => el.textContent.includes('2 ')",
        arg=turn(page, "A", 1).locator(".pg-bubble").last.element_handle(),
    )
    message.press("Escape")  # stops every answer still coming
    finished(page, "A", 1, "stopped")


def test_a_grounded_answer_shows_its_line_items_total_and_citations(
    console: Console, console_account: ConsoleAccount
) -> None:
    gateway = grounded_gateway(console_account)
    page = console.log_in(console_account.admin_key, "playground/support")
    assert page.get_by_label("Gateway").input_value() == gateway["id"]
    ask(page, "How long is the Aurora X2 warranty?")
    answer = finished(page, "A", 0)
    assert "reference_data" in answer.locator(".pg-assistant .pg-bubble").inner_text()
    request_id = answer.locator("[data-request-id]").text_content()
    server = answer.locator('[data-server-latency]:not(:has-text("…"))')
    server.wait_for(state="attached")  # the console found the request log's record
    assert server.text_content().endswith("ms")
    with console_account.api() as client:
        records = client.get("/requests", params={"gateway": gateway["id"]}).json()["data"]
    record = next(r for r in records if r["id"] == request_id)

    cost = open_section(answer, "cost")
    rows = cost.locator("tbody tr")
    assert rows.count() == len(record["line_items"]) == 3  # a search, tokens in, tokens out
    for row, item in zip(rows.all(), record["line_items"], strict=True):
        cells = row.locator("td").all_inner_texts()
        assert cells[0].replace("\n", " ").startswith(item["sku"])
        assert item["description"] in cells[0]
        assert int(cells[1].replace(",", "")) == item["quantity"]
        assert Decimal(cells[3]) == Decimal(str(item["amount"]))
    total, currency = cost.locator("[data-total]").inner_text().split()
    assert Decimal(total) == Decimal(str(record["amount"])) > 0 and currency == "USD"

    knowledge = open_section(answer, "knowledge")
    citation = knowledge.locator(".pg-citation").first
    assert "warranty.md" in citation.inner_text() and "score" in citation.inner_text()
    citation.get_by_role("button", name="Show text").click()
    chunk = citation.locator(".pg-chunk-text")
    chunk.wait_for()
    assert "two years from the date of purchase" in chunk.inner_text()
    assert citation.get_by_role("button", name="Hide text").get_attribute("aria-expanded") == "true"
    assert "How long is the Aurora X2 warranty?" in knowledge.locator(".pg-search").inner_text()

    timing = open_section(answer, "timing")
    latency = float(timing.locator("[data-latency]").inner_text().split()[0].replace(",", ""))
    first = float(timing.locator("[data-ttft]").inner_text().split()[0].replace(",", ""))
    assert 0 <= first <= latency
    open_section(answer, "routing")
    check_whole_page(console, "playground", dark=True)
    page.set_viewport_size({"width": 390, "height": 800})
    console.fits(390)


def test_each_question_carries_the_conversation_and_new_chat_clears_it(
    console: Console, console_account: ConsoleAccount
) -> None:
    echo = make_gateway(console_account, model="@mock/echo")
    page = console.log_in(console_account.admin_key, f"playground/{echo['name']}")
    message = page.get_by_label("Message")
    message.fill("first: apples")
    message.press("Shift+Enter")  # a new line, not a send
    message.press_sequentially("and figs")
    assert message.input_value() == "first: apples\nand figs"
    assert page.locator(".pg-turn").count() == 0
    message.press("Enter")
    first = finished(page, "A", 0).locator(".pg-assistant .pg-bubble").inner_text()
    assert message.input_value() == ""
    ask(page, "second: pears")
    second = finished(page, "A", 1).locator(".pg-assistant .pg-bubble").inner_text()
    assert '"role": "assistant"' in second and "first: apples\\nand figs" in second
    assert second.count("first: apples") == first.count("first: apples") + 1  # and its answer
    assert page.locator('[data-column="A"] .pg-totals').inner_text().startswith("2 answers")
    page.get_by_role("button", name="New chat").click()
    assert page.locator(".pg-turn").count() == 0
    ask(page, "third: plums")
    third = finished(page, "A", 0).locator(".pg-assistant .pg-bubble").inner_text()
    assert "apples" not in third and "third: plums" in third


def test_two_gateways_answer_the_same_question_side_by_side(
    console: Console, console_account: ConsoleAccount
) -> None:
    echo = make_gateway(console_account, name="echo-bot", model="@mock/echo")
    plain = make_gateway(console_account, name="plain-bot", model="@mock/plain")
    page = console.log_in(console_account.admin_key, f"playground/{echo['id']}")
    page.get_by_role("button", name="Compare").click()
    assert page.get_by_role("button", name="Compare").get_attribute("aria-pressed") == "true"
    page.get_by_label("Gateway B").select_option(label="plain-bot")
    assert page.url.endswith(f"#/playground/{echo['id']}/{plain['id']}")
    ask(page, "Which of you is cheaper?")
    a = finished(page, "A", 0)
    b = finished(page, "B", 0)
    assert "Which of you is cheaper?" in a.locator(".pg-assistant .pg-bubble").inner_text()
    assert b.locator(".pg-assistant .pg-bubble").inner_text() == "Hello from the mock upstream."
    assert "@mock/plain" in open_section(b, "routing").inner_text()
    for column in ("A", "B"):
        page.locator(f'[data-column="{column}"] .pg-totals:has-text("1 answer")').wait_for()
    ask(page, "And now?")  # each column goes on with its own history
    finished(page, "A", 1)
    finished(page, "B", 1)
    second = turn(page, "A", 1).locator(".pg-assistant .pg-bubble").inner_text()
    assert "Hello from the mock upstream." not in second  # B's answers are not in A's history
    check_whole_page(console, "playground-compare")
    page.set_viewport_size({"width": 390, "height": 800})
    console.fits(390)
    column_a = page.locator('[data-column="A"]').bounding_box()
    column_b = page.locator('[data-column="B"]').bounding_box()
    assert column_b["y"] >= column_a["y"] + column_a["height"]  # stacked on a phone

    page.reload()  # the address keeps both gateways
    page.get_by_label("Gateway B").wait_for()
    assert page.get_by_label("Gateway B").input_value() == plain["id"]


def test_functions_and_routing_are_shown_under_the_answer(
    console: Console, console_account: ConsoleAccount, upstream: Upstream
) -> None:
    hooks = upstream.url.removesuffix("/v1") + "/functions"
    agent = make_gateway(
        console_account,
        name="agent",
        model="@mock/agent",
        functions=[{"name": "order_status", "url": f"{hooks}/echo", "description": "Status"}],
    )
    routed = make_gateway(
        console_account,
        name="auto",
        model="@auto",
        routing={"router": "@mock/router", "tiers": ["@mock/plain", "@mock/priced"]},
    )
    page = console.log_in(console_account.admin_key, f"playground/{agent['id']}/{routed['id']}")
    ask(page, 'CALL order_status {"order": "A-42"}\nHARD question')
    calls = open_section(finished(page, "A", 0), "functions")
    assert "1 call · order_status" in calls.locator("summary").inner_text()
    code = calls.locator(".pg-code").all_inner_texts()
    assert '"order": "A-42"' in code[0]  # arguments, indented
    assert '"function": "echo"' in code[1] and '"received"' in code[1]  # the webhook's output
    routing = open_section(finished(page, "B", 0), "routing")
    assert "complexity 5 → @mock/priced" in routing.locator("summary").inner_text()
    assert "tier 2 of 2" in routing.inner_text() and "@mock/router" in routing.inner_text()
    cost = open_section(turn(page, "B", 0), "cost")
    assert "inference.resolving.routing_complexity.in" in cost.inner_text().replace("\n", "")
    assert "1 call" not in open_section(turn(page, "B", 0), "functions").inner_text()


def test_an_answer_with_markup_is_shown_as_text(
    console: Console, console_account: ConsoleAccount
) -> None:
    echo = make_gateway(console_account, model="@mock/echo")
    page = console.log_in(console_account.admin_key, f"playground/{echo['id']}")
    hostile = (
        "<script>window.pwned = 1; document.title = 'pwned'</script>"
        '<img src=x onerror="window.pwned = 2">'
    )
    ask(page, hostile)
    answer = finished(page, "A", 0)
    text = answer.locator(".pg-assistant .pg-bubble").inner_text()
    assert "<script>window.pwned = 1;" in text and "<img src=x" in text  # shown, as text
    assert page.locator(".pg-transcript script, .pg-transcript img").count() == 0
    assert page.evaluate("() => window.pwned") is None
    assert page.title() == "Playground · Alicerce"


def test_a_failed_answer_says_why_and_stays_out_of_the_history(
    console: Console, console_account: ConsoleAccount, upstream: Upstream
) -> None:
    refusing = make_gateway(
        console_account, name="refuses", endpoint={"base_url": upstream.url, "model": "fail-400"}
    )  # the upstream refuses every request
    echo = make_gateway(console_account, name="echo", model="@mock/echo")
    rescued = make_gateway(console_account, model="@mock/broken", fallbacks=["@mock/plain"])
    page = console.log_in(console_account.admin_key, f"playground/{refusing['id']}")
    ask(page, "will this work?")
    failed = finished(page, "A", 0, "failed")
    error = failed.get_by_role("alert").inner_text()
    assert "400 upstream_rejected" in error and "gateway refuses" in error
    page.get_by_label("Gateway").select_option(echo["id"])  # same conversation, another gateway
    ask(page, "and now?")
    answer = finished(page, "A", 1).locator(".pg-assistant .pg-bubble").inner_text()
    assert "and now?" in answer and "will this work?" not in answer
    assert turn(page, "A", 1).locator(".pg-who").last.inner_text() == "echo"

    page.get_by_label("Gateway").select_option(rescued["id"])
    ask(page, "who answers?")
    routing = open_section(finished(page, "A", 2), "routing").inner_text()
    assert "@mock/plain" in routing and "a fallback: @mock/broken failed" in routing
