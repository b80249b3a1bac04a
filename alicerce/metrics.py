"""Prometheus metrics, on a registry of the app's own (not the process-global default).

With several worker processes (`alicerce serve --workers N`), each writes its samples to
`PROMETHEUS_MULTIPROC_DIR` (set by `serve` before the workers start) and `/metrics` sums
every worker's, whichever worker answers.

Requests in flight are a plain count (`calls_open`, moved by the ledger: a gauge's lock would
cost every request two more updates), written to the gauge when `/metrics` is rendered and, with
several workers, every `SYNC_INTERVAL_S` by each worker (`sync_in_flight`); the gauge is summed
over live workers (`livesum`), and the supervisor drops a dead worker's share
(`alicerce/workers.py`).

Bounded cardinality: every label value comes from a small set the operator controls, never from
what a client sends.
- `gateway`: the gateway's slug (`name:1a2b`). The first `ALICERCE_METRICS_MAX_GATEWAYS` (100)
  distinct gateways a worker process sees get their own label value; requests through any
  other gateway count under `other`, until the process restarts. Requests without a gateway
  (a catalog model called by its id, embeddings) have `none`. A renamed gateway starts a new
  series (its slug changed).
- `model`, `upstream`, `from_model`, `to_model`: the catalog id of the model that served (or
  failed), `endpoint` for a gateway's own endpoint (its model name is the user's to choose),
  `none` before any model was chosen; capped at `MAX_MODELS` distinct values (beyond: `other`),
  which a catalog does not reach.
- `status` of an upstream error: its class (`429`, `4xx`, `5xx`, `timeout`, `unreachable`,
  `invalid`), not every code; `limit` of a refusal: `rpm`, `tpm` or `budget`; `mode` of a
  search: `hybrid`, `vector` or `keyword`.

The hot path pays a dict lookup for each label and one cached lookup for the request's label
children (`.labels()` hashes and locks on every call, so the children are kept).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from alicerce.billing import TokenUsage

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
MAX_MODELS = 200
OTHER = "other"
NONE = "none"
SYNC_INTERVAL_S = 1.0


class BoundedLabel:
    """Label values as they are first seen, up to `limit` of them; `other` after that (and
    `none` for None). The hot path reads `seen` itself, and calls only for a new value."""

    __slots__ = ("_limit", "seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.seen: dict[str | None, str] = {None: NONE}

    def __call__(self, value: str | None) -> str:
        label = self.seen.get(value)
        if label is None:
            assert value is not None
            if len(self.seen) > self._limit:  # `None` is in `seen` too
                return OTHER
            label = self.seen[value] = value
        return label


@dataclass(slots=True)
class _Series:
    """The children one kind of request observes, made once."""

    latency: Any
    prompt: Any
    completion: Any
    cached: Any


class Metrics:
    def __init__(self, *, max_gateways: int = 100) -> None:
        self.registry = registry = CollectorRegistry()
        self.gateway_label = BoundedLabel(max_gateways)
        self.model_label = BoundedLabel(MAX_MODELS)
        served = ["gateway", "model"]
        self.requests = Counter(
            "alicerce_requests",
            "Inference requests by endpoint, HTTP status, gateway and model.",
            ["endpoint", "status", *served],
            registry=registry,
        )
        self.latency = Histogram(
            "alicerce_request_duration_seconds",
            "Inference request duration, to the last byte.",
            ["endpoint", "stream", *served],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "alicerce_time_to_first_token_seconds",
            "Streaming: time to the first content token.",
            ["endpoint", *served],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "alicerce_tokens",
            "Tokens processed, by kind (prompt, completion, cached), gateway and model.",
            [*served, "kind"],
            registry=registry,
        )
        self.calls_open = 0  # requests in flight, counted by the ledger
        self.in_flight = Gauge(
            "alicerce_requests_in_flight",
            "Inference requests begun and not yet recorded (streams until they end).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.upstream_errors = Counter(
            "alicerce_upstream_errors",
            "Failed upstream attempts, by upstream model and status class.",
            ["upstream", "status"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "alicerce_fallbacks",
            "Requests moved from a failed model to the next one.",
            ["from_model", "to_model"],
            registry=registry,
        )
        self.limit_refusals = Counter(
            "alicerce_limit_refusals",
            "Requests refused by a key's limit (429): rpm, tpm or budget.",
            ["limit"],
            registry=registry,
        )
        self.request_log_pending = Gauge(
            "alicerce_request_log_pending",
            "Request-log records waiting to be written (they pile up while the database is "
            "unreachable).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.request_log_dropped = Counter(
            "alicerce_request_log_dropped",
            "Request-log records dropped: the queue was full while the database was "
            "unreachable, or a record could not be written.",
            registry=registry,
        )
        self.unavailable = Counter(
            "alicerce_dependency_unavailable",
            "Failures of an unreachable dependency: `database` (each query or write that failed; "
            "a request answers 503) or `redis` (each request: a budget key answers 503, rpm/tpm "
            "are counted by the process alone).",
            ["dependency"],
            registry=registry,
        )
        self.searches = Histogram(
            "alicerce_knowledge_search_duration_seconds",
            "Knowledge searches (through the API and grounded chat) and their duration.",
            ["mode"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.documents_indexed = Counter(
            "alicerce_documents_indexed", "Documents indexed into collections.", registry=registry
        )
        self.chunks_indexed = Counter(
            "alicerce_chunks_indexed", "Chunks written by indexing.", registry=registry
        )
        self.indexing_failures = Counter(
            "alicerce_indexing_failures", "Documents whose indexing failed.", registry=registry
        )
        self.connections_refused = Counter(
            "alicerce_connections_refused",
            "Client connections refused or closed by the server's limits, by reason "
            "(too_many_connections, header_timeout, body_timeout, header_too_large, "
            "malformed_http).",
            ["reason"],
            registry=registry,
        )
        self.requests_shed = Counter(
            "alicerce_requests_shed",
            "Requests refused at once with 503 because a worker's bound was reached: "
            "in_flight (ALICERCE_MAX_REQUESTS_IN_FLIGHT), upstream_connections "
            "(ALICERCE_UPSTREAM_MAX_CONNECTIONS_PER_HOST) or event_loop_lag "
            "(ALICERCE_MAX_EVENT_LOOP_LAG_MS: out of CPU).",
            ["reason"],
            registry=registry,
        )
        self.gc_pauses = Histogram(
            "alicerce_gc_pause_seconds",
            "A worker's garbage collections and how long each paused it, by trigger: idle "
            "(nothing in flight), interval (ALICERCE_GC_MAX_INTERVAL_S) or objects.",
            ["trigger"],
            buckets=(0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self._shed = cache(self.requests_shed.labels)
        self._requests = cache(self._requests_child)
        self._series = cache(self._new_series)
        self._ttft = cache(self.ttft.labels)
        self._upstream_error = cache(self.upstream_errors.labels)
        self._fallback = cache(self.fallbacks.labels)
        self._refusal = cache(self.limit_refusals.labels)
        self._search = cache(self.searches.labels)

    def connection_refused(self, reason: str) -> None:
        """A connection the HTTP server refused or closed (`alicerce.connections`)."""
        self.connections_refused.labels(reason).inc()

    def gc_paused(self, trigger: str, seconds: float) -> None:
        self.gc_pauses.labels(trigger).observe(seconds)

    def shed(self, reason: str) -> None:
        """A request refused by a worker's overload bound (`in_flight`, `upstream_connections`,
        `event_loop_lag`)."""
        self._shed(reason).inc()

    def _requests_child(self, endpoint: str, status: int, gateway: str, model: str) -> Any:
        return self.requests.labels(endpoint, str(status), gateway, model)

    def _new_series(self, endpoint: str, stream: bool, gateway: str, model: str) -> _Series:
        tokens = self.tokens.labels
        return _Series(
            self.latency.labels(endpoint, "true" if stream else "false", gateway, model),
            tokens(gateway, model, "prompt"),
            tokens(gateway, model, "completion"),
            tokens(gateway, model, "cached"),
        )

    def observe_request(
        self,
        endpoint: str,
        status: int,
        seconds: float,
        usage: TokenUsage,
        stream: bool,
        ttft_ms: float | None,
        *,
        gateway: str | None = None,
        model: str | None = None,
    ) -> None:
        """One recorded request; `gateway` is its slug, `model` the catalog id that served it
        (`endpoint` for a gateway's own)."""
        gateway_label = self.gateway_label.seen.get(gateway) or self.gateway_label(gateway)
        model_label = self.model_label.seen.get(model) or self.model_label(model)
        self._requests(endpoint, status, gateway_label, model_label).inc()
        series = self._series(endpoint, stream, gateway_label, model_label)
        series.latency.observe(seconds)
        if ttft_ms is not None:
            self._ttft(endpoint, gateway_label, model_label).observe(ttft_ms / 1000)
        if usage.prompt_tokens:
            series.prompt.inc(usage.prompt_tokens)
        if usage.completion_tokens:
            series.completion.inc(usage.completion_tokens)
        if usage.cached_tokens:
            series.cached.inc(usage.cached_tokens)

    def upstream_failed(self, upstream: str | None, status: str) -> None:
        self._upstream_error(self.model_label(upstream), status).inc()

    def fell_back(self, from_model: str | None, to_model: str | None) -> None:
        self._fallback(self.model_label(from_model), self.model_label(to_model)).inc()

    def refused(self, limit: str) -> None:
        self._refusal(limit).inc()

    def searched(self, mode: str, seconds: float) -> None:
        self._search(mode).observe(seconds)

    async def sync_in_flight(self) -> None:
        """With several workers: writes this worker's requests in flight to the shared gauge
        every `SYNC_INTERVAL_S`, so that whichever worker renders `/metrics` sums them all."""
        while True:
            self.in_flight.set(self.calls_open)
            await asyncio.sleep(SYNC_INTERVAL_S)

    def render(self) -> bytes:
        self.in_flight.set(self.calls_open)  # this worker's, as of now
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
