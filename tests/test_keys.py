"""The key service: gateway references of a new key resolved through the gateways it is
given, their cache emptied when an account goes, accounts found by id or name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alicerce.errors import InvalidRequest
from alicerce.keys import AccountCreate, KeyCreate, KeyService
from alicerce.store import Database

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
