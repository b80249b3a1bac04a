"""Which database a URL names, read before anything connects to it.

Alicerce runs on two databases: SQLite, through Python's own driver, and PostgreSQL, through
psycopg 3 (the driver it ships). Any other URL (another database, another driver, a form
SQLAlchemy cannot parse) is refused here in one line that says what is accepted, rather than
by a driver's traceback at the first connection. Nothing here ever repeats a password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ACCEPTED = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db "
    "or postgresql://user:password@host:port/database"
)
SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
POSTGRES_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}  # `postgres://`: Heroku's
POSTGRES_DRIVER = "postgresql+psycopg"
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


class DatabaseProblem(Exception):
    """A database Alicerce cannot use as it is configured: one line, without secrets."""


def redact(text: str) -> str:
    """`text` with the password of any URL in it replaced by `***`."""
    return _PASSWORD.sub(r"\1***@", text)


@dataclass(frozen=True)
class DatabaseUrl:
    url: URL  # with the driver Alicerce uses

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def in_memory(self) -> bool:
        return self.is_sqlite and self.url.database in (None, "", ":memory:")

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite file, made absolute against the working directory as SQLite does; none
        for an in-memory database or a `file:` URI (whose path SQLite reads itself)."""
        if not self.is_sqlite or self.in_memory or self.url.query.get("uri") == "true":
            return None
        return Path(str(self.url.database)).absolute()

    def where(self) -> str:
        """How a message names the database: the SQLite file, or PostgreSQL's host:port/name."""
        if self.is_sqlite:
            return str(self.sqlite_file or self.url.database or ":memory:")
        host = self.url.host or "localhost"
        return f"{host}:{self.url.port or 5432}/{self.url.database or self.url.username or ''}"

    def hidden(self) -> str:
        """The URL with its password hidden, for printing."""
        return self.url.render_as_string(hide_password=True)


def parse_database_url(text: str) -> DatabaseUrl:
    """The URL Alicerce connects with, or `DatabaseProblem` naming what is accepted."""
    scheme = text.partition(":")[0]
    if scheme in POSTGRES_DRIVERS and "://" in text:
        text = POSTGRES_DRIVER + text[len(scheme) :]
    try:
        url = make_url(text)
    except ArgumentError:
        raise DatabaseProblem(
            f"ALICERCE_DATABASE_URL: {redact(text)!r} is not a database URL; Alicerce takes "
            f"{ACCEPTED}."
        ) from None
    backend, driver = url.get_backend_name(), url.drivername
    if backend == "sqlite" and driver in SQLITE_DRIVERS:
        if url.host or url.username or url.port:
            raise DatabaseProblem(
                f"ALICERCE_DATABASE_URL: {url.render_as_string(hide_password=True)!r} names a "
                "host, which SQLite has none of: a SQLite URL has three slashes before a "
                "relative path (sqlite:///alicerce.db) and four before an absolute one."
            )
        return DatabaseUrl(url)
    if driver == POSTGRES_DRIVER:
        return DatabaseUrl(url)
    if backend in ("sqlite", "postgresql"):
        raise DatabaseProblem(
            f"ALICERCE_DATABASE_URL: the driver {url.get_driver_name()!r} is not one Alicerce "
            f"uses; write {backend}:// without a driver ({ACCEPTED})."
        )
    raise DatabaseProblem(
        f"ALICERCE_DATABASE_URL: {backend!r} is not a database Alicerce runs on; it takes "
        f"{ACCEPTED}."
    )
