"""`alicerce collections`: an account's knowledge collections and their documents (files are
added with `alicerce ingest`)."""

from __future__ import annotations

import asyncio

import click

from alicerce.cli import refs
from alicerce.cli.context import opened, read_json
from alicerce.cli.output import emit, fields, json_option, listing, table, when, yes_option


@click.group(help="Manage an account's knowledge collections (add files with `ingest`).")
def collections() -> None:
    pass


@collections.command("list", help="List the collections of ACCOUNT (an id or a name).")
@refs.account_argument
@refs.account_option
@json_option
def collections_list(account_arg: str | None, account: str | None, as_json: bool) -> None:
    from alicerce.knowledge.views import collection_view

    with opened() as parts:
        owner = refs.account(parts, refs.either(account_arg, account))
        listed = asyncio.run(parts.knowledge.list_collections(owner["id"]))
    found = [collection_view(c) for c in listed]
    rows = [
        [c["id"], c["name"], c["embedding"]["model"], c["chunks"], when(c["created_at"])]
        for c in found
    ]
    header = ["id", "name", "embedding", "chunks", "created"]
    emit(listing(found), as_json, lambda: table(rows, header))


@collections.command("show", help="Show COLLECTION (an id or a name) of an account.")
@click.argument("collection")
@refs.account_option
@json_option
def collections_show(collection: str, account: str | None, as_json: bool) -> None:
    with opened() as parts:
        owner = refs.account(parts, account)
        found = asyncio.run(refs.collection(parts, owner, collection))
        documents = asyncio.run(parts.knowledge.list_documents(owner["id"], found["id"]))
    emit(found, as_json, lambda: fields(found | {"documents": len(documents)}))


@collections.command("create")
@click.argument("name")
@refs.account_option
@click.option("--description", default="", help="What the collection holds.")
@click.option(
    "--definition",
    metavar="FILE",
    help="More of the API's fields as JSON (`embedding`, `fusion`); `-` for standard input.",
)
@json_option
def collections_create(
    name: str, account: str | None, description: str, definition: str | None, as_json: bool
) -> None:
    """Create a collection NAME in an account.

    \b
    Without a definition it embeds with the local multilingual-e5-small; to use an
    OpenAI-compatible embeddings server instead, --definition a file such as:
      {"embedding": {"base_url": "https://...", "api_key": "sk-...",
                     "model": "text-embedding-3-small", "dimensions": 1536},
       "fusion": {"method": "convex", "vector_weight": 0.5}}
    """
    from alicerce.knowledge.views import collection_view

    extra = read_json(definition, "definition") if definition else {}
    if not isinstance(extra, dict):
        raise click.ClickException("the definition must be a JSON object")
    with opened() as parts:
        owner = refs.account(parts, account)
        body = extra | {"name": name} | ({"description": description} if description else {})
        made = asyncio.run(parts.knowledge.create_collection(owner["id"], body))
    created = collection_view(made)
    emit(created, as_json, lambda: fields(created))


@collections.command("update", help="Rename COLLECTION or change its description.")
@click.argument("collection")
@refs.account_option
@click.option("--name", help="The new name.")
@click.option("--description", help="The new description.")
@json_option
def collections_update(
    collection: str, account: str | None, name: str | None, description: str | None, as_json: bool
) -> None:
    from alicerce.knowledge.views import collection_view

    patch = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
    if not patch:
        raise click.UsageError("say what to change: --name and/or --description")
    with opened() as parts:
        owner = refs.account(parts, account)
        found = asyncio.run(refs.collection(parts, owner, collection))
        change = parts.knowledge.update_collection(owner["id"], found["id"], patch)
        updated = collection_view(asyncio.run(change))
    emit(updated, as_json, lambda: fields(updated))


@collections.command("delete")
@click.argument("collection")
@refs.account_option
@click.option("--force", is_flag=True, help="Also when gateways use it: take it out of them first.")
@yes_option
def collections_delete(collection: str, account: str | None, force: bool, yes: bool) -> None:
    """Delete COLLECTION with all its documents and chunks.

    A collection that gateways use is not deleted (they are named) unless --force, which
    takes it out of their knowledge collections first (a gateway left with none stops
    searching: its strategy becomes `none`).
    """
    with opened() as parts:
        owner = refs.account(parts, account)
        found = asyncio.run(refs.collection(parts, owner, collection))
        what = f"collection {found['name']!r} ({found['id']}) of account {owner['name']!r}"
        users = parts.gateways.using_collection(owner["id"], found["id"])
        named = ", ".join(u["slug"] for u in users)
        if users and not force:
            raise click.ClickException(
                f"{what} is used by gateway(s) {named}; take it out of them first, or "
                "delete it with --force to detach it from them"
            )
        if not yes:
            also = f" and take it out of gateway(s) {named}" if users else ""
            click.confirm(f"Delete {what} with all its documents{also}?", abort=True)
        change = parts.knowledge.delete_collection(owner["id"], found["id"], force=force)
        detached = asyncio.run(change)
    click.echo(f"Deleted {what}.")
    if detached:
        click.echo(f"Taken out of gateway(s): {', '.join(u['slug'] for u in detached)}.")


@collections.group(help="The documents of a collection.")
def documents() -> None:
    pass


@documents.command("list", help="List the documents of COLLECTION (an id or a name).")
@click.argument("collection")
@refs.account_option
@json_option
def documents_list(collection: str, account: str | None, as_json: bool) -> None:
    from alicerce.knowledge.views import document_view

    with opened() as parts:
        owner = refs.account(parts, account)
        found = asyncio.run(refs.collection(parts, owner, collection))
        listed = asyncio.run(parts.knowledge.list_documents(owner["id"], found["id"]))
    views = [document_view(d) for d in listed]
    rows = [
        [d["id"], d["name"], d["status"], d["chunks"], d["tokens"], d["size_bytes"], d["error"]]
        for d in views
    ]
    header = ["id", "name", "status", "chunks", "tokens", "bytes", "error"]
    emit(listing(views), as_json, lambda: table(rows, header))


@documents.command("show", help="Show DOCUMENT (an id or a name) of COLLECTION.")
@click.argument("collection")
@click.argument("document")
@refs.account_option
@json_option
def documents_show(collection: str, document: str, account: str | None, as_json: bool) -> None:
    with opened() as parts:
        owner = refs.account(parts, account)
        found = asyncio.run(refs.collection(parts, owner, collection))
        shown = asyncio.run(refs.document(parts, owner, found, document))
    emit(shown, as_json, lambda: fields(shown))


@documents.command("delete", help="Delete DOCUMENT (an id or a name) of COLLECTION.")
@click.argument("collection")
@click.argument("document")
@refs.account_option
@yes_option
def documents_delete(collection: str, document: str, account: str | None, yes: bool) -> None:
    with opened() as parts:
        owner = refs.account(parts, account)
        found = asyncio.run(refs.collection(parts, owner, collection))
        doomed = asyncio.run(refs.document(parts, owner, found, document))
        what = f"document {doomed['name']!r} ({doomed['id']}) of collection {found['name']!r}"
        if not yes:
            click.confirm(f"Delete {what}?", abort=True)
        asyncio.run(parts.knowledge.delete_document(owner["id"], found["id"], doomed["id"]))
    click.echo(f"Deleted {what}.")
