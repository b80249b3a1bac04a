"""What every command starts from: the settings, the catalog, the services, each refused with
one line per problem (exit 1) rather than a traceback; and domain errors as click's.

The parts a command needs (the database, the models, the web app) are imported by the commands
that use them, so `alicerce --help` and a mistyped command answer at once; and a command opens
only the admin parts (`Parts`), building the knowledge and inference stack the first time it
asks for it, so `accounts list` does not load numpy, usearch or the HTTP stack either.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

import click

from alicerce.catalog import Catalog, CatalogError
from alicerce.errors import AlicerceError
from alicerce.settings import Settings

if TYPE_CHECKING:
    from alicerce.admin import AdminParts
    from alicerce.gateways import GatewayService
    from alicerce.keys import KeyService
    from alicerce.knowledge.service import KnowledgeService
    from alicerce.knowledge.store import KnowledgeStore
    from alicerce.services import Services
    from alicerce.store import Database
    from alicerce.usage import UsageService


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


def imported() -> None:
    """A command has imported its modules: what they made is set aside for good (`gc.freeze`),
    and the collector that `alicerce.__main__.run` paused is on again for what the command does
    next (`serve` runs for days, `ingest` for minutes). Nothing when the collector was not
    paused (tests call `main`)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def build_services(*, create_database: bool = False) -> Services:
    """All the parts, on a checked database; only `init` and `demo` may create one."""
    from alicerce.services import Services
    from alicerce.store.url import DatabaseProblem

    imported()
    try:  # a bad catalog or database is one line per problem here, not a traceback
        return Services.build(load_settings(), create_database=create_database)
    except (CatalogError, DatabaseProblem) as exc:
        raise click.ClickException(str(exc)) from None


class Parts:
    """What a command acts through: the settings, the catalog and the admin parts (accounts,
    keys, gateways, usage), opened at once; the rest of the services (knowledge, embedders, the
    HTTP clients) are built around them the first time a command asks for them."""

    def __init__(self, settings: Settings, catalog: Catalog, admin: AdminParts) -> None:
        self.settings = settings
        self.catalog = catalog
        self.admin = admin

    @classmethod
    def open(cls, *, create_database: bool = False) -> Parts:
        from alicerce.admin import AdminParts, open_database
        from alicerce.store.url import DatabaseProblem

        imported()
        settings = load_settings()
        catalog = load_catalog(settings)
        try:
            db = open_database(settings, create=create_database)
        except DatabaseProblem as exc:
            raise click.ClickException(str(exc)) from None
        parts: Parts

        def store() -> KnowledgeStore:  # for deleting an account with collections
            return parts.services.knowledge.store

        admin = AdminParts.build(settings, db, catalog=lambda: catalog, knowledge=store)
        parts = cls(settings, catalog, admin)
        return parts

    @property
    def db(self) -> Database:
        return self.admin.db

    @property
    def keys(self) -> KeyService:
        return self.admin.keys

    @property
    def gateways(self) -> GatewayService:
        return self.admin.gateways

    @property
    def usage(self) -> UsageService:
        return self.admin.usage

    @cached_property
    def services(self) -> Services:
        """All of them, around the admin parts (importing the knowledge and inference stack)."""
        from alicerce.services import Services

        return Services.around(self.admin, self.settings, self.catalog)

    @property
    def knowledge(self) -> KnowledgeService:
        return self.services.knowledge

    def collection_ids(self, account_id: str) -> dict[str, str]:
        """The account's collections, their ids by name, without the knowledge stack."""
        from alicerce.knowledge.names import collection_ids

        return collection_ids(self.db, account_id)


def fail(exc: AlicerceError) -> None:
    raise click.ClickException(exc.message)


@contextmanager
def opened() -> Iterator[Parts]:
    """The parts for one command: a domain error ends it with its message (exit 1), and the
    database is let go however it ends."""
    parts = Parts.open()
    try:
        yield parts
    except AlicerceError as exc:
        fail(exc)
    finally:
        parts.db.dispose()


def read_json(source: str, what: str) -> Any:
    """The JSON in file `source` (`-`: standard input), or the command stops saying why."""
    try:
        with click.open_file(source, "r") as stream:
            return json.load(stream)
    except OSError as exc:
        raise click.ClickException(f"{source}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"the {what} is not JSON: {exc}") from None
