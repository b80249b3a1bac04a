"""The key service: gateway references of a new key resolved through the gateways it is
given, their cache emptied when an account goes, accounts found by id or name; keys changed
by a merge patch (`KeyService.update`, `PATCH /keys/{id}`) without a new secret, and expiring."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest

from alicerce.errors import AuthenticationFailed, InvalidRequest, NotFound
from alicerce.keys import MAX_RATE, AccountCreate, KeyCreate, KeyService, Principal
from alicerce.store import Database
from tests.conftest import Account

GATEWAYS = {"bot": "g-1", "bot:abcd": "g-1", "g-2": "g-2"}  # one account's, by reference


class FakeGateways:
    """The two things the key service asks of the gateways."""

    def __init__(self) -> None:
        self.account = ""  # whose gateways GATEWAYS are
        self.asked: list[tuple[str, str]] = []
        self.forgotten = 0

    def id_of(self, account_id: str, ref: str) -> str | None:
        self.asked.append((account_id, ref))
        return GATEWAYS.get(ref) if account_id == self.account else None

    def forget(self) -> None:
        self.forgotten += 1


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def gateways() -> FakeGateways:
    return FakeGateways()


@pytest.fixture
def keys(db: Database, gateways: FakeGateways) -> KeyService:
    return KeyService(
        db,
        root_key=None,
        cache_ttl_s=60,
        gateway_id=gateways.id_of,
        forget_gateways=gateways.forget,
    )


def test_a_keys_gateways_are_stored_as_ids(keys: KeyService, gateways: FakeGateways) -> None:
    account = keys.create_account(AccountCreate(name="acme"))["id"]
    gateways.account = account
    created = keys.create_key(account, KeyCreate(name="k", gateways=["bot:abcd", "g-2"]))
    assert created["gateways"] == ["g-1", "g-2"]
    assert gateways.asked == [(account, "bot:abcd"), (account, "g-2")]
    principal = keys.authenticate(created["key"])
    assert principal.gateways == frozenset({"g-1", "g-2"})
    assert [k["gateways"] for k in keys.list_keys(account)] == [None, ["g-1", "g-2"]]


def test_no_list_asks_nothing_and_an_empty_list_allows_nothing(
    keys: KeyService, gateways: FakeGateways
) -> None:
    account = keys.create_account(AccountCreate(name="acme"))["id"]
    assert keys.create_key(account, KeyCreate(name="any"))["gateways"] is None
    assert keys.create_key(account, KeyCreate(name="none", gateways=[]))["gateways"] == []
    assert gateways.asked == []


def test_an_unknown_gateway_is_refused_and_nothing_is_stored(
    keys: KeyService, gateways: FakeGateways
) -> None:
    account = keys.create_account(AccountCreate(name="acme"))["id"]
    gateways.account = account
    with pytest.raises(InvalidRequest) as caught:
        keys.create_key(account, KeyCreate(name="k", gateways=["bot", "theirs"]))
    assert caught.value.message == "gateways.1: no gateway 'theirs' in this account."
    assert caught.value.param == "gateways.1"
    assert len(keys.list_keys(account)) == 1  # the account's first admin key only


def test_deleting_an_account_empties_the_gateways_cache(
    keys: KeyService, gateways: FakeGateways
) -> None:
    account = keys.create_account(AccountCreate(name="acme"))["id"]
    keys.delete_key(account, keys.list_keys(account)[0]["id"])
    assert gateways.forgotten == 0  # a key's gateways are ids: nothing of theirs is cached
    keys.delete_account(account)
    assert gateways.forgotten == 1


def test_accounts_are_found_by_id_or_name(keys: KeyService) -> None:
    acme = keys.create_account(AccountCreate(name="acme"))
    other = keys.create_account(AccountCreate(name="other"))
    assert keys.find_account(acme["id"]) == keys.get_account(acme["id"])
    assert keys.find_account("other") == keys.get_account(other["id"])
    assert keys.find_account("nobody") is None


# -- changing a key ------------------------------------------------------------------------


def _account_with_gateways(keys: KeyService, gateways: FakeGateways) -> str:
    account = keys.create_account(AccountCreate(name="acme"))["id"]
    gateways.account = account
    return account  # type: ignore[no-any-return]


def test_an_update_changes_what_it_names_and_keeps_the_secret(
    keys: KeyService, gateways: FakeGateways
) -> None:
    account = _account_with_gateways(keys, gateways)
    created = keys.create_key(
        account, KeyCreate(name="k", rpm=10, tpm=500, monthly_budget=5, gateways=["g-2"])
    )
    assert keys.authenticate(created["key"]).rpm == 10  # now cached
    view = keys.update(
        account,
        created["id"],
        {"name": "renamed", "rpm": 20, "monthly_budget": None, "gateways": ["bot:abcd"]},
    )
    assert view["name"] == "renamed" and view["prefix"] == created["prefix"]
    assert (view["rpm"], view["tpm"], view["monthly_budget"]) == (20, 500, None)
    assert view["gateways"] == ["g-1"]  # a slug, stored as the id
    principal = keys.authenticate(created["key"])  # the same secret, no stale cache entry
    assert (principal.rpm, principal.tpm, principal.monthly_budget) == (20, 500, None)
    assert principal.gateways == frozenset({"g-1"})
    cleared = keys.update(account, created["id"], {"gateways": None, "tpm": None})
    assert cleared["gateways"] is None and cleared["tpm"] is None and cleared["rpm"] == 20
    assert keys.list_keys(account)[1] == cleared


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"rpm": 0}, "rpm"),
        ({"rpm": MAX_RATE + 1}, "rpm"),  # refused before SQLite's 64-bit integer overflows
        ({"tpm": 10**30}, "tpm"),
        ({"tpm": "many"}, "tpm"),
        ({"monthly_budget": -1}, "monthly_budget"),
        ({"monthly_budget": 1e13}, "monthly_budget"),
        ({"monthly_budget": "0.0000000000001"}, "monthly_budget"),
        ({"monthly_budget": "NaN"}, "monthly_budget"),
        ({"expires_at": "next tuesday"}, "expires_at"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"role": None}, "role"),
        ({"role": "root"}, "role"),
        ({"key": "alc_mine"}, "key"),  # the secret is never changed
        ({"gateways": ["bot", "theirs"]}, "gateways.1"),
    ],
)
def test_a_bad_update_is_refused_naming_the_field_and_changes_nothing(
    keys: KeyService, gateways: FakeGateways, patch: dict[str, Any], param: str
) -> None:
    account = _account_with_gateways(keys, gateways)
    created = keys.create_key(account, KeyCreate(name="k", rpm=10))
    before = keys.list_keys(account)
    with pytest.raises(InvalidRequest) as caught:
        keys.update(account, created["id"], patch)
    assert caught.value.param == param
    assert keys.list_keys(account) == before


def test_another_accounts_key_cannot_be_updated(keys: KeyService) -> None:
    mine = keys.create_account(AccountCreate(name="mine"))["id"]
    theirs = keys.create_account(AccountCreate(name="theirs"))["id"]
    their_key = keys.list_keys(theirs)[0]["id"]
    with pytest.raises(NotFound):
        keys.update(mine, their_key, {"name": "taken"})
    with pytest.raises(NotFound):
        keys.update(mine, "no-such-key", {"name": "x"})
    assert keys.list_keys(theirs)[0]["name"] == "admin key"


def test_a_lookup_that_an_update_overtakes_is_not_cached(
    db: Database, gateways: FakeGateways
) -> None:
    """A request whose key was read just before a change must not keep the old key cached
    for the whole TTL: the change would then not take effect at once in this process."""

    class Racing(KeyService):
        change: dict[str, Any] | None = None

        def _lookup(self, key_hash: str) -> Principal | None:
            principal = super()._lookup(key_hash)  # read before the change is committed
            if self.change is not None:
                change, self.change = self.change, None
                self.update(account, created["id"], change)
            return principal

    keys = Racing(
        db, root_key=None, cache_ttl_s=60, gateway_id=gateways.id_of, forget_gateways=lambda: None
    )
    account = keys.create_account(AccountCreate(name="acme"))["id"]
    created = keys.create_key(account, KeyCreate(name="k", rpm=10))
    keys.change = {"rpm": 99}
    assert keys.authenticate(created["key"]).rpm == 10  # what it read
    assert keys.authenticate(created["key"]).rpm == 99  # not the stale read, cached


# -- expiry --------------------------------------------------------------------------------


def test_a_key_is_refused_from_its_expiry_on_even_when_cached(
    db: Database, gateways: FakeGateways
) -> None:
    now = [time.time()]
    keys = KeyService(
        db,
        root_key=None,
        cache_ttl_s=3600,
        gateway_id=gateways.id_of,
        forget_gateways=lambda: None,
        clock=lambda: now[0],
    )
    account = keys.create_account(AccountCreate(name="acme"))["id"]
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    created = keys.create_key(account, KeyCreate(name="k", expires_at=expiry))
    assert created["expires_at"] == expiry.isoformat().replace("+00:00", "Z")
    assert keys.authenticate(created["key"]).expires_at == expiry.timestamp()
    now[0] = expiry.timestamp() - 0.001
    assert keys.cached(created["key"]) is not None
    now[0] = expiry.timestamp()
    with pytest.raises(AuthenticationFailed) as caught:
        keys.cached(created["key"])  # the cached principal: no query
    assert caught.value.code == "key_expired" and caught.value.status == 401
    assert expiry.isoformat().replace("+00:00", "Z") in caught.value.message
    keys.update(account, created["id"], {"expires_at": None})  # never, again
    assert keys.authenticate(created["key"]).expires_at is None


def test_expiries_are_read_as_utc_and_a_new_key_must_expire_in_the_future(
    keys: KeyService,
) -> None:
    account = keys.create_account(AccountCreate(name="acme"))["id"]
    key = keys.create_key(account, KeyCreate(name="k"))
    assert key["expires_at"] is None
    shown = keys.update(account, key["id"], {"expires_at": "2031-05-01T12:00:00+02:00"})
    assert shown["expires_at"] == "2031-05-01T10:00:00Z"
    naive = keys.update(account, key["id"], {"expires_at": "2031-05-01T12:00:00"})
    assert naive["expires_at"] == "2031-05-01T12:00:00Z"
    unix = keys.update(account, key["id"], {"expires_at": 1_956_528_000})
    assert unix["expires_at"] == "2032-01-01T00:00:00Z"
    with pytest.raises(ValueError, match="must be in the future"):
        KeyCreate(name="late", expires_at=datetime(2020, 1, 1, tzinfo=UTC))


# -- through the API ---------------------------------------------------------------------


def _key(account: Account, **spec: Any) -> dict[str, Any]:
    with account.http() as client:
        response = client.post("/keys", json={"name": "k", "role": "inference"} | spec)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _ask(client: openai.OpenAI, model: str) -> None:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Q"}])


def test_raising_a_limit_takes_effect_at_once_with_the_same_secret(account: Account) -> None:
    gateway = account.create_gateway()
    key = _key(account, rpm=1)
    client = account.openai(key["key"])
    _ask(client, gateway["id"])
    with pytest.raises(openai.RateLimitError):
        _ask(client, gateway["id"])
    with account.http() as admin:
        patched = admin.patch(f"/keys/{key['id']}", json={"rpm": None, "name": "unlimited"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["rpm"] is None and "key" not in patched.json()
    _ask(client, gateway["id"])
    _ask(client, gateway["id"])


def test_a_patch_moves_a_key_to_other_gateways(account: Account, other_account: Account) -> None:
    first, second = account.create_gateway(), account.create_gateway()
    theirs = other_account.create_gateway()
    key = _key(account, gateways=[first["id"]])
    client = account.openai(key["key"])
    with account.http() as admin:
        moved = admin.patch(f"/keys/{key['id']}", json={"gateways": [second["slug"]]})
        assert moved.json()["gateways"] == [second["id"]]
        with pytest.raises(openai.PermissionDeniedError):
            _ask(client, first["id"])
        _ask(client, second["id"])
        refused = admin.patch(f"/keys/{key['id']}", json={"gateways": [theirs["id"]]})
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "gateways.0"
        their_key = other_account.http().get("/keys").json()["data"][0]["id"]
        assert admin.patch(f"/keys/{their_key}", json={"name": "x"}).status_code == 404


def test_bad_patches_and_creations_are_400_with_param(account: Account) -> None:
    key = _key(account)
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    with account.http() as admin:
        for body, param in [
            ({"rpm": 10**12}, "rpm"),
            ({"tpm": -5}, "tpm"),
            ({"monthly_budget": "lots"}, "monthly_budget"),
            ({"expires_at": "soon"}, "expires_at"),
            ({"prefix": "alc_x"}, "prefix"),
        ]:
            for response in (
                admin.patch(f"/keys/{key['id']}", json=body),
                admin.post("/keys", json={"name": "n"} | body),
            ):
                assert response.status_code == 400, (body, response.text)
                error = response.json()["error"]
                assert error["type"] == "invalid_request_error" and error["param"] == param
        late = admin.post("/keys", json={"name": "late", "expires_at": past})
        assert late.status_code == 400 and late.json()["error"]["param"] == "expires_at"
        assert admin.patch(f"/keys/{key['id']}", content=b"[1]").status_code == 400


def test_an_expired_key_gets_401_key_expired_until_its_expiry_moves(account: Account) -> None:
    gateway = account.create_gateway()
    later = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    key = _key(account, expires_at=later.isoformat())
    shown = later.isoformat().replace("+00:00", "Z")
    assert key["expires_at"] == shown
    with account.http() as admin:
        listed = {k["id"]: k for k in admin.get("/keys").json()["data"]}
        assert listed[key["id"]]["expires_at"] == shown
        client = account.openai(key["key"])
        _ask(client, gateway["id"])
        past = datetime.now(UTC) - timedelta(seconds=1)
        assert admin.patch(f"/keys/{key['id']}", json={"expires_at": past.isoformat()}).is_success
        with pytest.raises(openai.AuthenticationError) as caught:
            _ask(client, gateway["id"])
        assert caught.value.status_code == 401
        assert caught.value.body["code"] == "key_expired"  # type: ignore[index]
        assert caught.value.body["type"] == "authentication_error"  # type: ignore[index]
        assert "expired at" in caught.value.body["message"]  # type: ignore[index]
        assert admin.patch(f"/keys/{key['id']}", json={"expires_at": None}).is_success
    _ask(client, gateway["id"])


def test_an_expired_admin_key_manages_nothing(account: Account) -> None:
    admin_key = _key(account, role="admin")
    with account.http() as admin:
        past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        assert admin.patch(f"/keys/{admin_key['id']}", json={"expires_at": past}).is_success
    with account.http(admin_key["key"]) as expired:
        response = expired.get("/keys")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "key_expired"
