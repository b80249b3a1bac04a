"""A database checked before anything is served from it, then brought up to date.

Each way a configured database can be wrong is one line (`DatabaseProblem`) rather than the
driver's traceback: PostgreSQL unreachable, refusing the user, or without the named database;
a SQLite file in a folder that does not exist. And a server never starts on a database made
from nothing: a mistyped SQLite path would otherwise be a new, empty database served without a
word. Creating one is asked for (`alicerce init`, `alicerce demo`, ALICERCE_CREATE_DATABASE);
an Alicerce database that is behind is upgraded, as it always was.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect
from sqlalchemy.exc import DBAPIError

from alicerce.errors import StoreUnavailable
from alicerce.store.database import SCHEMA_REVISION, Database
from alicerce.store.url import DatabaseProblem, DatabaseUrl

HOW_TO_CREATE = "run `alicerce init` to create it (or set ALICERCE_CREATE_DATABASE=true)"


def prepare_database(db: Database, *, create: bool) -> None:
    """Checks `db` and migrates it to the newest schema; `create` lets it start from nothing.
    Raises `DatabaseProblem` (nothing is created then)."""
    target = db.target
    if target.in_memory:
        raise DatabaseProblem(
            "ALICERCE_DATABASE_URL: an in-memory SQLite database is new and empty for every "
            "connection; name a file (sqlite:///alicerce.db)."
        )
    _check_sqlite_file(target, create=create)
    try:
        with db.engine.connect() as connection:
            _check_schema(db, connection, create=create)
    except DBAPIError as exc:
        raise DatabaseProblem(_connection_problem(target, exc.orig)) from None
    except StoreUnavailable as exc:  # unreachable (`database.py`): the driver's error is its cause
        raise DatabaseProblem(_connection_problem(target, exc.__cause__)) from None
    db.migrate()


def _check_sqlite_file(target: DatabaseUrl, *, create: bool) -> None:
    path = target.sqlite_file
    if path is None:
        return
    if not path.parent.is_dir():
        raise DatabaseProblem(
            f"SQLite: the folder {path.parent} does not exist (ALICERCE_DATABASE_URL names "
            f"{path} in it)."
        )
    if path.is_dir():
        raise DatabaseProblem(f"SQLite: {path} is a folder, not a database file.")
    if not path.exists() and not create:
        raise DatabaseProblem(f"SQLite: there is no database at {path}; {HOW_TO_CREATE}.")


def _check_schema(db: Database, connection: Connection, *, create: bool) -> None:
    where = _describe(db.target)
    current = db.schema_revisions(connection)
    if current == {SCHEMA_REVISION}:
        return  # up to date: the common case, without importing Alembic
    if not current:
        if create:
            return
        tables = [t for t in inspect(connection).get_table_names() if t != "alembic_version"]
        if tables:
            shown = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
            raise DatabaseProblem(
                f"{where} holds other tables ({shown}) but no Alicerce schema: is "
                "ALICERCE_DATABASE_URL the right database? If it is, `alicerce init` adds "
                "Alicerce's tables beside them."
            )
        raise DatabaseProblem(f"{where} has no Alicerce schema yet; {HOW_TO_CREATE}.")
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    script = ScriptDirectory.from_config(db.alembic_config())
    for revision in current:
        try:
            known = script.get_revision(revision) is not None
        except CommandError:
            known = False
        if not known:
            raise DatabaseProblem(
                f"{where} is at schema revision {revision!r}, which this version of Alicerce "
                "does not know: a newer Alicerce (or another program) wrote it."
            )


def _describe(target: DatabaseUrl) -> str:
    if target.is_sqlite:
        return f"The SQLite database {target.where()}"
    return f"The PostgreSQL database {target.where()}"


def _connection_problem(target: DatabaseUrl, orig: BaseException | None) -> str:
    """The driver's complaint as one line that says what to look at; never the password."""
    message = str(orig).strip()
    if target.url.password:
        message = message.replace(target.url.password, "***")
    first = message.splitlines()[0] if message else type(orig).__name__
    if target.is_sqlite:
        if "not a database" in first:
            return f"SQLite: {target.where()} is not a SQLite database ({first})."
        return f"SQLite: cannot open {target.where()}: {first}."
    url = target.url
    server = f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}"
    detail = first.rsplit("failed: ", 1)[-1].removeprefix("FATAL:").strip()
    lowered = message.lower()
    if 'database "' in lowered and "does not exist" in lowered:
        name = url.database
        return f"{server} has no database {name!r} (create it first: createdb {name})."
    if any(sign in lowered for sign in ('role "', "password", "pg_hba.conf", "authentication")):
        return f"{server} refused the user {url.username!r}: {detail}."
    if any(sign in lowered for sign in ("refused", "timeout", "resolve host", "translate host")):
        return f"{server} is unreachable: {detail} (right host and port? is it running?)"
    return f"{server}: cannot connect: {detail}"
