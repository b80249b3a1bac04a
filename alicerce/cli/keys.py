"""`alicerce keys`: an account's API keys (what its admin key does through `/api/v1/keys`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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

_COLUMNS = ("id", "name", "role", "prefix", "gateways", "rpm", "tpm", "monthly_budget")


@click.group(help="Manage an account's API keys.")
def keys() -> None:
    pass


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
    with opened() as services:
        owner = refs.account(services, refs.either(account_arg, account))
        found = services.keys.list_keys(owner["id"])
        slugs = {g["id"]: g["slug"] for g in services.gateways.list(owner["id"])}
        currency = currency_of(services.catalog)
    shown = [_human(k, slugs, currency) for k in found]
    rows = [[*(k[c] for c in _COLUMNS), when(k["created_at"])] for k in shown]
    header = ["id", "name", "role", "prefix", "gateways", "rpm", "tpm", "budget", "created"]
    emit(listing(found), as_json, lambda: table(rows, header))


@keys.command("show", help="Show KEY (an id or a name) of an account.")
@click.argument("key")
@refs.account_option
@json_option
def keys_show(key: str, account: str | None, as_json: bool) -> None:
    with opened() as services:
        owner = refs.account(services, account)
        found = refs.key(services, owner, key)
        slugs = {g["id"]: g["slug"] for g in services.gateways.list(owner["id"])}
        currency = currency_of(services.catalog)
    emit(found, as_json, lambda: fields(_human(found, slugs, currency)))


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
    as_json: bool,
) -> None:
    from alicerce.keys import KeyCreate
    from alicerce.validation import parse_body

    body = {"name": name, "role": role, "rpm": rpm, "tpm": tpm, "monthly_budget": monthly_budget}
    with opened() as services:
        owner = refs.account(services, refs.either(account_arg, account))
        refs_given = list(gateways) or None  # ids or slugs: the key service resolves them
        spec = parse_body(KeyCreate, body | {"gateways": refs_given})
        created = services.keys.create_key(owner["id"], spec)

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
    with opened() as services:
        owner = refs.account(services, account)
        found = refs.key(services, owner, key)
        what = f"key {found['name']!r} ({found['id']}) of account {owner['name']!r}"
        if not yes:
            click.confirm(f"Revoke {what}?", abort=True)
        services.keys.delete_key(owner["id"], found["id"])
    click.echo(f"Revoked {what}.")
