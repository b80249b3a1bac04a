"""The store suite, on both backends: SQLite (the embedded default) and a real PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from alicerce.catalog import Catalog
from alicerce.errors import AuthenticationFailed, Conflict, NotFound
from alicerce.gateways import GatewayService
from alicerce.keys import AccountCreate, KeyCreate, KeyService
from alicerce.security import CredentialCipher
from alicerce.store import Database


def _services(db: Database) -> tuple[KeyService, GatewayService]:
    gateways = GatewayService(
        db,
        CredentialCipher("secret"),
        Catalog.builtin,
        owned_collections=lambda account_id, ids: set(),  # no knowledge here
        allow_private_upstreams=True,
        cache_ttl_s=60,
    )
    keys = KeyService(
        db,
        root_key=None,
        cache_ttl_s=60,
        gateway_id=gateways.id_of,
        forget_gateways=gateways.forget_cached,
    )
    return keys, gateways


def test_accounts_and_keys(db: Database) -> None:
    keys, _ = _services(db)
    account = keys.create_account(AccountCreate(name="acme"))
    principal = keys.authenticate(account["admin_key"])
    assert principal.account_id == account["id"] and principal.role == "admin"
    created = keys.create_key(
        account["id"], KeyCreate(name="k", role="inference", monthly_budget=Decimal("12.50"))
    )
    inference = keys.authenticate(created["key"])
    assert inference.role == "inference"
    assert inference.monthly_budget == Decimal("12.50")
    assert len(keys.list_keys(account["id"])) == 2
    keys.delete_key(account["id"], created["id"])
    with pytest.raises(AuthenticationFailed):
        keys.authenticate(created["key"])
    with pytest.raises(NotFound):
        keys.delete_key(account["id"], created["id"])
    keys.delete_account(account["id"])
    with pytest.raises(AuthenticationFailed):
        keys.authenticate(account["admin_key"])


def test_root_key_is_stored_hashed(db: Database) -> None:
    keys, _ = _services(db)
    assert not keys.has_root_key()
    secret = keys.create_root_key()
    assert keys.has_root_key()
    assert keys.authenticate(secret).role == "root"
    with db.session() as session:
        hashes = session.execute(sa.text("SELECT key_hash FROM api_keys")).scalars().all()
    assert secret not in hashes


def test_gateways_crud_and_resolution(db: Database) -> None:
    keys, gateways = _services(db)
    account = keys.create_account(AccountCreate(name="a"))["id"]
    other = keys.create_account(AccountCreate(name="b"))["id"]
    gateway = gateways.create(
        account,
        {"name": "bot", "endpoint": {"base_url": "http://up/v1", "api_key": "sk-1", "model": "m"}},
    )
    resolved = gateways.resolve(account, gateway["slug"])
    assert resolved is not None and resolved.endpoint_api_key == "sk-1"
    assert gateways.resolve(account, "bot") == resolved
    assert gateways.resolve(other, gateway["id"]) is None
    with pytest.raises(Conflict):
        gateways.create(account, {"name": "bot", "model": "@local/smollm2-135m"})
    updated = gateways.update(account, gateway["id"], {"instructions": "hi"})
    assert updated["instructions"] == "hi"
    assert gateways.resolve(account, gateway["id"]).spec.instructions == "hi"  # cache dropped
    gateways.delete(account, gateway["id"])
    assert gateways.resolve(account, gateway["id"]) is None
    with pytest.raises(NotFound):
        gateways.delete(account, gateway["id"])


def test_deleting_an_account_deletes_its_gateways(db: Database) -> None:
    keys, gateways = _services(db)
    account = keys.create_account(AccountCreate(name="a"))["id"]
    gateways.create(account, {"name": "bot", "model": "@local/smollm2-135m"})
    keys.delete_account(account)
    with db.session() as session:
        assert session.execute(sa.text("SELECT count(*) FROM gateways")).scalar() == 0


def test_the_schema_revision_named_in_code_is_the_newest_migration() -> None:
    """`SCHEMA_REVISION` lets an up-to-date database skip Alembic; a migration it does not
    name would never be applied to such a database."""
    from alembic.script import ScriptDirectory

    from alicerce.store.database import SCHEMA_REVISION

    script = ScriptDirectory.from_config(Database("sqlite:///unused.db").alembic_config())
    assert script.get_heads() == [SCHEMA_REVISION]


def test_a_command_on_an_up_to_date_database_imports_no_alembic(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'a.db'}"
    Database(url).migrate()
    probe = (
        "import sys; from alicerce.store import Database; "
        "from alicerce.store.readiness import prepare_database; "
        f"db = Database({url!r}); prepare_database(db, create=False); db.migrate(); "
        "print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
