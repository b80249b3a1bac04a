"""What every command starts from: the settings, the catalog, the services, each refused with
one line per problem (exit 1) rather than a traceback; and domain errors as click's.

The parts a command needs (the database, the models, the web app) are imported by the commands
that use them, so `alicerce --help` and a mistyped command answer at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from alicerce.catalog import Catalog, CatalogError
from alicerce.errors import AlicerceError
from alicerce.settings import Settings

if TYPE_CHECKING:
    from alicerce.services import Services


def load_settings() -> Settings:
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


def load_catalog(settings: Settings) -> Catalog:
    try:
        return Catalog.load(settings.config)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None


def build_services(*, create_database: bool = False) -> Services:
    """The parts, on a checked database; only `init` and `demo` may create one."""
    from alicerce.services import Services
    from alicerce.store.url import DatabaseProblem

    try:  # a bad catalog or database is one line per problem here, not a traceback
        return Services.build(load_settings(), create_database=create_database)
    except (CatalogError, DatabaseProblem) as exc:
        raise click.ClickException(str(exc)) from None


def fail(exc: AlicerceError) -> None:
    raise click.ClickException(exc.message)


@contextmanager
def opened() -> Iterator[Services]:
    """The services for one command: a domain error ends it with its message (exit 1), and
    the database is let go however it ends."""
    services = build_services()
    try:
        yield services
    except AlicerceError as exc:
        fail(exc)
    finally:
        services.db.dispose()


def read_json(source: str, what: str) -> Any:
    """The JSON in file `source` (`-`: standard input), or the command stops saying why."""
    try:
        with click.open_file(source, "r") as stream:
            return json.load(stream)
    except OSError as exc:
        raise click.ClickException(f"{source}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"the {what} is not JSON: {exc}") from None
