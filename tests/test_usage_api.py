"""`/usage` and `/requests` as people read them: one currency, plain decimal amounts, quantities
per SKU, names beside ids, `group_by=model`, filters, refused requests counted apart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx2 as httpx
import pytest

from alicerce.api import create_app
from tests import conftest
from tests.conftest import Account, Alicerce, Upstream
from tests.servers import ServerThread

MILLION = Decimal(1_000_000)


def exact(text: str) -> Any:
    """A JSON body with its numbers as Decimals; fails on any number written with an exponent."""

    def number(literal: str) -> Decimal:
        assert "e" not in literal.lower(), f"{literal} is written with an exponent"
        return Decimal(literal)

    return json.loads(text, parse_float=number)


def body(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return exact(response.text)


def chat(http: httpx.Client, model: str, key: str | None = None, **extra: Any) -> httpx.Response:
    """A chat completion through the API, as `http`'s key or `key`; the response, whatever it
    is (refusals included: their `x-request-id` names their record)."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    payload = {"model": model, "messages": [{"role": "user", "content": "Q"}], **extra}
    return http.post("/chat/completions", json=payload, headers=headers)


def recorded(account: Account, *responses: httpx.Response) -> list[str]:
    """The responses' request ids, once the request log holds them all."""
    ids = [r.headers["x-request-id"] for r in responses]
    for request_id in ids:
        account.alicerce.wait_for_record(request_id)
    return ids


def new_key(account: Account, **spec: Any) -> dict[str, Any]:
    with account.http() as http:
        return body(http.post("/keys", json={"role": "inference", **spec}), 201)  # type: ignore[no-any-return]


def test_amounts_are_plain_exact_numbers_with_their_currency(account: Account) -> None:
    gateway = account.create_gateway(model="@mock/priced")  # cached in: 1.25 per million
    with account.http() as http:
        whole = chat(http, gateway["id"])
        streamed = chat(http, gateway["id"], stream=True)
        ids = recorded(account, whole, streamed)
        usage = body(http.get("/usage"))
        listed = body(http.get("/requests"))["data"]
    context = body(whole)["generation_context"]
    last = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: {")][-1]
    assert exact(last)["generation_context"] == context
    assert context["currency"] == "USD"
    items = {item["sku"]: item for item in context["generated_usage"]}
    cached = items["inference.chat_completions.in.cached"]
    assert cached["unit_price"] == Decimal("0.00000125")  # not 1.25e-06, nor 1.25E-6
    assert b'"unit_price":0.00000125,' in whole.content
    for item, price in (
        (items["inference.chat_completions.in"], Decimal("2.5")),
        (cached, Decimal("1.25")),
        (items["inference.chat_completions.out"], Decimal(10)),
    ):
        assert item["unit_price"] == price / MILLION
        assert item["amount"] == item["quantity"] * price / MILLION
    one = sum(item["amount"] for item in items.values())

    assert [row["id"] for row in listed] == ids[::-1]
    for row in listed:
        assert row["currency"] == "USD"
        assert row["amount"] == one
        assert row["line_items"] == context["generated_usage"]  # one shape for line items
    assert usage["currency"] == "USD"
    assert usage["amount"] == 2 * one
    assert "e" not in usage["amount_exact"].lower()  # plain digits, as the number
    assert Decimal(usage["amount_exact"]) == 2 * one


def test_quantities_are_per_sku_and_never_mixed(account: Account) -> None:
    gateway = account.create_gateway(model="@mock/priced")
    with account.http() as http:
        answer = chat(http, gateway["id"])
        collection = body(http.post("/collections", json={"name": "notes"}), 201)
        for _ in range(2):
            found = http.post(
                f"/collections/{collection['id']}/search", json={"query": "x", "mode": "keyword"}
            )
            assert found.status_code == 200, found.text
        ids = recorded(account, answer)
        account.alicerce.flushed()
        usage = body(http.get("/usage"))
        by_sku = body(http.get("/usage", params={"group_by": "sku"}))["data"]
    tokens = {
        i["sku"]: i["quantity"] for i in body(answer)["generation_context"]["generated_usage"]
    }
    assert usage["quantities"] == tokens | {"knowledge.search": 2}
    assert usage["quantity"] == sum(tokens.values()) + 2  # kept for SPEC: a sum of units
    assert usage["requests"] == 3  # the chat completion and the two searches
    assert [(g["sku"], g["unit"], g["quantity"], g["quantities"]) for g in by_sku] == [
        (sku, "token", n, {sku: n}) for sku, n in sorted(tokens.items())
    ] + [("knowledge.search", "search", 2, {"knowledge.search": 2})]
    assert [g["requests"] for g in by_sku] == [1, 1, 1, 2]
    assert ids


def test_groups_carry_names_and_deleted_ones_keep_their_id(account: Account) -> None:
    kept = account.create_gateway(model="@mock/plain", name="kept")
    gone = account.create_gateway(model="@mock/plain", name="gone")
    key = new_key(account, name="reporting")
    with account.http() as http:
        responses = [chat(http, kept["id"]), chat(http, gone["id"], key=key["key"])]
        responses.append(chat(http, "@mock/plain"))  # a catalog model: no gateway
        recorded(account, *responses)
        assert http.delete(f"/gateways/{gone['id']}").status_code == 204
        assert http.delete(f"/keys/{key['id']}").status_code == 204
        by_gateway = body(http.get("/usage", params={"group_by": "gateway"}))["data"]
        by_key = body(http.get("/usage", params={"group_by": "key"}))["data"]
        admin = [k for k in body(http.get("/keys"))["data"] if k["id"] != key["id"]]
        # a deleted key's requests are still found by its id
        only = body(http.get("/usage", params={"key": key["id"]}))
        listed = body(http.get("/requests", params={"key": key["id"]}))["data"]
        gone_usage = body(http.get("/usage", params={"gateway": gone["id"]}))
    names = {g["gateway"]: (g["name"], g["requests"]) for g in by_gateway}
    assert names == {kept["id"]: ("kept", 1), gone["id"]: (None, 1), None: (None, 1)}
    assert list(names)[-1] is None  # the no-gateway group comes last
    assert {g["key"]: (g["name"], g["requests"]) for g in by_key} == {
        admin[0]["id"]: (admin[0]["name"], 2),
        key["id"]: (None, 1),
    }
    assert only["requests"] == 1 and [r["key_id"] for r in listed] == [key["id"]]
    assert gone_usage["requests"] == 1


def test_usage_by_the_model_that_answered(account: Account) -> None:
    plain = account.create_gateway(model="@mock/plain")
    priced = account.create_gateway(model="@mock/priced")
    with account.http() as http:
        responses = [chat(http, plain["id"]), chat(http, plain["id"]), chat(http, priced["id"])]
        recorded(account, *responses)
        by_model = body(http.get("/usage", params={"group_by": "model"}))["data"]
    answers = [exact(r.text) for r in responses]
    expected: dict[str, Decimal] = {}
    for answer in answers:
        amount = sum(i["amount"] for i in answer["generation_context"]["generated_usage"])
        expected[answer["model"]] = expected.get(answer["model"], Decimal(0)) + amount
    assert sorted(expected) == ["cached-2026", "plain-2026"]
    assert {g["model"]: g["amount"] for g in by_model} == expected
    assert {g["model"]: g["requests"] for g in by_model} == {"cached-2026": 1, "plain-2026": 2}
    assert all("name" not in g for g in by_model)


def test_refused_requests_are_counted_apart(account: Account) -> None:
    allowed = account.create_gateway(model="@mock/plain")
    other = account.create_gateway(model="@mock/plain")
    key = new_key(account, name="limited", gateways=[allowed["id"]], rpm=1)
    with account.http() as http:
        served = chat(http, allowed["id"], key=key["key"])
        forbidden = chat(http, other["id"], key=key["key"])
        limited = chat(http, allowed["id"], key=key["key"])
        assert (served.status_code, forbidden.status_code, limited.status_code) == (200, 403, 429)
        failed = chat(http, allowed["id"], temperature=7)  # the admin key: a 400, not refused
        assert failed.status_code == 400
        ids = recorded(account, served, forbidden, limited, failed)
        usage = body(http.get("/usage"))
        by_key = {g["key"]: g for g in body(http.get("/usage", params={"group_by": "key"}))["data"]}
        by_sku = body(http.get("/usage", params={"group_by": "sku"}))["data"]

        def listed(status: str) -> list[str]:
            rows = body(http.get("/requests", params={"status": status}))["data"]
            return [row["id"] for row in rows]

        assert listed("refused") == [ids[2], ids[1]]
        assert listed("403") == [ids[1]]
        assert listed("429, 403") == [ids[2], ids[1]]
        assert listed("4xx") == listed("error") == [ids[3], ids[2], ids[1]]
        assert listed("served") == [ids[3], ids[0]]
        assert listed("ok") == listed("2XX") == [ids[0]]
    assert (usage["requests"], usage["refused_requests"]) == (2, 2)
    assert (by_key[key["id"]]["requests"], by_key[key["id"]]["refused_requests"]) == (1, 2)
    assert all(g["refused_requests"] == 0 for g in by_sku)


def test_requests_filters_page_with_the_cursor(account: Account) -> None:
    plain = account.create_gateway(model="@mock/plain")
    priced = account.create_gateway(model="@mock/priced")
    alpha, beta = new_key(account, name="alpha"), new_key(account, name="beta")
    with account.http() as http:
        responses = [
            chat(http, plain["id"], key=alpha["key"])
            if i % 2
            else chat(http, priced["id"], key=beta["key"])
            for i in range(9)
        ]
        ids = recorded(account, *responses)  # oldest first
        alphas, betas = ids[1::2], ids[0::2]

        def pages(**params: Any) -> list[list[str]]:
            seen, cursor = [], None
            while True:
                page = body(http.get("/requests", params={**params, "cursor": cursor or ""}))
                seen.append([row["id"] for row in page["data"]])
                if not page["has_more"]:
                    assert page["next_cursor"] is None
                    return seen
                cursor = page["next_cursor"]
                assert cursor == seen[-1][-1]

        assert pages(key="alpha", limit=3) == [alphas[:0:-1], alphas[:1]]
        assert pages(key=alpha["id"], limit=4) == [alphas[::-1]]
        by_model = pages(model="cached-2026", limit=2)
        assert by_model == [betas[4:2:-1], betas[2:0:-1], betas[:1]]
        assert pages(key="beta", model="cached-2026", gateway=priced["slug"], limit=9) == [
            betas[::-1]
        ]
        assert pages(key="alpha", model="cached-2026") == [[]]
        rows = {row["id"]: row for row in body(http.get("/requests", params={"limit": 9}))["data"]}
        start, end = rows[ids[2]]["created_at"], rows[ids[6]]["created_at"]
        assert pages(**{"from": start, "to": end, "limit": 3}) == [
            ids[5:2:-1],
            ids[2:1:-1],
        ]
        assert pages(**{"from": start, "to": end, "key": "beta", "limit": 1}) == [
            [ids[4]],
            [ids[2]],
        ]


@pytest.mark.parametrize(
    ("path", "params", "status", "param"),
    [
        ("/requests", {"status": "teapot"}, 400, "status"),
        ("/requests", {"status": "6xx"}, 400, "status"),
        ("/requests", {"status": "42"}, 400, "status"),
        ("/requests", {"status": "200,"}, 400, "status"),
        ("/requests", {"from": "yesterday"}, 400, "from"),
        ("/requests", {"from": "2026-01-02", "to": "2026-01-01"}, 400, "to"),
        ("/requests", {"cursor": "page-2"}, 400, "cursor"),
        ("/requests", {"limit": "0"}, 400, "limit"),
        ("/requests", {"limit": "many"}, 400, "limit"),
        ("/requests", {"key": "nobody"}, 404, "key"),
        ("/requests", {"gateway": "nowhere"}, 404, "gateway"),
        ("/usage", {"group_by": "color"}, 400, "group_by"),
        ("/usage", {"to": "99999999999999999"}, 400, "to"),
        ("/usage", {"from": "1700000000", "to": "1700000000"}, 400, "to"),
        ("/usage", {"key": "nobody"}, 404, "key"),
    ],
)
def test_bad_filters_are_400_or_404_naming_the_parameter(
    account: Account, path: str, params: dict[str, str], status: int, param: str
) -> None:
    with account.http() as http:
        response = http.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


def test_a_key_name_two_keys_share_is_ambiguous(account: Account) -> None:
    first, second = new_key(account, name="twin"), new_key(account, name="twin")
    with account.http() as http:
        response = http.get("/requests", params={"key": "twin"})
        by_id = http.get("/requests", params={"key": second["id"]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "key"
    assert by_id.status_code == 200 and first["id"] != second["id"]


def test_another_accounts_key_and_gateway_are_not_found(
    account: Account, other_account: Account
) -> None:
    gateway = account.create_gateway(model="@mock/plain")
    key = new_key(account, name="mine")
    with account.http() as http:
        recorded(account, chat(http, gateway["id"], key=key["key"]))
    with other_account.http() as http:
        assert http.get("/requests", params={"key": key["id"]}).status_code == 404
        assert http.get("/requests", params={"gateway": gateway["id"]}).status_code == 404
        assert http.get("/usage", params={"key": key["id"]}).status_code == 404
        assert body(http.get("/usage"))["requests"] == 0


# -- a catalog in another currency -----------------------------------------------------------


@pytest.fixture(scope="module")
def euro(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Alicerce]:
    directory = tmp_path_factory.mktemp("euro")
    catalog = conftest.write_catalog(directory, upstream)
    catalog.write_text('currency = "EUR"\n' + catalog.read_text())
    app = create_app(conftest.test_settings(directory, config=str(catalog)))
    server = ServerThread(app).start()
    yield Alicerce(server.url, conftest.ROOT_KEY, server, app)
    server.stop()


def test_the_catalogs_currency_is_shown_with_every_amount(
    euro: Alicerce, upstream: Upstream
) -> None:
    with euro.http(euro.root_key) as root:
        created = body(root.post("/accounts", json={"name": "euros"}), 201)
    account = Account(created["id"], created["admin_key"], euro, upstream)
    with account.http() as http:
        answer = chat(http, "@mock/plain")
        recorded(account, answer)
        usage = body(http.get("/usage", params={"group_by": "day"}))
        row = body(http.get("/requests"))["data"][0]
    assert body(answer)["generation_context"]["currency"] == "EUR"
    assert usage["currency"] == row["currency"] == "EUR"
    assert usage["amount"] == row["amount"] == usage["data"][0]["amount"] > 0
