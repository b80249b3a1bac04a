"""Naming things at a shell: every command finds what it acts on here, by id or by name.

- an account: its id or name; left out, the only account there is;
- a gateway: its id, slug (`name:xxxx`) or name, within its account;
- a key, a collection: its id or name, within its account; a document: its id or name,
  within its collection.

An id always wins (ids are UUIDs, no name is one by accident); a name that several share is
an error that lists them, so the next try can use an id. The account is `--account` (`-a`)
everywhere; the commands that took it as their first argument (`keys create`, `gateways
create/list`, `usage`) still do, and so do the `list`s of an account's keys, gateways and
collections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from alicerce.cli.context import Parts

View = dict[str, Any]

account_option = click.option(
    "--account",
    "-a",
    "account",
    metavar="ACCOUNT",
    help="The account's id or name (needed only when there are several).",
)
account_argument = click.argument("account_arg", metavar="[ACCOUNT]", required=False)


def either(positional: str | None, option: str | None) -> str | None:
    """The account given as the first argument or as `--account`, not both (unless equal)."""
    if positional and option and positional != option:
        raise click.UsageError(f"two accounts given: {positional!r} and --account {option!r}")
    return positional or option


def pick(kind: str, ref: str, views: Sequence[View], *, by: Sequence[str], scope: str = "") -> View:
    """The one of `views` whose id is `ref`, else whose field `by[0]` is, else `by[1]`...;
    several with that value are an error listing them."""
    for view in views:
        if view["id"] == ref:
            return view
    for field in by:
        found = [v for v in views if v.get(field) == ref]
        if len(found) == 1:
            return found[0]
        if found:
            lines = "\n".join(
                f"  {v['id']}  {v.get('name', '')}  created {v.get('created_at', '')}"
                for v in found
            )
            raise click.ClickException(
                f"{len(found)} {kind}s{scope} have the {field} {ref!r}; name one by its id:\n"
                + lines
            )
    raise click.ClickException(f"No {kind} {ref!r}{scope}.")


def account(parts: Parts, ref: str | None) -> View:
    """The account `ref` (id or name); without one, the only account there is."""
    accounts = parts.keys.list_accounts()
    if ref is None:
        if len(accounts) == 1:
            return accounts[0]
        if not accounts:
            raise click.ClickException("There is no account yet: `alicerce accounts create NAME`.")
        names = ", ".join(a["name"] for a in accounts[:10]) + (", …" * (len(accounts) > 10))
        raise click.UsageError(
            f"say which account with --account (an id or a name); there are {len(accounts)}: "
            f"{names}"
        )
    return pick("account", ref, accounts, by=("name",))


def _in(account: View) -> str:
    return f" in account {account['name']!r}"


def gateway(parts: Parts, account: View, ref: str) -> View:
    views = parts.gateways.list(account["id"])
    return pick("gateway", ref, views, by=("slug", "name"), scope=_in(account))


def key(parts: Parts, account: View, ref: str) -> View:
    views = parts.keys.list_keys(account["id"])
    return pick("key", ref, views, by=("name",), scope=_in(account))


async def collection(parts: Parts, account: View, ref: str) -> View:
    from alicerce.knowledge.views import collection_view

    found = await parts.knowledge.list_collections(account["id"])
    views = [collection_view(c) for c in found]
    return pick("collection", ref, views, by=("name",), scope=_in(account))


async def document(parts: Parts, account: View, collection: View, ref: str) -> View:
    from alicerce.knowledge.views import document_view

    found = await parts.knowledge.list_documents(account["id"], collection["id"])
    views = [document_view(d) for d in found]
    scope = f" in collection {collection['name']!r}"
    return pick("document", ref, views, by=("name",), scope=scope)


def with_collection_ids(parts: Parts, account: View, definition: Any) -> Any:
    """A gateway definition (or patch) whose `knowledge.collections` may name collections by
    name, with those names turned into the ids the API takes; anything else is left for the
    domain to judge (an unknown collection is its error, worded as the API words it)."""
    knowledge = definition.get("knowledge") if isinstance(definition, dict) else None
    if not isinstance(knowledge, dict):
        return definition
    wanted = knowledge.get("collections")
    if not isinstance(wanted, list) or not wanted:
        return definition
    ids = parts.collection_ids(account["id"])
    named = [ids.get(ref, ref) if isinstance(ref, str) else ref for ref in wanted]
    return definition | {"knowledge": knowledge | {"collections": named}}
