"""The `alicerce` command: serve, set up, and manage accounts, keys and gateways from a shell."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import click
from sqlalchemy import select

from alicerce.catalog import LOCAL_CHAT_MODEL, PER_MILLION, Catalog, CatalogError
from alicerce.errors import AlicerceError
from alicerce.keys import AccountCreate, KeyCreate
from alicerce.services import Services
from alicerce.settings import Settings
from alicerce.store.tables import AccountRow

DEMO_INSTRUCTIONS = (
    "You are Alicerce's demo assistant. Answer briefly and helpfully, in the user's language."
)


def _services() -> Services:
    return Services.build(Settings())


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _fail(exc: AlicerceError) -> None:
    raise click.ClickException(exc.message)


@click.group(help="Alicerce: an AI gateway with an OpenAI-compatible API.")
@click.version_option(package_name="alicerce")
def main() -> None:
    pass


@main.command(help="Create (or upgrade) the database and print a new root key, shown once.")
def init() -> None:
    services = _services()
    try:
        if services.keys.has_root_key():
            click.echo("The database is ready; a root key exists already (or ALICERCE_ROOT_KEY).")
            return
        key = services.keys.create_root_key()
        click.echo(f"Database ready at {services.db.url}")
        click.echo(f"Root key (shown once; it manages accounts): {key}")
    finally:
        services.db.dispose()


def _serve(host: str | None, port: int | None, workers: int, access_log: bool) -> None:
    import uvicorn

    from alicerce.logs import logging_config

    if host:
        os.environ["ALICERCE_HOST"] = host
    if port:
        os.environ["ALICERCE_PORT"] = str(port)
    settings = Settings()
    uvicorn.run(
        "alicerce.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=access_log,
        log_config=logging_config(settings.log_level, settings.log_format),
        timeout_graceful_shutdown=30,
    )


@main.command(help="Start the server.")
@click.option("--host", help="Interface to bind (ALICERCE_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (ALICERCE_PORT, default 8000).")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes.")
@click.option("--access-log/--no-access-log", default=False, help="Log every HTTP request.")
def serve(host: str | None, port: int | None, workers: int, access_log: bool) -> None:
    services = _services()  # migrate once here, before any worker starts
    services.db.dispose()
    _serve(host, port, workers, access_log)


@main.command(help="Set up a `demo` gateway on the local model, print a key for it, and serve.")
@click.option("--host", help="Interface to bind.")
@click.option("--port", type=int, help="Port.")
@click.option("--no-serve", is_flag=True, help="Only set up; do not start the server.")
def demo(host: str | None, port: int | None, no_serve: bool) -> None:
    services = _services()
    try:
        with services.db.session() as session:
            account_id = session.scalar(select(AccountRow.id).where(AccountRow.name == "demo"))
        if account_id is None:
            account_id = services.keys.create_account(AccountCreate(name="demo"))["id"]
        if services.gateways.resolve(account_id, "demo") is None:
            services.gateways.create(
                account_id,
                {
                    "name": "demo",
                    "instructions": DEMO_INSTRUCTIONS,
                    "model": LOCAL_CHAT_MODEL,
                    "parameters": {"temperature": 0.2, "max_tokens": 256},
                },
            )
        key = services.keys.create_key(account_id, KeyCreate(name="demo", role="inference"))
        click.echo("Loading the local model…", err=True)
        asyncio.run(services.local.warm_up())
        settings = services.settings
        where = f"http://{host or settings.host}:{port or settings.port}"
        click.echo(
            f"\nGateway 'demo' is ready on {LOCAL_CHAT_MODEL}.\n"
            f"  base URL: {where}/api/v1\n"
            f"  API key:  {key['key']}\n\n"
            f"  curl {where}/api/v1/chat/completions -H 'Authorization: Bearer {key['key']}' \\\n"
            "    -H 'Content-Type: application/json' \\\n"
            '    -d \'{"model": "demo", "messages": [{"role": "user", "content": "Hi!"}]}\'\n'
        )
    except AlicerceError as exc:
        _fail(exc)
    finally:
        services.db.dispose()
    if not no_serve:
        _serve(host, port, 1, False)


# -- accounts, keys, gateways -------------------------------------------------------------


@main.group(help="Manage accounts (the operator's work).")
def accounts() -> None:
    pass


@accounts.command("create", help="Create an account; prints its first admin key once.")
@click.argument("name")
def accounts_create(name: str) -> None:
    services = _services()
    try:
        _print_json(services.keys.create_account(AccountCreate(name=name)))
    finally:
        services.db.dispose()


@accounts.command("list", help="List accounts.")
def accounts_list() -> None:
    services = _services()
    try:
        _print_json(services.keys.list_accounts())
    finally:
        services.db.dispose()


@main.group(help="Manage an account's API keys.")
def keys() -> None:
    pass


@keys.command("create", help="Create a key for ACCOUNT_ID; prints the secret once.")
@click.argument("account_id")
@click.option("--name", default="cli", show_default=True)
@click.option("--role", type=click.Choice(["admin", "inference"]), default="inference")
@click.option("--gateway", "gateways", multiple=True, help="Restrict to this gateway (repeat).")
def keys_create(account_id: str, name: str, role: str, gateways: tuple[str, ...]) -> None:
    services = _services()
    try:
        services.keys.get_account(account_id)
        ids = [services.gateways.resolve_id(account_id, g) for g in gateways] or None
        spec = KeyCreate(name=name, role=role, gateways=ids)  # type: ignore[arg-type]
        _print_json(services.keys.create_key(account_id, spec))
    except AlicerceError as exc:
        _fail(exc)
    finally:
        services.db.dispose()


@main.group(help="Manage an account's gateways.")
def gateways() -> None:
    pass


@gateways.command("create", help="Create a gateway for ACCOUNT_ID from a JSON definition.")
@click.argument("account_id")
@click.argument("definition", type=click.File("r"), default="-")
def gateways_create(account_id: str, definition: Any) -> None:
    """DEFINITION is a file with the gateway's JSON (SPEC section 2), or `-` for stdin."""
    services = _services()
    try:
        services.keys.get_account(account_id)
        _print_json(services.gateways.create(account_id, json.load(definition)))
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"the definition is not JSON: {exc}") from None
    except AlicerceError as exc:
        _fail(exc)
    finally:
        services.db.dispose()


@gateways.command("list", help="List the gateways of ACCOUNT_ID.")
@click.argument("account_id")
def gateways_list(account_id: str) -> None:
    services = _services()
    try:
        _print_json(services.gateways.list(account_id))
    finally:
        services.db.dispose()


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _per_million(price: Decimal) -> str:
    return f"{price * PER_MILLION:f}".rstrip("0").rstrip(".") or "0"


@main.command(help="List the model catalog (ALICERCE_CONFIG) with prices per million tokens.")
def models() -> None:
    try:
        catalog = Catalog.load(Settings().config)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    rows = [
        [
            m.id,
            m.provider.name,
            m.upstream_model,
            _per_million(m.price_in),
            _per_million(m.price_out),
            _per_million(m.price_cached_in),
            str(m.context_length or ""),
        ]
        for m in catalog.models()
    ]
    _table(rows, ["model", "provider", "upstream", "in/M", "out/M", "cached in/M", "context"])


@main.command(help="Print ACCOUNT_ID's spending by day, SKU and gateway.")
@click.argument("account_id")
@click.option("--days", type=int, default=30, show_default=True, help="How far back to look.")
def usage(account_id: str, days: int) -> None:
    services = _services()
    try:
        services.keys.get_account(account_id)
        start = datetime.now(UTC) - timedelta(days=days)
        names = {g["id"]: g["slug"] for g in services.gateways.list(account_id)}
        for group_by in ("day", "sku", "gateway"):
            totals = services.usage.totals(
                account_id,
                start=start,
                end=None,
                group_by=group_by,  # type: ignore[arg-type]
            )
            rows = [
                [
                    names.get(g[group_by], g[group_by] or "-")
                    if group_by == "gateway"
                    else str(g[group_by]),
                    str(g["requests"]),
                    str(g["quantity"]),
                    g["amount_exact"],
                ]
                for g in totals["data"]
            ]
            click.echo()
            _table(rows, [group_by, "requests", "quantity", "amount"])
        click.echo(f"\nTotal over {days} days: {totals['amount_exact']}")
    except AlicerceError as exc:
        _fail(exc)
    finally:
        services.db.dispose()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
