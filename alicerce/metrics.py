"""Prometheus metrics, on a registry of the app's own (not the process-global default).

With several worker processes (`alicerce serve --workers N`), each writes its samples to
`PROMETHEUS_MULTIPROC_DIR` (set by `serve` before the workers start) and `/metrics` sums
every worker's, whichever worker answers.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from alicerce.billing import TokenUsage

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "alicerce_requests",
            "Inference requests by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "alicerce_request_duration_seconds",
            "Inference request duration, to the last byte.",
            ["endpoint", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "alicerce_time_to_first_token_seconds",
            "Streaming: time to the first content token.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "alicerce_tokens",
            "Tokens processed, by kind (prompt, completion, cached).",
            ["kind"],
            registry=self.registry,
        )
        # `.labels()` hashes and locks on every call; the label sets are few, keep the children.
        self._requests = cache(self.requests.labels)
        self._latency = cache(self.latency.labels)
        self._ttft = cache(self.ttft.labels)
        self._prompt: Any = self.tokens.labels("prompt")
        self._completion: Any = self.tokens.labels("completion")
        self._cached: Any = self.tokens.labels("cached")

    def observe_request(
        self,
        endpoint: str,
        status: int,
        seconds: float,
        usage: TokenUsage,
        stream: bool,
        ttft_ms: float | None,
    ) -> None:
        self._requests(endpoint, str(status)).inc()
        self._latency(endpoint, "true" if stream else "false").observe(seconds)
        if ttft_ms is not None:
            self._ttft(endpoint).observe(ttft_ms / 1000)
        if usage.prompt_tokens:
            self._prompt.inc(usage.prompt_tokens)
        if usage.completion_tokens:
            self._completion.inc(usage.completion_tokens)
        if usage.cached_tokens:
            self._cached.inc(usage.cached_tokens)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
