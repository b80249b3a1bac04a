"""`alicerce gateways`: an account's gateways, defined by the JSON of SPEC section 2."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from alicerce.cli import refs
from alicerce.cli.context import opened, read_json
from alicerce.cli.output import (
    emit,
    fields,
    json_option,
    listing,
    plural,
    table,
    when,
    yes_option,
)

if TYPE_CHECKING:
    from alicerce.cli.context import Parts

DEFINITION_HELP = """Create a gateway for ACCOUNT (an id or a name) from DEFINITION, a file
with the gateway's JSON, or `-` (the default) for standard input.

\b
The definition (all but `name` and one of `model`/`endpoint` optional):
  {"name": "support-bot",
   "instructions": "You answer questions about Acme.",
   "model": "@openai/gpt-5-mini",
   "parameters": {"temperature": 0.3, "max_tokens": 1024},
   "knowledge": {"collections": ["manuals"], "strategy": "always", "top_k": 5},
   "fallbacks": ["@local/smollm2-135m"]}

`model` is a catalog model (`alicerce models`); instead of it, bring your own upstream
with "endpoint": {"base_url": "https://...", "api_key": "sk-...", "model": "..."}. Also:
`overridable`, `functions` (server-side tools), `routing` (with "model": "@auto").
`knowledge.strategy` is none, always, concatenate, rewrite or tool; its collections are
named by id or name (the gateway keeps their ids).

Prints the gateway as the API answers it, with its `id` and `slug` (name:xxxx).
"""

UPDATE_HELP = """Change GATEWAY (an id, a slug or a name) with PATCH, a JSON merge patch
(RFC 7396) in a file or `-` (the default) for standard input, as `PATCH /api/v1/gateways/{id}`
takes it: objects merge key by key, `null` clears a field.

\b
  echo '{"parameters": {"temperature": 0.1}, "fallbacks": null}' \\
    | alicerce gateways update support-bot -a acme -

Setting `model` drops `endpoint` and the other way round; an `endpoint` patch without
`api_key` keeps the stored key.
"""


@click.group(help="Manage an account's gateways.")
def gateways() -> None:
    pass


def _upstream(gateway: dict[str, Any]) -> str:
    endpoint = gateway.get("endpoint")
    if endpoint:
        return f"{endpoint['model']} at {endpoint['base_url']}"
    return str(gateway.get("model") or "")


def _knowledge(gateway: dict[str, Any]) -> str:
    knowledge = gateway.get("knowledge") or {}
    strategy = knowledge.get("strategy", "none")
    if strategy == "none":
        return ""
    return f"{strategy} ({plural(len(knowledge.get('collections', [])), 'collection')})"


@gateways.command("list", help="List the gateways of ACCOUNT (an id or a name).")
@refs.account_argument
@refs.account_option
@json_option
def gateways_list(account_arg: str | None, account: str | None, as_json: bool) -> None:
    with opened() as parts:
        owner = refs.account(parts, refs.either(account_arg, account))
        found = parts.gateways.list(owner["id"])
    rows = [[g["id"], g["slug"], _upstream(g), _knowledge(g), when(g["created_at"])] for g in found]
    header = ["id", "slug", "upstream", "knowledge", "created"]
    emit(listing(found), as_json, lambda: table(rows, header))


@gateways.command("show", help="Show GATEWAY (an id, a slug or a name) of an account.")
@click.argument("gateway")
@refs.account_option
@json_option
def gateways_show(gateway: str, account: str | None, as_json: bool) -> None:
    with opened() as parts:
        found = refs.gateway(parts, refs.account(parts, account), gateway)
    emit(found, as_json, lambda: fields(found))


def _account_and_definition(
    parts: Parts, args: tuple[str, ...], account: str | None
) -> tuple[dict[str, Any], str]:
    """`[ACCOUNT] [DEFINITION]`: with one argument and no --account, it is the account when
    one has that id or name (`gateways create acme < def.json`, as before), else the file."""
    if len(args) > 2:
        raise click.UsageError("at most two arguments: ACCOUNT and DEFINITION")
    if len(args) == 2:
        return refs.account(parts, refs.either(args[0], account)), args[1]
    if len(args) == 1 and account is None and args[0] != "-":
        named = [a for a in parts.keys.list_accounts() if args[0] in (a["id"], a["name"])]
        if named:
            return refs.account(parts, args[0]), "-"
    return refs.account(parts, account), args[0] if args else "-"


@gateways.command("create", help=DEFINITION_HELP)
@click.argument("args", nargs=-1, metavar="[ACCOUNT] [DEFINITION]")
@refs.account_option
@json_option
def gateways_create(args: tuple[str, ...], account: str | None, as_json: bool) -> None:
    with opened() as parts:
        owner, source = _account_and_definition(parts, args, account)
        definition = refs.with_collection_ids(parts, owner, read_json(source, "definition"))
        created = parts.gateways.create(owner["id"], definition)
    emit(created, as_json, lambda: fields(created))


@gateways.command("update", help=UPDATE_HELP)
@click.argument("gateway")
@click.argument("patch", default="-")
@refs.account_option
@json_option
def gateways_update(gateway: str, patch: str, account: str | None, as_json: bool) -> None:
    with opened() as parts:
        owner = refs.account(parts, account)
        found = refs.gateway(parts, owner, gateway)
        change = refs.with_collection_ids(parts, owner, read_json(patch, "patch"))
        updated = parts.gateways.update(owner["id"], found["id"], change)
    emit(updated, as_json, lambda: fields(updated))


@gateways.command("delete", help="Delete GATEWAY (an id, a slug or a name) of an account.")
@click.argument("gateway")
@refs.account_option
@yes_option
def gateways_delete(gateway: str, account: str | None, yes: bool) -> None:
    with opened() as parts:
        owner = refs.account(parts, account)
        found = refs.gateway(parts, owner, gateway)
        what = f"gateway {found['slug']!r} ({found['id']}) of account {owner['name']!r}"
        if not yes:
            click.confirm(f"Delete {what}?", abort=True)
        parts.gateways.delete(owner["id"], found["id"])
    click.echo(f"Deleted {what}.")
