"""Prometheus metrics, on a registry of the app's own (not the process-global default)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

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

    def observe_request(
        self,
        endpoint: str,
        status: int,
        seconds: float,
        usage: TokenUsage,
        stream: bool,
        ttft_ms: float | None,
    ) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint, "true" if stream else "false").observe(seconds)
        if ttft_ms is not None:
            self.ttft.labels(endpoint).observe(ttft_ms / 1000)
        if usage.prompt_tokens:
            self.tokens.labels("prompt").inc(usage.prompt_tokens)
        if usage.completion_tokens:
            self.tokens.labels("completion").inc(usage.completion_tokens)
        if usage.cached_tokens:
            self.tokens.labels("cached").inc(usage.cached_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
