"""Setting up and serving: `init`, `serve`, and `demo` (a gateway on the local model,
grounded in the sample documents, ready to call)."""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from alicerce.catalog import LOCAL_CHAT_MODEL
from alicerce.cli.context import Parts, build_services, fail, load_settings
from alicerce.cli.ingest import ingest_paths
from alicerce.errors import AlicerceError

if TYPE_CHECKING:
    from alicerce.services import Services

SAMPLES = Path(__file__).parent.parent / "samples"
DEMO_COLLECTION = "alicerce-docs"
DEMO_INSTRUCTIONS = (
    "You are Alicerce's demo assistant. Answer briefly and helpfully, in the user's language."
)
# What the demo suggests asking, in both languages; the samples answer each one above the
# default `min_score` (tests/test_score_calibration.py).
DEMO_QUESTIONS = ("What is an AI gateway?", "O que é um gateway de IA?")


@click.command(help="Create (or upgrade) the database and print a new root key, shown once.")
def init() -> None:
    parts = Parts.open(create_database=True)
    try:
        if parts.keys.has_root_key():
            click.echo("The database is ready; a root key exists already (or ALICERCE_ROOT_KEY).")
            return
        key = parts.keys.create_root_key()
        click.echo(f"Database ready at {parts.db.target.hidden()}")
        click.echo(f"Root key (shown once; it manages accounts): {key}")
    finally:
        parts.db.dispose()


def raise_open_file_limit(needed: int) -> int:
    """Raises this process's soft limit on open files to its hard limit (workers inherit it),
    and returns it. Each request in flight holds two descriptors (the client's connection and
    the upstream's), and the common soft limit of 1,024 would cap a worker near 500 of them
    while the hard limit allows far more; a limit below `needed` is said, once, at start."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft < needed:
        click.echo(
            f"warning: the open-file limit is {soft} (ulimit -n), below the {needed} that "
            "ALICERCE_HTTP_MAX_CONNECTIONS and ALICERCE_UPSTREAM_POOL_SIZE may hold per worker; "
            "past it, connections fail. Raise the limit or lower those settings.",
            err=True,
        )
    return soft


def _serve(host: str | None, port: int | None, workers: int | None, access_log: bool) -> None:
    import uvicorn

    from alicerce.connections import ConnectionLimits, protocol_class
    from alicerce.logs import logging_config

    if host:
        os.environ["ALICERCE_HOST"] = host
    if port:
        os.environ["ALICERCE_PORT"] = str(port)
    settings = load_settings()  # again: --host and --port are in the environment now; the catalog
    # was checked when the caller built its services, in one process, not in every worker
    workers = workers or settings.workers
    raise_open_file_limit(settings.http_max_connections + 2 * settings.upstream_pool_size + 256)
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
        http=protocol_class(ConnectionLimits.from_settings(settings)),
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


@click.command(help="Start the server.")
@click.option("--host", help="Interface to bind (ALICERCE_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (ALICERCE_PORT, default 8000).")
@click.option(
    "--workers", type=click.IntRange(min=1), help="Worker processes (ALICERCE_WORKERS, default 1)."
)
@click.option("--access-log/--no-access-log", default=False, help="Log every HTTP request.")
def serve(host: str | None, port: int | None, workers: int | None, access_log: bool) -> None:
    services = build_services()  # migrate once here, before any worker starts
    services.db.dispose()
    _serve(host, port, workers, access_log)


def _demo_knowledge(services: Services, account_id: str) -> dict[str, Any] | None:
    """The sample documents that ship with Alicerce, indexed into the demo's collection
    (once: the same files again are recognised by their content and skipped)."""
    if not SAMPLES.is_dir():
        return None
    # each file's outcome is told as it goes (a sample that fails included)
    collection, _ = ingest_paths(services, account_id, DEMO_COLLECTION, [SAMPLES])
    return {"collections": [collection.id], "strategy": "always", "top_k": 3}


@click.command(
    help="Set up a `demo` gateway on the local model, print a key for it and the console's"
    " address with an admin key to log in with, and serve."
)
@click.option("--host", help="Interface to bind.")
@click.option("--port", type=int, help="Port.")
@click.option("--no-serve", is_flag=True, help="Only set up; do not start the server.")
def demo(host: str | None, port: int | None, no_serve: bool) -> None:
    from alicerce.keys import AccountCreate, KeyCreate

    services = build_services(create_database=True)
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
        # the console needs a key that may manage the account; the demo key only calls models
        admin = services.keys.create_key(account_id, KeyCreate(name="console", role="admin"))
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
            '    -d \'{"model": "demo", "messages": [{"role": "user", "content": '
            f'"{DEMO_QUESTIONS[0]}"}}]}}\'\n\n'
            f'  Or ask in Portuguese: "{DEMO_QUESTIONS[1]}"\n\n'
            f"Console: {where}/console/\n"
            f"  log in with this admin key (it manages the demo account): {admin['key']}\n"
        )
    except AlicerceError as exc:
        fail(exc)
    finally:
        services.db.dispose()
    if not no_serve:
        _serve(host, port, 1, False)
