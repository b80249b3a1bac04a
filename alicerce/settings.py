"""Operator settings: one typed object, read once at start and passed down.

Sources, highest first: init arguments, `ALICERCE_*` environment variables, a `.env` file,
then the `[server]` table of the optional TOML config file named by `ALICERCE_CONFIG`.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class ConfigError(ValueError):
    """A setting that cannot be right: one line per problem, naming where it came from."""


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Reads the `[server]` table of the catalog/config TOML file, when one is named. A key that
    names no setting is refused (a typo would otherwise be a silently ignored setting)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("ALICERCE_CONFIG")
        if not path or not Path(path).is_file():
            return {}
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
        server = data.get("server", {})
        if not isinstance(server, dict):
            raise ConfigError(f"{path}: [server] must be a table of settings.")
        known = set(Settings.model_fields)
        problems = []
        for key in sorted(set(server) - known):
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{path}: [server] {key}: no such setting{hint}")
        if problems:
            raise ConfigError("\n".join(problems))
        return dict(server)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALICERCE_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = "sqlite:///alicerce.db"
    # Whether any command may create the database (or its schema) when there is none; `init`
    # and `demo` always may. Off, a mistyped SQLite path is refused, not a new empty database.
    create_database: bool = False
    redis_url: str | None = None
    root_key: str | None = None
    secret_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1)  # `serve --workers` overrides it
    allow_private_upstreams: bool = False
    config: str | None = None

    # Hot path and limits.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    upstream_connect_timeout_s: float = Field(default=10.0, gt=0)
    upstream_read_timeout_s: float = Field(default=120.0, gt=0)
    # Requests in flight, per worker: what a gateway in front of slow upstreams runs out of
    # first (BENCHMARKS.md, "Requests in flight"). A request past the bound gets 503 at once
    # (Envoy's overload manager sheds the same way) rather than a queue without end. Each
    # request holds at most one upstream connection, so the pool is sized to the bound.
    max_requests_in_flight: int = Field(default=4096, ge=1)
    # A worker whose event loop runs this late, tick after tick, is out of CPU: it sheds new
    # inference requests (503 worker_overloaded) until it catches up (alicerce/loop_lag.py).
    max_event_loop_lag_ms: float = Field(default=250.0, ge=0)
    upstream_pool_size: int = Field(default=4096, ge=1)
    # The longest a busy worker goes without a garbage collection (alicerce/gc_pacing.py); an
    # idle one collects at once. 0: CPython's own schedule, which pauses amid requests.
    gc_max_interval_s: float = Field(default=300.0, ge=0)
    upstream_max_connections_per_host: int = Field(default=4096, ge=1)
    upstream_retries: int = Field(default=1, ge=0, le=5)
    upstream_max_backoff_s: float = Field(default=2.0, ge=0)
    cache_ttl_s: float = Field(default=5.0, ge=0)
    catalog_poll_interval_s: float = Field(default=2.0, gt=0)
    # `serve --workers N`: how long a worker may take to answer the supervisor's health check
    # before it is killed and restarted. A worker starting up imports the app (2.3 s on a quiet
    # 2-core machine, ~9 s seen under load) and answers only when the import lets its ping
    # thread run; uvicorn's 5 s default killed workers in a loop there.
    worker_healthcheck_timeout_s: int = Field(default=30, ge=1)
    # Client connections, per worker process (alicerce/connections.py): time from the
    # connection (or a keep-alive request's first byte) to complete headers; the longest pause
    # between two pieces of a body; the request line and headers' size; open connections.
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    http_body_timeout_s: float = Field(default=30.0, gt=0)
    http_max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    http_max_connections: int = Field(default=8192, ge=1)
    request_log_flush_interval_s: float = Field(default=0.1, gt=0)
    request_log_batch_size: int = Field(default=500, ge=1)
    request_log_max_pending: int = Field(default=100_000, ge=1)

    # Local model.
    local_model_path: str | None = None
    local_model_context: int = Field(default=4096, ge=256)
    local_model_threads: int | None = None
    local_model_concurrency: int = Field(default=1, ge=1)
    local_model_queue_timeout_s: float = Field(default=30.0, gt=0)

    # Knowledge collections.
    max_document_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    knowledge_chunk_tokens: int = Field(default=256, ge=32, le=512)  # e5 reads 512 at most
    knowledge_chunk_overlap_tokens: int = Field(default=32, ge=0, le=256)
    # Bounds on one document's indexing, refused past them (the document `failed`, the reason
    # its `error`), and how many documents are indexed at once (one per account at most).
    knowledge_max_document_chunks: int = Field(default=5_000, ge=1)
    knowledge_max_indexing_s: float = Field(default=900.0, gt=0)
    knowledge_indexing_workers: int = Field(default=2, ge=1, le=64)
    # Where the in-process vector graphs are saved between restarts (a cache: the database
    # holds every vector). Default: `alicerce.vectors/` beside `alicerce.db` on SQLite, none else.
    knowledge_index_dir: Path | None = None

    log_level: str = "info"
    log_format: str = "json"
    # One `alicerce.requests` line (at info) per inference request.
    log_requests: bool = True
    # A bearer token `/metrics` requires when set (else it is open, as `/healthz` is).
    metrics_key: str | None = None
    # Gateways with a label value of their own in `/metrics`, per process; the rest: `other`.
    metrics_max_gateways: int = Field(default=100, ge=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, dotenv_settings, _ConfigFileSource(settings_cls))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def vector_index_dir(self) -> Path | None:
        if self.knowledge_index_dir is not None:
            return self.knowledge_index_dir
        if self.is_sqlite and ":///" in self.database_url:
            db_path = self.database_url.split(":///", 1)[1]
            if db_path and db_path != ":memory:":
                return Path(db_path).resolve().with_suffix(".vectors")
        return None

    def secret_key_path(self) -> Path:
        """Where a generated secret key is kept: beside the SQLite file, or in the cwd."""
        if self.is_sqlite and ":///" in self.database_url:
            db_path = self.database_url.split(":///", 1)[1]
            if db_path and db_path != ":memory:":
                return Path(db_path).resolve().parent / "alicerce.secret"
        return Path.cwd() / "alicerce.secret"
