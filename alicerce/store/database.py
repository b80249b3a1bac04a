"""The engine and its sessions, with SQLite tuned for a concurrent server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from alicerce.errors import StoreUnavailable
from alicerce.store.url import parse_database_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration's revision: a database already there needs no Alembic at all, so a
# command on an up-to-date database does not import it (and Mako, and Pygments: ~0.3 s).
# `tests/test_store.py` fails when a new migration is not named here.
SCHEMA_REVISION = "0009"
MMAP_BYTES = 1 << 30  # SQLite maps at most this much of the file (its own cap is ~2 GB)
# PostgreSQL: how long a new connection may take (libpq waits for the OS, minutes, by default)
CONNECT_TIMEOUT_S = 10
UNAVAILABLE_RETRY_AFTER_S = 5  # the `retry-after` of a 503 while the database is unreachable


_SQLITE_OUTAGES = ("database is locked", "unable to open", "disk i/o error")


def _outage(context: ExceptionContext) -> bool:
    """A database that cannot be reached (refused, reset, gone, SQLite's lock held past its
    busy timeout) is the client's 503 with `retry-after`, raised as `StoreUnavailable` from
    wherever the query was (a key lookup, the pipeline, an admin route): never a 500. Other
    errors (integrity, data) stay what they are."""
    error = context.sqlalchemy_exception
    unreachable = context.is_disconnect or isinstance(error, OperationalError | InterfaceError)
    if unreachable and context.dialect is not None and context.dialect.name == "sqlite":
        # SQLite says OperationalError for a mistyped table too: only these are outages
        unreachable = any(s in str(error).lower() for s in _SQLITE_OUTAGES)
    return bool(unreachable)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; NORMAL sync is durable at each checkpoint
    # and crash-safe; the busy timeout makes concurrent writers wait instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Reads through a memory map, not a read() call a page: a knowledge search touches a few
    # hundred pages of a large file (measured: chunk rows 1.5 -> 0.95 ms, FTS5 ~25% faster).
    # Address space only; the pages are the OS's file cache, shared by every connection.
    cursor.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    cursor.close()


class Database:
    """Owns the engine; made in the app's lifespan (or a CLI command), disposed at its end."""

    def __init__(self, url: str) -> None:
        self.target = parse_database_url(url)  # an unusable URL stops here, in one line
        self.url = self.target.url.render_as_string(hide_password=False)
        self.is_sqlite = self.target.is_sqlite
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
            if "connect_timeout" not in self.target.url.query:
                kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        self.engine: Engine = create_engine(self.target.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _tune_sqlite)
        event.listen(self.engine, "handle_error", self._unavailable)
        self.on_unavailable: Callable[[], None] | None = None  # told of each outage error
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _unavailable(self, context: ExceptionContext) -> None:
        if context.is_pre_ping or not _outage(context):
            return  # a stale pooled connection: the pool replaces it (and says so if it cannot)
        if self.on_unavailable is not None:
            self.on_unavailable()
        raise StoreUnavailable(
            "The database is unreachable right now; try again shortly.",
            retry_after=UNAVAILABLE_RETRY_AFTER_S,
        ) from context.sqlalchemy_exception

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work: committed when the block ends, rolled back on any error."""
        with self._sessions.begin() as session:
            yield session

    def schema_revisions(self, connection: Connection) -> set[str]:
        """The revisions the database says it is at (none for a database without Alembic's
        table), read without Alembic."""
        if not inspect(connection).has_table("alembic_version"):
            return set()
        rows = connection.execute(text("SELECT version_num FROM alembic_version"))
        return {row[0] for row in rows}

    def migrate(self) -> None:
        """Brings the schema to the newest migration (idempotent). Alembic is imported here: a
        process that does not migrate never loads it."""
        with self.engine.connect() as connection:
            if self.schema_revisions(connection) == {SCHEMA_REVISION}:
                return
        from alembic import command

        config = self.alembic_config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def alembic_config(self) -> Config:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        return config

    def dispose(self) -> None:
        self.engine.dispose()
