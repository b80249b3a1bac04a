"""The `alicerce` command: serve, set up, and manage accounts, keys and gateways from a shell."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from alicerce.catalog import LOCAL_CHAT_MODEL, PER_MILLION, Catalog, CatalogError
from alicerce.errors import AlicerceError
from alicerce.settings import Settings

if TYPE_CHECKING:
    from alicerce.services import Services

# The parts a command needs (the database, the models, the web app) are imported by the commands
# that use them, so `alicerce --help` and a mistyped command answer at once.

SAMPLES = Path(__file__).parent / "samples"
DEMO_COLLECTION = "alicerce-docs"
DEMO_INSTRUCTIONS = (
    "You are Alicerce's demo assistant. Answer briefly and helpfully, in the user's language."
)


def _settings() -> Settings:
    """The settings, or the command stops with one line per problem (exit 1), no traceback."""
    from pydantic import ValidationError

    from alicerce.settings import ConfigError

    try:
        return Settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except ValidationError as exc:
        problems = [
            f"ALICERCE_{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        ]
        raise click.ClickException("\n".join(problems)) from None


def _catalog(settings: Settings) -> Catalog:
    try:
        return Catalog.load(settings.config)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None


def _services() -> Services:
    from alicerce.services import Services

    try:  # a bad catalog is one line per problem here, not a traceback
        return Services.build(_settings())
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None


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
    settings = _settings()  # again: --host and --port are in the environment now; the catalog
    # was checked when the caller built its services, in one process, not in every worker
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here, so that /metrics adds up all of them.
        metrics_dir = tempfile.mkdtemp(prefix="alicerce-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        atexit.register(shutil.rmtree, metrics_dir, ignore_errors=True)
    options: dict[str, Any] = dict(
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=access_log,
        log_config=logging_config(settings.log_level, settings.log_format),
        timeout_graceful_shutdown=30,
        timeout_worker_healthcheck=settings.worker_healthcheck_timeout_s,
    )
    if workers > 1:  # supervised by ours: a worker's death is a warning with its cause
        from alicerce import workers as supervision

        supervision.run(uvicorn.Config("alicerce.api.app:create_app", **options))
    else:
        uvicorn.run("alicerce.api.app:create_app", **options)


@main.command(help="Start the server.")
@click.option("--host", help="Interface to bind (ALICERCE_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (ALICERCE_PORT, default 8000).")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes.")
@click.option("--access-log/--no-access-log", default=False, help="Log every HTTP request.")
def serve(host: str | None, port: int | None, workers: int, access_log: bool) -> None:
    services = _services()  # migrate once here, before any worker starts
    services.db.dispose()
    _serve(host, port, workers, access_log)


def _demo_knowledge(services: Services, account_id: str) -> dict[str, Any] | None:
    """The sample documents that ship with Alicerce, indexed into the demo's collection
    (once: the same files again are recognised by their content and skipped)."""
    if not SAMPLES.is_dir():
        return None
    collection, report = _ingest(services, account_id, DEMO_COLLECTION, [SAMPLES])
    for path, reason in report.failed:
        click.echo(f"  sample {path.name} not indexed: {reason}", err=True)
    return {"collections": [collection.id], "strategy": "always", "top_k": 3}


@main.command(help="Set up a `demo` gateway on the local model, print a key for it, and serve.")
@click.option("--host", help="Interface to bind.")
@click.option("--port", type=int, help="Port.")
@click.option("--no-serve", is_flag=True, help="Only set up; do not start the server.")
def demo(host: str | None, port: int | None, no_serve: bool) -> None:
    from alicerce.keys import AccountCreate, KeyCreate

    services = _services()
    try:
        account = services.keys.find_account("demo") or services.keys.create_account(
            AccountCreate(name="demo")
        )
        account_id = account["id"]
        knowledge = _demo_knowledge(services, account_id)
        gateway = services.gateways.resolve(account_id, "demo")
        if gateway is None:
            services.gateways.create(
                account_id,
                {
                    "name": "demo",
                    "instructions": DEMO_INSTRUCTIONS,
                    "model": LOCAL_CHAT_MODEL,
                    "parameters": {"temperature": 0.2, "max_tokens": 256},
                }
                | ({"knowledge": knowledge} if knowledge else {}),
            )
        elif knowledge and gateway.spec.knowledge.strategy == "none":
            services.gateways.update(account_id, "demo", {"knowledge": knowledge})
        key = services.keys.create_key(account_id, KeyCreate(name="demo", role="inference"))
        click.echo("Loading the local model…", err=True)
        asyncio.run(services.local.warm_up())
        settings = services.settings
        where = f"http://{host or settings.host}:{port or settings.port}"
        click.echo(
            f"\nGateway 'demo' is ready on {LOCAL_CHAT_MODEL}"
            f"{', grounded in the sample documents' if knowledge else ''}.\n"
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


# -- knowledge ----------------------------------------------------------------------------


def _account_id(services: Services, ref: str | None) -> str:
    """An account by id or name; without one, the only account there is."""
    if ref is None:
        accounts = services.keys.list_accounts()
        if len(accounts) != 1:
            raise click.UsageError("say which account with --account (an id or a name)")
        return str(accounts[0]["id"])
    account = services.keys.find_account(ref)
    if account is None:
        raise click.ClickException(f"No account {ref!r}.")
    return str(account["id"])


def _ingest(services: Services, account_id: str, collection: str, paths: list[Path]) -> Any:
    """Indexes `paths` into the account's collection `collection` (made if missing), in
    this process, with a progress bar; returns the collection and the report."""
    from alicerce.knowledge.batch import collect_files, collection_named, ingest_files

    files = collect_files(paths)
    services.embedders.index_in_foreground()

    async def run() -> Any:
        await services.http.start()
        try:
            target = await collection_named(services.knowledge, account_id, collection)
            progressbar: Any = click.progressbar(
                length=len(files),
                label=f"Indexing into '{collection}'",
                item_show_func=lambda p: p.name if p else None,
                file=sys.stderr,
            )
            with progressbar as bar:
                report = await ingest_files(
                    services.knowledge, target, files, progress=lambda p: bar.update(1, p)
                )
            return target, report
        finally:
            await services.request_log.close()  # the indexing line items
            await services.http.close()

    return asyncio.run(run())


@main.command(help="Index files or folders into a knowledge collection, here and now.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--collection", required=True, help="The collection's name (made if missing).")
@click.option("--account", help="Account id or name (default: the only account).")
def ingest(paths: tuple[Path, ...], collection: str, account: str | None) -> None:
    """Folders are read recursively for .txt .md .html .htm .pdf .docx .json .csv files."""
    services = _services()
    try:
        account_id = _account_id(services, account)
        target, report = _ingest(services, account_id, collection, list(paths))
    except AlicerceError as exc:
        _fail(exc)
    finally:
        services.db.dispose()
    click.echo(
        f"Collection '{target.name}' ({target.id}): {len(report.indexed)} indexed "
        f"({report.chunks} chunks, {report.tokens} tokens), {len(report.unchanged)} unchanged, "
        f"{len(report.failed)} failed."
    )
    for path, reason in report.failed:
        click.echo(f"  failed: {path}: {reason}", err=True)
    if report.failed:
        sys.exit(1)


# -- accounts, keys, gateways -------------------------------------------------------------


@main.group(help="Manage accounts (the operator's work).")
def accounts() -> None:
    pass


@accounts.command("create", help="Create an account; prints its first admin key once.")
@click.argument("name")
def accounts_create(name: str) -> None:
    from alicerce.keys import AccountCreate

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
    from alicerce.keys import KeyCreate

    services = _services()
    try:
        services.keys.get_account(account_id)
        refs = list(gateways) or None  # ids or slugs: the key service resolves them
        spec = KeyCreate(name=name, role=role, gateways=refs)  # type: ignore[arg-type]
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
    catalog = _catalog(_settings())
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
