"""Every inference call is recorded once, whatever its outcome: in the request log (with its
line items), against the key's limits, and in the metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from alicerce.billing import LineItem, TokenUsage, merged
from alicerce.clock import utcnow
from alicerce.errors import AlicerceError
from alicerce.keys import Principal
from alicerce.limits import Limiter
from alicerce.metrics import Metrics
from alicerce.request_log import RequestLog, RequestRecord


@dataclass(slots=True)
class Call:
    """One inference call: who, through which gateway, since when."""

    request_id: str
    principal: Principal
    gateway_id: str | None
    endpoint: str
    started: float
    metadata: dict[str, Any] | None


class CallRecorder:
    def __init__(self, request_log: RequestLog, limiter: Limiter, metrics: Metrics) -> None:
        self._log = request_log
        self._limiter = limiter
        self._metrics = metrics

    def record(
        self,
        call: Call,
        *,
        model: str | None,
        status: int,
        usage: TokenUsage,
        items: list[LineItem],
        stream: bool = False,
        ttft_ms: float | None = None,
        error: AlicerceError | None = None,
    ) -> None:
        latency_ms = (time.perf_counter() - call.started) * 1000
        amount = sum((item.amount for item in items), Decimal(0))
        self._log.record(
            RequestRecord(
                id=call.request_id,
                created_at=utcnow(),
                endpoint=call.endpoint,
                stream=stream,
                account_id=call.principal.account_id,
                key_id=call.principal.key_id,
                gateway_id=call.gateway_id,
                model=model,
                status_code=status,
                error_type=error.type if error else None,
                error_message=error.message if error else None,
                latency_ms=round(latency_ms, 3),
                ttft_ms=round(ttft_ms, 3) if ttft_ms is not None else None,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                tokens_estimated=usage.estimated,
                amount=amount,
                line_items=[item.to_record() for item in merged(items)],
                request_metadata=call.metadata,
            )
        )
        self._limiter.settle(call.principal, usage.total_tokens, amount)
        self._metrics.observe_request(
            call.endpoint, status, latency_ms / 1000, usage, stream, ttft_ms
        )
