"""Faults survived, nothing lost (issue 14): the upstream dying mid-stream, the client leaving
mid-stream, the database and Redis going away for a while, a replica killed with SIGKILL.

Every fault is real: the mock upstream cuts its TCP connection, PostgreSQL and Redis sit behind
a TCP proxy on loopback (`tests/proxy.py`) that the test cuts and restores, a replica is an
`alicerce serve` process killed with SIGKILL. After each fault the ledger balances: what
`/usage` says equals the sum of the line items of the records `/requests` lists.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx2 as httpx
import openai
import pytest

from tests.conftest import Account
from tests.mock_upstream import CUT_AFTER
from tests.test_usage_api import body


def records(http: httpx.Client, **filters: str) -> list[dict[str, Any]]:
    """Every record `/requests` lists, page by page."""
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000, **filters}
    while True:
        page = body(http.get("/requests", params=params))
        rows.extend(page["data"])
        if not page["has_more"]:
            return rows
        params["cursor"] = page["next_cursor"]


def assert_ledger_balances(http: httpx.Client) -> tuple[Decimal, int]:
    """`/usage` (amount, quantities per SKU, requests) equals what the listed records' line
    items add up to, and each record's amount is its line items' sum. Returns the amount and
    the number of records."""
    rows = records(http)
    usage = body(http.get("/usage"))
    quantities: Counter[str] = Counter()
    total = Decimal(0)
    for row in rows:
        items = row["line_items"]
        amount = sum((Decimal(i["quantity"]) * Decimal(i["unit_price"]) for i in items), Decimal(0))
        assert Decimal(row["amount"]) == amount, row
        total += amount
        for item in items:
            quantities[item["sku"]] += item["quantity"]
    assert Decimal(usage["amount_exact"]) == total
    assert usage["quantities"] == dict(quantities)
    assert usage["requests"] + usage["refused_requests"] == len(rows)
    return total, len(rows)


# -- 1. the upstream dies mid-stream -----------------------------------------------------------


def test_an_upstream_cut_mid_stream_is_an_error_event_and_bills_what_was_produced(
    account: Account,
) -> None:
    gateway = account.create_gateway(model="@mock/cut")
    client = account.http()
    payload = {"model": gateway["id"], "messages": [{"role": "user", "content": "Q"}]}
    with client.stream("POST", "/chat/completions", json=payload | {"stream": True}) as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        lines = [line for line in response.iter_lines() if line]
    events = [line.removeprefix("data: ") for line in lines]
    pieces = [e for e in events if '"piece' in e]
    assert len(pieces) == CUT_AFTER  # what the upstream produced reached the client
    error = json.loads(events[-1])["error"]  # an OpenAI error object, then the stream ends
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["type"] == "upstream_error"
    assert "[DONE]" not in events

    row = account.alicerce.wait_for_record(request_id)
    assert row.status_code == 502
    assert row.stream is True
    assert row.completion_tokens > 0  # the partial answer, counted
    assert row.prompt_tokens > 0
    assert Decimal(row.amount) > 0
    skus = {item["sku"] for item in row.line_items}
    assert skus == {"inference.chat_completions.in", "inference.chat_completions.out"}
    assert_ledger_balances(client)


def test_the_sdk_raises_on_an_upstream_cut_mid_stream_and_the_responses_api_fails(
    account: Account,
) -> None:
    gateway = account.create_gateway(model="@mock/cut")
    stream = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": "Q"}], stream=True
    )
    with pytest.raises(openai.APIError):
        list(stream)
    raw = account.openai().responses.with_raw_response.create(
        model=gateway["id"], input="Q", stream=True
    )
    events = list(raw.parse())
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    row = account.alicerce.wait_for_record(raw.headers["x-request-id"])
    assert row.status_code == 502
    assert row.completion_tokens > 0
    with account.http() as http:
        assert_ledger_balances(http)


# -- 2. the client leaves mid-stream ---------------------------------------------------------


def test_a_client_leaving_mid_stream_is_recorded_as_499_with_what_was_produced(
    account: Account,
) -> None:
    gateway = account.create_gateway(model="@mock/slow-stream")
    marker = "leave-" + uuid.uuid4().hex
    payload = {
        "model": gateway["id"],
        "messages": [{"role": "user", "content": marker}],
        "stream": True,
    }
    with account.http() as client:
        with client.stream("POST", "/chat/completions", json=payload) as response:
            request_id = response.headers["x-request-id"]
            seen = 0
            for line in response.iter_lines():
                seen += line.startswith("data: ")
                if seen == 5:
                    break  # leave after a few pieces of a 100-piece answer
        row = account.alicerce.wait_for_record(request_id)
        assert account.upstream.mock.closed_early(marker), "the upstream stream was never closed"
        assert row.status_code == 499
        assert row.stream is True
        assert 0 < row.completion_tokens < 100  # what was produced, not the whole answer
        assert Decimal(row.amount) > 0
        assert_ledger_balances(client)
