"""The database URL checked at start: one line per problem, exit 1, and no database made
from nothing except by `init`, `demo` or ALICERCE_CREATE_DATABASE."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from alicerce.cli import main
from alicerce.store import Database
from alicerce.store.readiness import prepare_database
from alicerce.store.url import DatabaseProblem, parse_database_url
from tests.conftest import POSTGRES_ADMIN_URL, create_database

ACCEPTED = "Alicerce takes sqlite:///relative/path.db"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with no ALICERCE_* setting: what a command finds there is
    what it made."""
    for name in [n for n in os.environ if n.startswith("ALICERCE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def _serve(workdir: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`alicerce serve` with a timeout: a server that starts anyway fails the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ALICERCE_")}
    return subprocess.run(
        [sys.executable, "-m", "alicerce", "serve", "--port", port, *args],
        env=environ | {"ALICERCE_DATABASE_URL": url},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_serve_refuses_a_mistyped_sqlite_path_and_creates_nothing(workdir: Path) -> None:
    line = _one_line(_serve(workdir, "sqlite:///alicerec.db", "--workers", "2"))
    assert line == (
        f"Error: SQLite: there is no database at {workdir / 'alicerec.db'}; run `alicerce init` "
        "to create it (or set ALICERCE_CREATE_DATABASE=true)."
    )
    assert list(workdir.iterdir()) == []  # no database, no generated secret key beside it


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://u:hunter2@db/alicerce", "'mysql' is not a database Alicerce runs on; it takes"),
        ("sqlite:/alicerce.db", f"'sqlite:/alicerce.db' is not a database URL; {ACCEPTED}"),
        ("sqlite:///no/such/folder/a.db", "SQLite: the folder "),
    ],
)
def test_serve_refuses_a_url_it_cannot_use_in_one_line(
    workdir: Path, url: str, expected: str
) -> None:
    line = _one_line(_serve(workdir, url))
    assert expected in line and "hunter2" not in line
    assert list(workdir.iterdir()) == []


def test_serve_names_an_unreachable_postgresql_without_its_password(
    workdir: Path, closed_port: int
) -> None:
    url = f"postgresql://alicerce:hunter2@127.0.0.1:{closed_port}/alicerce"
    line = _one_line(_serve(workdir, url, "--workers", "2"))
    assert line.startswith(f"Error: PostgreSQL at 127.0.0.1:{closed_port} is unreachable: ")
    assert "refused" in line and "hunter2" not in line


def test_commands_that_open_the_database_refuse_a_missing_one(workdir: Path) -> None:
    for command in (["accounts", "list"], ["usage", "some-account"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1
        assert "there is no database at" in result.output and "alicerce init" in result.output
    assert list(workdir.iterdir()) == []


def test_init_and_the_setting_create_the_database(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALICERCE_DATABASE_URL", f"sqlite:///{workdir / 'made.db'}")
    made = CliRunner().invoke(main, ["init"])
    assert made.exit_code == 0, made.output
    assert "Root key" in made.output and (workdir / "made.db").is_file()
    monkeypatch.setenv("ALICERCE_DATABASE_URL", f"sqlite:///{workdir / 'asked.db'}")
    monkeypatch.setenv("ALICERCE_CREATE_DATABASE", "true")
    asked = CliRunner().invoke(main, ["accounts", "list"])
    assert asked.exit_code == 0, asked.output
    assert (workdir / "asked.db").is_file()


# -- the checks themselves -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+asyncpg://u@h/d", "the driver 'asyncpg' is not one Alicerce uses"),
        ("oracle://u@h/d", "'oracle' is not a database Alicerce runs on"),
        ("sqlite://alicerce.db", "names a host, which SQLite has none of"),
        ("", "'' is not a database URL"),
    ],
)
def test_urls_alicerce_cannot_use_are_refused(url: str, expected: str) -> None:
    with pytest.raises(DatabaseProblem, match=r"^ALICERCE_DATABASE_URL: ") as refused:
        parse_database_url(url)
    assert expected in str(refused.value)


def test_accepted_urls_get_the_drivers_alicerce_ships() -> None:
    for url in ("postgres://u:p@h/d", "postgresql://u:p@h:5433/d", "postgresql+psycopg://u@h/d"):
        target = parse_database_url(url)
        assert target.url.drivername == "postgresql+psycopg"
        assert "p@" not in target.hidden()
    assert parse_database_url("postgresql://u:p@h:5433/d").where() == "h:5433/d"
    assert parse_database_url("sqlite:////srv/a.db").sqlite_file == Path("/srv/a.db")
    assert parse_database_url("sqlite+pysqlite:///a.db").sqlite_file == Path.cwd() / "a.db"


def test_an_in_memory_database_is_refused(workdir: Path) -> None:
    for url in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(DatabaseProblem, match="in-memory SQLite database is new and empty"):
            prepare_database(Database(url), create=True)


def test_a_file_that_is_not_a_database_is_named(workdir: Path) -> None:
    (workdir / "notes.db").write_text("not SQLite\n" * 100)
    with pytest.raises(DatabaseProblem, match=r"notes\.db is not a SQLite database"):
        prepare_database(Database("sqlite:///notes.db"), create=False)


def test_an_empty_or_foreign_database_is_not_served_from(workdir: Path) -> None:
    sqlite3.connect(workdir / "empty.db").close()  # a file, with no table in it
    with pytest.raises(DatabaseProblem, match="has no Alicerce schema yet; run `alicerce init`"):
        prepare_database(Database("sqlite:///empty.db"), create=False)
    with sqlite3.connect(workdir / "other.db") as other:
        other.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(DatabaseProblem, match=r"holds other tables \(invoices\) but no Alicerce"):
        prepare_database(Database("sqlite:///other.db"), create=False)
    database = Database("sqlite:///other.db")
    prepare_database(database, create=True)  # asked for: Alicerce's tables beside them
    assert {"invoices", "accounts"} <= set(sa.inspect(database.engine).get_table_names())
    database.dispose()


def test_a_database_behind_is_upgraded_and_one_ahead_refused(workdir: Path) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    database = Database("sqlite:///old.db")
    config = database.alembic_config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")  # as an older Alicerce left it
    prepare_database(database, create=False)
    head = ScriptDirectory.from_config(config).get_current_head()
    with database.engine.connect() as connection:
        revision = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    assert revision == head != "0001"
    with database.engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(DatabaseProblem, match="at schema revision '9999', which this version"):
        prepare_database(database, create=False)
    database.dispose()


@pytest.mark.postgres
def test_postgresql_problems_name_the_server_and_the_database(
    workdir: Path, postgres_url: str
) -> None:
    server = sa.make_url(POSTGRES_ADMIN_URL)
    where = f"PostgreSQL at {server.host}:{server.port or 5432}"
    missing = postgres_url + "_missing"
    with pytest.raises(DatabaseProblem) as no_database:
        prepare_database(Database(missing), create=True)
    name = sa.make_url(missing).database
    assert str(no_database.value) == (
        f"{where} has no database '{name}' (create it first: createdb {name})."
    )
    stranger = sa.make_url(postgres_url).set(username="nobody_" + name[-6:], password="hunter2")
    with pytest.raises(DatabaseProblem) as refused:
        prepare_database(Database(stranger.render_as_string(hide_password=False)), create=True)
    assert str(refused.value).startswith(f"{where} refused the user 'nobody_")
    assert "hunter2" not in str(refused.value)
    empty = Database(postgres_url)
    with pytest.raises(DatabaseProblem, match="has no Alicerce schema yet"):
        prepare_database(empty, create=False)
    create_database(postgres_url)
    prepare_database(empty, create=False)  # made now: served from, as it is
    empty.dispose()
