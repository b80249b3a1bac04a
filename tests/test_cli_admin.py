"""`alicerce accounts`, `keys` and `gateways` from a shell: list, show, create, update and
delete, everything named by id or name, and `--json` exactly as the API answers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2 as httpx
import pytest

from alicerce.api import create_app
from alicerce.errors import AuthenticationFailed
from alicerce.services import Services
from alicerce.settings import Settings
from tests.cli_helpers import Cli, cli_environment
from tests.servers import ServerThread

BOT = json.dumps({"name": "bot", "model": "@local/smollm2-135m"})


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    cli_environment(tmp_path, monkeypatch)
    return Cli()


def test_an_account_by_id_or_name_from_creation_to_deletion(cli: Cli) -> None:
    created = cli.json("accounts", "create", "acme")
    assert created["object"] == "account" and created["admin_key"].startswith("alc_")
    told = cli.ok("accounts", "create", "zeta")
    assert "Account 'zeta' created" in told and "Admin key (shown once" in told
    listed = cli.json("accounts", "list")
    assert listed["object"] == "list"
    assert [a["name"] for a in listed["data"]] == ["acme", "zeta"]
    account = {k: v for k, v in created.items() if k != "admin_key"}
    assert cli.json("accounts", "show", "acme") == cli.json("accounts", "show", created["id"])
    assert cli.json("accounts", "show", "acme") == account
    assert created["id"] in cli.ok("accounts", "list")
    assert "gateways:    0" in cli.ok("accounts", "show", "acme")

    renamed = cli.json("accounts", "update", "acme", "--name", "acme-corp")
    assert renamed["id"] == created["id"] and renamed["name"] == "acme-corp"
    assert "No account 'acme'." in cli.fails("accounts", "show", "acme")
    assert "name:" in cli.fails("accounts", "update", "acme-corp", "--name", "")

    kept = cli.run("accounts", "delete", "acme-corp", input="n\n")  # it asks first
    assert kept.exit_code == 1 and "Aborted" in kept.output
    assert cli.json("accounts", "show", "acme-corp")["id"] == created["id"]
    assert "Deleted account 'acme-corp'" in cli.ok("accounts", "delete", "acme-corp", "--yes")
    assert [a["name"] for a in cli.json("accounts", "list")["data"]] == ["zeta"]


def test_a_name_that_several_share_is_an_error_that_lists_them(cli: Cli) -> None:
    first = cli.json("accounts", "create", "beta")
    second = cli.json("accounts", "create", "beta")
    message = cli.fails("accounts", "show", "beta")
    assert "2 accounts have the name 'beta'; name one by its id" in message
    assert first["id"] in message and second["id"] in message
    assert cli.json("accounts", "show", second["id"])["id"] == second["id"]
    assert "say which account with --account" in cli.fails("gateways", "list")

    for _ in range(2):
        cli.ok("keys", "create", "-a", first["id"], "--name", "ci")
    message = cli.fails("keys", "show", "ci", "-a", first["id"])
    assert "2 keys in account 'beta' have the name 'ci'" in message
    ids = [k["id"] for k in cli.json("keys", "list", first["id"])["data"] if k["name"] == "ci"]
    assert all(key_id in message for key_id in ids)
    assert cli.json("keys", "show", ids[1], "-a", first["id"])["id"] == ids[1]


def test_the_only_account_needs_no_naming(cli: Cli) -> None:
    cli.json("accounts", "create", "solo")
    created = cli.json("gateways", "create", input=BOT)  # the definition on standard input
    assert [g["id"] for g in cli.json("gateways", "list")["data"]] == [created["id"]]
    assert cli.json("gateways", "show", "bot")["id"] == created["id"]


def test_keys_listed_shown_and_revoked_by_name(cli: Cli) -> None:
    account = cli.json("accounts", "create", "acme")
    gateway = cli.json("gateways", "create", "acme", "-", input=BOT)
    created = cli.json(
        "keys", "create", "acme", "--name", "ci", "--gateway", "bot", "--rpm", "60",
        "--monthly-budget", "12.5",
    )  # fmt: skip
    assert created["key"].startswith("alc_") and created["gateways"] == [gateway["id"]]
    assert (created["rpm"], created["monthly_budget"]) == (60, 12.5)
    listed = cli.json("keys", "list", "acme")["data"]
    assert [k["name"] for k in listed] == ["admin key", "ci"]
    assert all("key" not in k for k in listed)  # the secret is shown once, at creation
    assert cli.json("keys", "show", "ci", "-a", "acme") == {
        k: v for k, v in created.items() if k != "key"
    }
    shown = cli.ok("keys", "show", created["id"], "-a", "acme")
    assert f"gateways:       {gateway['slug']}" in shown and "monthly_budget: 12.5" in shown
    table = cli.ok("keys", "list", "-a", "acme")
    assert gateway["slug"] in table and " all " in table  # the admin key: every gateway

    changed = cli.json(
        "keys", "update", "ci", "-a", "acme", "--rpm", "120", "--clear", "monthly_budget",
        "--expires-at", "2031-01-01T00:00:00Z", "--clear", "gateways",
    )  # fmt: skip
    assert (changed["rpm"], changed["monthly_budget"], changed["gateways"]) == (120, None, None)
    assert (
        changed["expires_at"] == "2031-01-01T00:00:00Z" and changed["prefix"] == created["prefix"]
    )
    patched = cli.json("keys", "update", "ci", "-a", "acme", "--patch", "-", input='{"tpm": 9}')
    assert (patched["tpm"], patched["rpm"]) == (9, 120)
    assert "rpm" in cli.fails("keys", "update", "ci", "-a", "acme", "--rpm", "0")
    assert "nothing to change" in cli.fails("keys", "update", "ci", "-a", "acme")

    assert "Revoked key 'ci'" in cli.ok("keys", "delete", "ci", "-a", "acme", "-y")
    assert [k["name"] for k in cli.json("keys", "list", "acme")["data"]] == ["admin key"]
    services = Services.build(Settings())
    try:
        with pytest.raises(AuthenticationFailed):
            services.keys.authenticate(created["key"])
        assert services.keys.authenticate(account["admin_key"]).account_id == account["id"]
    finally:
        services.db.dispose()
    assert "No key 'ci' in account 'acme'." in cli.fails("keys", "delete", "ci", "-a", "acme")


def test_gateways_by_id_slug_or_name_from_creation_to_deletion(cli: Cli, tmp_path: Path) -> None:
    cli.json("accounts", "create", "acme")
    definition = tmp_path / "bot.json"
    spec = {"name": "bot", "model": "@local/smollm2-135m", "fallbacks": ["@local/smollm2-135m"]}
    definition.write_text(json.dumps(spec))
    created = cli.json("gateways", "create", "-a", "acme", str(definition))
    assert created["object"] == "gateway" and created["slug"].startswith("bot:")
    for ref in (created["id"], created["slug"], "bot"):
        assert cli.json("gateways", "show", ref) == created
    assert f"slug:         {created['slug']}" in cli.ok("gateways", "show", "bot")

    patch = tmp_path / "patch.json"  # a merge patch: objects merge, null clears
    patch.write_text(json.dumps({"parameters": {"temperature": 0.1}, "fallbacks": None}))
    updated = cli.json("gateways", "update", "bot", str(patch))
    assert updated["parameters"]["temperature"] == 0.1 and updated["fallbacks"] == []
    collection = cli.json("collections", "create", "manuals")
    grounded = {"knowledge": {"collections": ["manuals"], "strategy": "always"}}
    updated = cli.json("gateways", "update", created["slug"], "-", input=json.dumps(grounded))
    assert updated["knowledge"]["collections"] == [collection["id"]]  # the name became its id
    assert updated["parameters"]["temperature"] == 0.1
    assert "always (1 collection)" in cli.ok("gateways", "list")
    refused = cli.fails("gateways", "update", "bot", input='{"parameters": {"temperature": 9}}')
    assert "parameters.temperature" in refused

    assert "Deleted gateway 'bot:" in cli.ok("gateways", "delete", created["slug"], "--yes")
    assert cli.json("gateways", "list")["data"] == []
    assert "No gateway 'bot' in account 'acme'." in cli.fails("gateways", "show", "bot")


def test_the_commands_take_their_account_as_before_by_id_or_name(cli: Cli) -> None:
    acme = cli.json("accounts", "create", "acme")
    cli.json("accounts", "create", "other")
    created = cli.json("gateways", "create", acme["id"], input=BOT)  # ACCOUNT_ID < definition
    second = json.dumps({"name": "bot2", "model": "@local/smollm2-135m"})
    cli.json("gateways", "create", "acme", "-", input=second)
    listed = cli.json("gateways", "list", acme["id"])
    assert [g["name"] for g in listed["data"]] == ["bot", "bot2"]
    assert cli.json("gateways", "list", "acme") == cli.json("gateways", "list", "-a", "acme")
    key = cli.json("keys", "create", "acme", "--gateway", created["slug"])
    assert key["gateways"] == [created["id"]]
    assert "Total over 30 days: 0" in cli.ok("usage", "acme")
    assert "two accounts given" in cli.fails("gateways", "list", "acme", "--account", "other")


def test_bad_input_is_refused_with_a_message(cli: Cli, tmp_path: Path) -> None:
    account = cli.json("accounts", "create", "acme")
    assert "not JSON" in cli.fails("gateways", "create", account["id"], "-", input="{nope")
    invalid = '{"name": "x", "model": "@no/pe"}'
    assert "catalog" in cli.fails("gateways", "create", account["id"], "-", input=invalid)
    assert "No such file" in cli.fails("gateways", "create", "-a", "acme", str(tmp_path / "no"))
    assert "No account 'no-such-account'." in cli.fails("keys", "create", "no-such-account")
    no_gateway = cli.fails("keys", "create", account["id"], "--gateway", "nope")
    assert "no gateway 'nope' in this account" in no_gateway
    assert "monthly_budget" in cli.fails("keys", "create", "acme", "--monthly-budget", "-1")


def test_help_shows_the_json_shapes(cli: Cli) -> None:
    create = cli.ok("gateways", "create", "--help")
    assert '"name": "support-bot"' in create and '"model": "@openai/gpt-5-mini"' in create
    assert "`-` (the default) for standard input" in create and '"endpoint"' in create
    assert "merge patch" in cli.ok("gateways", "update", "--help")
    assert '"embedding"' in cli.ok("collections", "create", "--help")


def test_the_json_is_what_the_api_answers(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same database read through the API and through the CLI: the same objects."""
    monkeypatch.setenv("ALICERCE_ROOT_KEY", "alc_cli_root")
    account = cli.json("accounts", "create", "acme")
    gateway = cli.json("gateways", "create", "acme", input=BOT)
    cli.json("keys", "create", "acme", "--name", "ci", "--monthly-budget", "3")
    cli.json("collections", "create", "manuals", "--description", "How to")
    server = ServerThread(create_app(Settings())).start()
    try:
        api = httpx.Client(base_url=server.url + "/api/v1")
        root = {"authorization": "Bearer alc_cli_root"}
        admin = {"authorization": f"Bearer {account['admin_key']}"}
        assert api.get("/accounts", headers=root).json() == cli.json("accounts", "list")
        path = f"/accounts/{account['id']}"
        assert api.get(path, headers=root).json() == cli.json("accounts", "show", "acme")
        assert api.get("/keys", headers=admin).json() == cli.json("keys", "list", "acme")
        assert api.get("/gateways", headers=admin).json() == cli.json("gateways", "list", "acme")
        path = f"/gateways/{gateway['id']}"
        assert api.get(path, headers=admin).json() == cli.json("gateways", "show", "bot")
        collections = cli.json("collections", "list", "acme")
        assert api.get("/collections", headers=admin).json() == collections
        path = f"/collections/{collections['data'][0]['id']}/documents"
        assert api.get(path, headers=admin).json() == cli.json(
            "collections", "documents", "list", "manuals"
        )
    finally:
        server.stop()
