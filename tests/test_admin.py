"""The admin API: accounts, keys and gateways, validated, isolated, secrets kept secret."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import Account, Alicerce


def test_account_lifecycle_with_root_key(alicerce: Alicerce) -> None:
    with alicerce.http(alicerce.root_key) as client:
        created = client.post("/accounts", json={"name": "acme"})
        assert created.status_code == 201
        account = created.json()
        assert account["admin_key"].startswith("alc_")
        uuid.UUID(account["id"])
        assert re.match(r"^\d{4}-\d\d-\d\dT.*Z$", account["created_at"])
        listed = client.get("/accounts").json()["data"]
        assert any(a["id"] == account["id"] for a in listed)
        assert all("admin_key" not in a for a in listed)
        patched = client.patch(f"/accounts/{account['id']}", json={"name": "acme2"})
        assert patched.json()["name"] == "acme2"
        assert client.delete(f"/accounts/{account['id']}").status_code == 204
        assert client.get(f"/accounts/{account['id']}").status_code == 404
    # the deleted account's key no longer works
    with alicerce.http(account["admin_key"]) as client:
        assert client.get("/gateways").status_code == 401


def test_account_validation(alicerce: Alicerce) -> None:
    with alicerce.http(alicerce.root_key) as client:
        response = client.post("/accounts", json={"name": ""})
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "name"
        assert client.post("/accounts", json={"nom": "x"}).status_code == 400
        assert client.post("/accounts", content=b"{oops").status_code == 400


def test_keys_are_shown_once_and_stored_hashed(account: Account) -> None:
    with account.http() as client:
        created = client.post("/keys", json={"name": "ci", "role": "inference", "rpm": 60}).json()
        secret = created["key"]
        listed = client.get("/keys").json()["data"]
    assert secret.startswith("alc_")
    assert all("key" not in k for k in listed)
    assert any(k["id"] == created["id"] and k["rpm"] == 60 for k in listed)
    from sqlalchemy import select

    from alicerce.store.tables import ApiKeyRow

    with account.alicerce.services.db.session() as session:
        stored = session.scalars(select(ApiKeyRow)).all()
    assert all(secret not in (row.key_hash, row.prefix) for row in stored)


def test_deleted_key_stops_working(account: Account) -> None:
    gateway = account.create_gateway()
    with account.http() as client:
        created = client.post("/keys", json={"name": "tmp", "role": "inference"}).json()
    body = {"model": gateway["id"], "messages": [{"role": "user", "content": "Q"}]}
    with account.http(created["key"]) as client:
        assert client.post("/chat/completions", json=body).status_code == 200
    with account.http() as client:
        assert client.delete(f"/keys/{created['id']}").status_code == 204
        assert client.delete(f"/keys/{created['id']}").status_code == 404
    with account.http(created["key"]) as client:
        assert client.post("/chat/completions", json=body).status_code == 401


def test_key_for_unknown_gateway_is_refused(account: Account, other_account: Account) -> None:
    theirs = other_account.create_gateway()
    with account.http() as client:
        response = client.post("/keys", json={"name": "x", "gateways": [theirs["id"]]})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "gateways.0"


def test_a_keys_gateways_may_be_named_by_slug_and_are_stored_as_ids(account: Account) -> None:
    gateway = account.create_gateway()
    with account.http() as client:
        created = client.post("/keys", json={"name": "x", "gateways": [gateway["slug"]]})
        refused = client.post("/keys", json={"name": "y", "gateways": [gateway["id"], "nope"]})
    assert created.status_code == 201
    assert created.json()["gateways"] == [gateway["id"]]
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "gateways.1: no gateway 'nope' in this account."
    assert refused.json()["error"]["param"] == "gateways.1"


def test_deleting_an_account_drops_its_gateways_from_the_cache(alicerce: Alicerce) -> None:
    with alicerce.http(alicerce.root_key) as client:
        account = client.post("/accounts", json={"name": "gone"}).json()
    with alicerce.http(account["admin_key"]) as client:
        gateway = client.post(
            "/gateways", json={"name": "bot", "model": "@local/smollm2-135m"}
        ).json()
    gateways = alicerce.services.gateways
    assert gateways.resolve(account["id"], gateway["id"]) is not None
    assert gateways.peek(account["id"], gateway["id"])[0]  # cached
    with alicerce.http(alicerce.root_key) as client:
        assert client.delete(f"/accounts/{account['id']}").status_code == 204
    assert gateways.peek(account["id"], gateway["id"]) == (False, None)
    assert gateways.resolve(account["id"], gateway["id"]) is None


def test_gateway_has_every_field_and_hides_the_upstream_key(account: Account) -> None:
    gateway = account.create_gateway(
        name="support-bot",
        instructions="You are the support assistant.",
        parameters={"temperature": 0.3, "max_tokens": 1024},
    )
    assert re.match(r"^support-bot:[0-9a-f]{4}$", gateway["slug"])
    assert gateway["slug"].endswith(gateway["id"].replace("-", "")[-4:])
    assert gateway["endpoint"]["api_key_set"] is True
    assert "api_key" not in gateway["endpoint"]
    for field in (
        "instructions",
        "model",
        "endpoint",
        "parameters",
        "overridable",
        "knowledge",
        "functions",
        "fallbacks",
        "routing",
        "created_at",
        "updated_at",
    ):
        assert field in gateway
    assert gateway["parameters"] == {
        "temperature": 0.3,
        "top_p": None,
        "max_tokens": 1024,
        "stop": None,
        "presence_penalty": None,
        "frequency_penalty": None,
        "seed": None,
        "prefill": None,
    }
    assert gateway["overridable"] == ["temperature", "top_p", "max_tokens", "stop", "seed"]
    assert gateway["knowledge"]["strategy"] == "none"
    assert gateway["knowledge"]["min_score"] == 0.2
    assert gateway["knowledge"]["context_turns"] == 3
    with account.http() as client:
        fetched = client.get(f"/gateways/{gateway['slug']}").json()
        listed = client.get("/gateways").json()["data"]
    assert fetched == gateway
    assert [g["id"] for g in listed] == [gateway["id"]]
    # the stored key is encrypted at rest
    from alicerce.store.tables import GatewayRow

    with account.alicerce.services.db.session() as session:
        row = session.get(GatewayRow, gateway["id"])
    assert row is not None and row.endpoint_api_key and "sk-up" not in row.endpoint_api_key
    assert "sk-up" not in str(row.spec)


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        ({"name": "bad name!", "model": "@local/smollm2-135m"}, "name"),
        ({"name": "g"}, "model"),  # neither model nor endpoint
        (
            {
                "name": "g",
                "model": "@local/smollm2-135m",
                "endpoint": {"base_url": "http://x", "model": "m"},
            },
            "model",
        ),
        ({"name": "g", "model": "@nobody/nothing"}, "model"),
        (
            {"name": "g", "model": "@local/smollm2-135m", "parameters": {"temperature": 5}},
            "parameters.temperature",
        ),
        (
            {"name": "g", "model": "@local/smollm2-135m", "parameters": {"warmth": 1}},
            "parameters.warmth",
        ),
        (
            {"name": "g", "model": "@local/smollm2-135m", "overridable": ["instructions"]},
            "overridable",
        ),
        ({"name": "g", "model": "@auto"}, "routing"),
        (
            {
                "name": "g",
                "model": "@local/smollm2-135m",
                "routing": {"router": "r", "tiers": ["t"]},
            },
            "routing",
        ),
        ({"name": "g", "model": "@local/smollm2-135m", "fallbacks": ["@x/y"]}, "fallbacks.0"),
        ({"name": "g", "endpoint": {"base_url": "ftp://x", "model": "m"}}, "endpoint.base_url"),
        (
            {"name": "g", "model": "@local/smollm2-135m", "knowledge": {"strategy": "always"}},
            "knowledge.collections",
        ),
        (
            {
                "name": "g",
                "model": "@local/smollm2-135m",
                "functions": [
                    {"name": "f", "url": "http://x"},
                    {"name": "f", "url": "http://y"},
                ],
            },
            "functions.1.name",
        ),
        (
            {
                "name": "g",
                "model": "@local/smollm2-135m",
                "functions": [{"name": "f", "url": "http://x", "parameters": {"type": 5}}],
            },
            "functions.0.parameters",
        ),
        ({"name": "g", "model": "@local/smollm2-135m", "surprise": 1}, "surprise"),
    ],
)
def test_gateway_validation(account: Account, spec: dict, param: str) -> None:
    """Every refusal names the field to change, so that a form can show it beside it."""
    with account.http() as client:
        response = client.post("/gateways", json=spec)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["param"] == param
        assert client.get("/gateways").json()["data"] == []  # nothing was written


def test_gateway_names_are_unique_per_account(account: Account, other_account: Account) -> None:
    account.create_gateway(name="same")
    other_account.create_gateway(name="same")  # another account may reuse it
    with account.http() as client:
        response = client.post("/gateways", json={"name": "same", "model": "@local/smollm2-135m"})
    assert response.status_code == 409


def test_patch_merges_and_switches_upstream(account: Account) -> None:
    gateway = account.create_gateway(parameters={"temperature": 0.3, "max_tokens": 50})
    with account.http() as client:
        patched = client.patch(
            f"/gateways/{gateway['id']}", json={"parameters": {"temperature": 0.9}}
        ).json()
        assert patched["parameters"]["temperature"] == 0.9
        assert patched["parameters"]["max_tokens"] == 50  # merged, not replaced
        assert patched["endpoint"]["api_key_set"] is True  # the stored key is kept
        # change the upstream model but keep the key
        patched = client.patch(f"/gateways/{gateway['id']}", json={"endpoint": {"model": "plain"}})
        assert patched.json()["endpoint"]["api_key_set"] is True
        switched = client.patch(
            f"/gateways/{gateway['id']}", json={"model": "@local/smollm2-135m"}
        ).json()
        assert switched["model"] == "@local/smollm2-135m"
        assert switched["endpoint"] is None
        bad = client.patch(f"/gateways/{gateway['id']}", json={"parameters": {"top_p": 7}})
        assert bad.status_code == 400
        assert client.get(f"/gateways/{gateway['id']}").json()["parameters"]["top_p"] is None


def test_patch_takes_effect_on_the_next_request(account: Account) -> None:
    gateway = account.create_gateway(instructions="first")
    client = account.openai()
    ask = lambda: client.chat.completions.create(  # noqa: E731
        model=gateway["id"], messages=[{"role": "user", "content": "Q"}]
    )
    assert '"first"' in ask().choices[0].message.content
    with account.http() as http:
        http.patch(f"/gateways/{gateway['id']}", json={"instructions": "second"})
    assert '"second"' in ask().choices[0].message.content


def test_delete_gateway(account: Account) -> None:
    gateway = account.create_gateway()
    with account.http() as client:
        assert client.delete(f"/gateways/{gateway['slug']}").status_code == 204
        assert client.get(f"/gateways/{gateway['id']}").status_code == 404


def test_private_upstreams_are_refused_unless_allowed(tmp_path) -> None:
    from alicerce.errors import InvalidRequest
    from alicerce.security import check_upstream_url

    for url in (
        "http://127.0.0.1:8000/v1",
        "http://10.0.0.5/v1",
        "http://[::1]/v1",
        "http://169.254.169.254/latest",
        "http://localhost:1234/v1",
    ):
        with pytest.raises(InvalidRequest) as caught:
            check_upstream_url(url, allow_private=False, param="endpoint.base_url")
        assert caught.value.param == "endpoint.base_url"
    assert check_upstream_url("http://10.0.0.5/v1/", allow_private=True, param="p") == (
        "http://10.0.0.5/v1"
    )
    assert check_upstream_url("https://93.184.215.14/v1", allow_private=False, param="p")


def test_models_list_shows_gateways_and_catalog(account: Account) -> None:
    gateway = account.create_gateway()
    models = account.openai().models.list()
    ids = [m.id for m in models]
    assert gateway["slug"] in ids
    assert "@local/smollm2-135m" in ids
    one = account.openai().models.retrieve("@local/smollm2-135m")
    assert one.id == "@local/smollm2-135m"
    with account.http() as client:
        encoded = client.get("/models/%40local%2Fsmollm2-135m")
    assert encoded.status_code == 200 and encoded.json()["id"] == "@local/smollm2-135m"


def test_the_catalog_lists_each_model_with_its_kind_and_prices(
    alicerce: Alicerce, account: Account
) -> None:
    with account.http() as client:
        answer = client.get("/catalog").json()
    assert answer["object"] == "list" and answer["currency"] == "USD"
    models = {m["id"]: m for m in answer["data"]}
    assert models["@mock/priced"] == {
        "id": "@mock/priced", "object": "model", "created": 0, "owned_by": "mock",
        "kind": "chat", "price_in": 2.5, "price_out": 10, "price_cached_in": 1.25,
        "context_length": None, "dimensions": None,
    }  # fmt: skip
    assert models["@mock/plain"]["price_cached_in"] == 0.15  # the file's price_in by default
    assert (models["@mock/embed"]["kind"], models["@mock/embed"]["dimensions"]) == ("embedding", 8)
    assert models["@local/smollm2-135m"]["kind"] == "chat"
    assert models["@local/multilingual-e5-small"]["kind"] == "embedding"
    # the console's root key acting for the account sees it too; other keys do not
    with alicerce.http(alicerce.root_key) as client:
        acting = client.get("/catalog", headers={"x-alicerce-account": account.id})
        assert acting.status_code == 200 and acting.json() == answer
        assert client.get("/catalog").status_code == 403
    with account.http(account.create_key(role="inference")) as client:
        assert client.get("/catalog").status_code == 403


def test_me_tells_each_key_what_it_is(alicerce: Alicerce, account: Account) -> None:
    with alicerce.http(alicerce.root_key) as client:
        assert client.get("/me").json() == {
            "object": "principal",
            "role": "root",
            "key": None,
            "account": None,
        }
    with account.http() as client:
        me = client.get("/me").json()
        accounts = client.get("/keys").json()["data"]
    assert me["role"] == "admin" and me["account"]["id"] == account.id
    assert me["key"]["id"] in {k["id"] for k in accounts}
    inference = account.create_key(name="app", role="inference")
    with account.http(inference) as client:
        assert client.get("/me").json()["role"] == "inference"
    with alicerce.http("alc_nope") as client:
        assert client.get("/me").status_code == 401


def test_the_root_key_acts_for_the_account_its_header_names(
    alicerce: Alicerce, account: Account, other_account: Account
) -> None:
    account.create_gateway(name="only-here")
    with alicerce.http(alicerce.root_key) as client:
        refused = client.get("/gateways")
        assert refused.status_code == 403
        assert "X-Alicerce-Account" in refused.json()["error"]["message"]
        mine = client.get("/gateways", headers={"x-alicerce-account": account.id}).json()
        theirs = client.get("/gateways", headers={"x-alicerce-account": other_account.id})
        unknown = client.get("/gateways", headers={"x-alicerce-account": "acct_missing"})
    assert [g["name"] for g in mine["data"]] == ["only-here"]
    assert theirs.json()["data"] == []
    assert unknown.status_code == 404
    with account.http() as client:  # an admin key cannot reach another account with it
        other = client.get("/gateways", headers={"x-alicerce-account": other_account.id})
    assert [g["name"] for g in other.json()["data"]] == ["only-here"]
