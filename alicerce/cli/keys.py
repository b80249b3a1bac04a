"""`alicerce keys`: an account's API keys (what its admin key does through `/api/v1/keys`)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import click

from alicerce.cli import refs
from alicerce.cli.context import opened
from alicerce.cli.output import (
    currency_of,
    emit,
    fields,
    json_option,
    listing,
    money,
    table,
    when,
    yes_option,
)

if TYPE_CHECKING:
    from alicerce.cli.context import Parts

_COLUMNS = ("id", "name", "role", "prefix", "gateways", "rpm", "tpm", "monthly_budget")
_CLEARABLE = ("gateways", "rpm", "tpm", "monthly_budget", "expires_at")


@click.group(help="Manage an account's API keys.")
def keys() -> None:
    pass


def _reader(parts: Parts, account_id: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """How this account's keys read to people (`_human`), with what that needs read now, while
    the parts are open."""
    slugs = {g["id"]: g["slug"] for g in parts.gateways.list(account_id)}
    currency = currency_of(parts.catalog)
    return lambda key: _human(key, slugs, currency)


def _human(key: dict[str, Any], slugs: dict[str, str], currency: str | None) -> dict[str, Any]:
    """A key as people read it: its gateways by slug, its budget with the currency."""
    gateways = key["gateways"]
    return key | {
        "gateways": "all" if gateways is None else ", ".join(slugs.get(g, g) for g in gateways),
        "monthly_budget": money(key["monthly_budget"], currency),
    }


@keys.command("list", help="List the keys of ACCOUNT (an id or a name).")
@refs.account_argument
@refs.account_option
@json_option
def keys_list(account_arg: str | None, account: str | None, as_json: bool) -> None:
    with opened() as parts:
        owner = refs.account(parts, refs.either(account_arg, account))
        found = parts.keys.list_keys(owner["id"])
        human = _reader(parts, owner["id"])
    shown = [human(k) for k in found]
    rows = [
        [
            *(k[c] for c in _COLUMNS),
            when(k["created_at"]),
            k["expires_at"] and when(k["expires_at"]),
        ]
        for k in shown
    ]
    header = ["id", "name", "role", "prefix", "gateways", "rpm", "tpm", "budget", "created"]
    header.append("expires")
    emit(listing(found), as_json, lambda: table(rows, header))


@keys.command("show", help="Show KEY (an id or a name) of an account.")
@click.argument("key")
@refs.account_option
@json_option
def keys_show(key: str, account: str | None, as_json: bool) -> None:
    with opened() as parts:
        owner = refs.account(parts, account)
        found = refs.key(parts, owner, key)
        human = _reader(parts, owner["id"])
    emit(found, as_json, lambda: fields(human(found)))


@keys.command("create", help="Create a key for ACCOUNT (an id or a name); prints the secret once.")
@refs.account_argument
@refs.account_option
@click.option("--name", default="cli", show_default=True)
@click.option("--role", type=click.Choice(["admin", "inference"]), default="inference")
@click.option(
    "--gateway", "gateways", multiple=True, help="Only this gateway: id, slug or name (repeat)."
)
@click.option("--rpm", type=int, help="Requests per minute at most.")
@click.option("--tpm", type=int, help="Tokens per minute at most.")
@click.option("--monthly-budget", type=Decimal, help="Spending per calendar month (UTC) at most.")
@click.option("--expires-at", help="Refused from then on: RFC 3339 or Unix seconds.")
@json_option
def keys_create(
    account_arg: str | None,
    account: str | None,
    name: str,
    role: str,
    gateways: tuple[str, ...],
    rpm: int | None,
    tpm: int | None,
    monthly_budget: Decimal | None,
    expires_at: str | None,
    as_json: bool,
) -> None:
    from alicerce.keys import KeyCreate
    from alicerce.validation import parse_body

    body = {"name": name, "role": role, "rpm": rpm, "tpm": tpm, "monthly_budget": monthly_budget}
    body |= {"expires_at": expires_at}
    with opened() as parts:
        owner = refs.account(parts, refs.either(account_arg, account))
        refs_given = list(gateways) or None  # ids or slugs: the key service resolves them
        spec = parse_body(KeyCreate, body | {"gateways": refs_given})
        created = parts.keys.create_key(owner["id"], spec)

    def human() -> None:
        click.echo(f"Key {created['name']!r} ({created['role']}) created: {created['id']}")
        click.echo(f"Secret (shown once): {created['key']}")

    emit(created, as_json, human)


@keys.command(
    "delete", help="Revoke KEY (an id or a name); servers refuse it within their cache TTL (5 s)."
)
@click.argument("key")
@refs.account_option
@yes_option
def keys_delete(key: str, account: str | None, yes: bool) -> None:
    with opened() as parts:
        owner = refs.account(parts, account)
        found = refs.key(parts, owner, key)
        what = f"key {found['name']!r} ({found['id']}) of account {owner['name']!r}"
        if not yes:
            click.confirm(f"Revoke {what}?", abort=True)
        parts.keys.delete_key(owner["id"], found["id"])
    click.echo(f"Revoked {what}.")


@keys.command(
    "update",
    help="""Change KEY (an id or a name) without a new secret; what is not given stays.

    The options set a field; `--clear FIELD` (repeat) removes a limit, the gateway list (the key
    may then call any gateway) or the expiry. `--patch FILE` (`-`: standard input) takes the JSON
    merge patch that `PATCH /api/v1/keys/{id}` takes, e.g. `{"rpm": 120, "expires_at": null}`.
    A past `--expires-at` suspends the key at once.""",
)
@click.argument("key")
@refs.account_option
@click.option("--name", help="A new name.")
@click.option("--role", type=click.Choice(["admin", "inference"]))
@click.option(
    "--gateway", "gateways", multiple=True, help="Only this gateway: id, slug or name (repeat)."
)
@click.option("--rpm", type=int, help="Requests per minute at most.")
@click.option("--tpm", type=int, help="Tokens per minute at most.")
@click.option("--monthly-budget", type=Decimal, help="Spending per calendar month (UTC) at most.")
@click.option("--expires-at", help="Refused from then on: RFC 3339 or Unix seconds.")
@click.option("--clear", "cleared", multiple=True, type=click.Choice(_CLEARABLE))
@click.option("--patch", "patch_file", help="A JSON merge patch from this file (`-`: stdin).")
@json_option
def keys_update(
    key: str,
    account: str | None,
    name: str | None,
    role: str | None,
    gateways: tuple[str, ...],
    rpm: int | None,
    tpm: int | None,
    monthly_budget: Decimal | None,
    expires_at: str | None,
    cleared: tuple[str, ...],
    patch_file: str | None,
    as_json: bool,
) -> None:
    from alicerce.cli.context import read_json

    patch: dict[str, Any] = read_json(patch_file, "patch") if patch_file else {}
    if not isinstance(patch, dict):
        raise click.ClickException("the patch must be a JSON object")
    given: dict[str, Any] = {"name": name, "role": role, "gateways": list(gateways) or None}
    given |= {"rpm": rpm}
    given |= {"tpm": tpm, "monthly_budget": monthly_budget, "expires_at": expires_at}
    patch |= {field: value for field, value in given.items() if value is not None}
    patch |= dict.fromkeys(cleared)
    if not patch:
        raise click.ClickException("nothing to change: give an option, --clear or --patch")
    with opened() as parts:
        owner = refs.account(parts, account)
        found = refs.key(parts, owner, key)
        changed = parts.keys.update(owner["id"], found["id"], patch)
        human = _reader(parts, owner["id"])
    emit(changed, as_json, lambda: fields(human(changed)))
