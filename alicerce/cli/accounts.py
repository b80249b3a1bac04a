"""`alicerce accounts`: the operator's tenants (what the root key does through the API)."""

from __future__ import annotations

import click

from alicerce.cli import refs
from alicerce.cli.context import opened
from alicerce.cli.output import (
    emit,
    fields,
    json_option,
    listing,
    print_json,
    table,
    when,
    yes_option,
)


@click.group(help="Manage accounts (the operator's work; the root key's through the API).")
def accounts() -> None:
    pass


@accounts.command("list", help="List the accounts.")
@json_option
def accounts_list(as_json: bool) -> None:
    with opened() as parts:
        found = parts.keys.list_accounts()
    rows = [[a["id"], a["name"], when(a["created_at"])] for a in found]
    emit(listing(found), as_json, lambda: table(rows, ["id", "name", "created"]))


@accounts.command("show", help="Show ACCOUNT (an id or a name) and what it holds.")
@click.argument("account")
@json_option
def accounts_show(account: str, as_json: bool) -> None:
    with opened() as parts:
        found = refs.account(parts, account)
        if as_json:
            print_json(found)
            return
        keys = len(parts.keys.list_keys(found["id"]))
        gateways = len(parts.gateways.list(found["id"]))
        collections = len(parts.collection_ids(found["id"]))
    fields(found | {"keys": keys, "gateways": gateways, "collections": collections})


@accounts.command("create", help="Create an account named NAME; prints its first admin key once.")
@click.argument("name")
@json_option
def accounts_create(name: str, as_json: bool) -> None:
    from alicerce.keys import AccountCreate
    from alicerce.validation import parse_body

    with opened() as parts:
        created = parts.keys.create_account(parse_body(AccountCreate, {"name": name}))

    def human() -> None:
        click.echo(f"Account {created['name']!r} created: {created['id']}")
        click.echo(f"Admin key (shown once; it manages the account): {created['admin_key']}")

    emit(created, as_json, human)


@accounts.command("update", help="Rename ACCOUNT (an id or a name).")
@click.argument("account")
@click.option("--name", required=True, help="The new name.")
@json_option
def accounts_update(account: str, name: str, as_json: bool) -> None:
    from alicerce.keys import AccountUpdate
    from alicerce.validation import parse_body

    with opened() as parts:
        found = refs.account(parts, account)
        spec = parse_body(AccountUpdate, {"name": name})
        updated = parts.keys.update_account(found["id"], spec)
    emit(updated, as_json, lambda: fields(updated))


@accounts.command("delete", help="Delete ACCOUNT with all its keys, gateways and collections.")
@click.argument("account")
@yes_option
def accounts_delete(account: str, yes: bool) -> None:
    with opened() as parts:
        found = refs.account(parts, account)
        what = f"account {found['name']!r} ({found['id']})"
        if not yes:
            click.confirm(f"Delete {what} with all its keys, gateways and collections?", abort=True)
        parts.keys.delete_account(found["id"])
    click.echo(f"Deleted {what}.")
