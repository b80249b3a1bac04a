"""The Knowledge page in a browser: create a collection (a 400 beside its field), drop a DOCX,
a PDF, a file with a hostile name and a broken PDF in at once and watch each end ready or
failed with its reason, without reloading; the documents table, a document's details, the
search tester, delete a document, and delete a collection a gateway uses (409, then force)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import docx

from tests.console.conftest import Console, ConsoleAccount

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "knowledge"
HOSTILE = "<img src=x onerror=alert(1)>"
# every data-status an upload row takes, in the order it took them
WATCH_UPLOADS = """() => {
  window.seen = {};
  new MutationObserver((records) => {
    for (const r of records) {
      const row = r.target.closest && r.target.closest('.upload');
      if (!row || !row.dataset.status) continue;
      const name = row.dataset.file, list = (window.seen[name] ||= []);
      if (list[list.length - 1] !== row.dataset.status) list.push(row.dataset.status);
    }
  }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-status']});
}"""


def docx_bytes() -> bytes:
    document = docx.Document()
    document.add_heading("Guia de reembolso", level=1)
    document.add_paragraph(
        "Pedidos de reembolso do plano Capivara são aceitos em até 14 dias após a compra, "
        "pelo formulário da central de ajuda."
    )
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_documents_are_dropped_in_indexed_searched_and_deleted(
    console: Console, console_account: ConsoleAccount
) -> None:
    dialogs: list[str] = []
    page = console.log_in(console_account.admin_key, "knowledge")
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.get_by_role("heading", name="No collections yet").wait_for()
    page.get_by_role("button", name="New collection").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Embedding model").select_option("endpoint")
    dialog.get_by_label("Name").fill("handbook")
    dialog.get_by_label("Base URL").fill("http://127.0.0.1:9/v1")
    dialog.get_by_label("Model", exact=True).fill("embed")
    dialog.get_by_role("button", name="Create collection").click()
    # no dimensions: the API's 400 beside the field it names
    error = dialog.locator('[data-param="embedding.dimensions"] .field-error')
    error.filter(has_text="required").wait_for()
    console.check("collection-form")
    dialog.get_by_label("Embedding model").select_option("local")
    dialog.get_by_label("Description").fill("The team handbook, in two languages.")
    dialog.get_by_role("button", name="Create collection").click()
    page.get_by_role("heading", name="handbook").wait_for()
    assert "/console/#/knowledge/" in page.url

    page.evaluate(WATCH_UPLOADS)
    page.locator('input[type="file"]').set_input_files(
        [
            {
                "name": "reembolso.docx",
                "mimeType": "application/vnd.openxmlformats-officedocument."
                "wordprocessingml.document",
                "buffer": docx_bytes(),
            },
            {
                "name": "handbook.pdf",
                "mimeType": "application/pdf",
                "buffer": (FIXTURES / "handbook.pdf").read_bytes(),
            },
            {"name": f"{HOSTILE}.txt", "mimeType": "text/plain", "buffer": b"Quokkas sleep."},
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"not a pdf"},
        ]
    )
    for name in ("reembolso.docx", "handbook.pdf", f"{HOSTILE}.txt"):
        page.locator(f'.upload[data-status="ready"][data-file="{name}"]').wait_for(timeout=90_000)
    broken = page.locator('.upload[data-status="failed"][data-file="broken.pdf"]')
    broken.wait_for(timeout=90_000)
    assert "PDF" in broken.inner_text()  # its reason, in words
    seen: dict[str, list[str]] = page.evaluate("() => window.seen")
    for name in ("reembolso.docx", "handbook.pdf"):
        assert seen[name][0] == "queued" and seen[name][-1] == "ready", seen
    assert page.get_by_text("uploading").count() == 0

    # the documents table, drawn as they changed, without a reload
    table = page.locator(".collection-page table")
    for name in ("reembolso.docx", "handbook.pdf", f"{HOSTILE}.txt", "broken.pdf"):
        table.locator("tr", has_text=name).wait_for()
    pdf_row = table.locator("tr", has_text="handbook.pdf").inner_text()
    assert "ready" in pdf_row and "PDF" in pdf_row
    assert table.locator("tr", has_text="broken.pdf").get_by_role("button", name="Retry").count()
    # the hostile name is text: no image made, nothing run
    assert page.locator(".doc-name", has_text=HOSTILE).count() == 2  # upload row, table row
    assert page.locator("main img").count() == 0 and dialogs == []
    facts = page.locator(".collection-facts").inner_text()
    assert "4 (3 ready)" in facts

    table.locator("tr", has_text="handbook.pdf").click()
    details = page.get_by_role("dialog")
    assert "Content hash" in details.inner_text() and "application/pdf" in details.inner_text()
    details.get_by_role("button", name="Close").click()

    # the search tester: the hits' text, document and score
    tester = page.get_by_role("search", name="Search tester")
    tester.get_by_label("Query").fill("When does a new Quokka member receive the badge?")
    tester.get_by_role("button", name="Search").click()
    first = tester.locator(".hit").first
    first.wait_for()
    assert first.get_attribute("data-document") == "handbook.pdf"
    assert "badge" in first.locator(".hit-text").inner_text()
    assert "score 0." in first.inner_text() or "score 1." in first.inner_text()
    tester.get_by_label("Mode").select_option("keyword")
    tester.get_by_label("Query").fill("reembolso Capivara")
    tester.get_by_label("Results (top_k)").fill("1")
    tester.get_by_role("button", name="Search").click()
    tester.locator('.search-results[data-query="reembolso Capivara"]').wait_for()
    assert tester.locator(".hit").count() == 1
    assert "14 dias" in tester.locator(".hit-text").inner_text()
    tester.get_by_label("Results (top_k)").fill("500")
    tester.get_by_role("button", name="Search").click()
    tester.locator('[data-param="top_k"] .field-error').filter(has_text="50").wait_for()
    console.check("collection", dark=True)
    page.set_viewport_size({"width": 390, "height": 860})
    console.fits(390)
    console.check("collection-phone")
    page.set_viewport_size({"width": 1280, "height": 860})

    # a file dragged from the desktop and dropped on the zone
    dropped = page.evaluate_handle(
        "() => { const data = new DataTransfer();"
        " data.items.add(new File(['# Otters\\n\\nOtters hold hands.'], 'dropped.md',"
        " {type: 'text/markdown'})); return data; }"
    )
    page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": dropped})
    page.locator('.upload[data-status="ready"][data-file="dropped.md"]').wait_for(timeout=60_000)
    table.locator("tr", has_text="dropped.md").wait_for()

    table.get_by_role("button", name="Delete broken.pdf").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    table.locator("tr", has_text="broken.pdf").wait_for(state="detached")
    with console_account.api() as client:
        [collection] = client.get("/collections").json()["data"]
        names = [d["name"] for d in _documents(client, collection["id"])]
    assert sorted(names) == sorted(
        ["reembolso.docx", "handbook.pdf", f"{HOSTILE}.txt", "dropped.md"]
    )
    assert dialogs == []


def _documents(client: Any, collection_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/collections/{collection_id}/documents")
    assert response.status_code == 200, response.text
    documents: list[dict[str, Any]] = response.json()["data"]
    return documents


def test_a_collection_in_use_is_deleted_only_when_confirmed_twice(
    console: Console, console_account: ConsoleAccount
) -> None:
    with console_account.api() as client:
        collection = client.post("/collections", json={"name": "faq"}).json()
        client.post(
            f"/collections/{collection['id']}/documents",
            json={"name": "faq.md", "content": "# FAQ\n\nOpen from nine to five."},
        )
        gateway = client.post(
            "/gateways",
            json={
                "name": "faq-bot",
                "model": "@mock/echo",
                "knowledge": {"collections": [collection["id"]], "strategy": "always"},
            },
        ).json()
    page = console.log_in(console_account.admin_key, "knowledge")
    row = page.locator("tr", has_text="faq")
    row.wait_for()
    console.check("knowledge")
    row.get_by_role("button", name="Delete faq").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    in_use = page.get_by_role("dialog", name="faq is in use")
    in_use.wait_for()
    assert "faq-bot" in in_use.inner_text()
    in_use.get_by_role("button", name="Cancel").click()
    with console_account.api() as client:
        assert client.get(f"/collections/{collection['id']}").status_code == 200

    row.get_by_role("button", name="Delete faq").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_role("dialog", name="faq is in use").get_by_role(
        "button", name="Delete anyway"
    ).click()
    page.get_by_role("heading", name="No collections yet").wait_for()
    with console_account.api() as client:
        assert client.get(f"/collections/{collection['id']}").status_code == 404
        knowledge = client.get(f"/gateways/{gateway['id']}").json()["knowledge"]
    assert knowledge["collections"] == []
