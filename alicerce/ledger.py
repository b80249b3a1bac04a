"""The usage ledger: every billed thing is recorded here, and only here.

Chat completions, Responses and embeddings are *calls*: one record each, whatever their outcome,
settled against the key's limits and counted in the metrics. Knowledge work billed outside a
call (a search through the API, a document's indexing, a collection's re-embedding) is one
record with one line item. Either way the record goes to the batched request log, which is what
`/api/v1/usage` and `/api/v1/requests` read, so every amount a client sees is summed from here.

Who records a call: the service that answered it (`inference/chat.py`, a stream when it ends,
however it ends; `inference/embeddings.py`), or, when it got no answer, the pipeline
(`inference/pipeline.py`). Each call is recorded exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from alicerce.billing import LineItem, TokenUsage, merged
from alicerce.clock import utcnow
from alicerce.errors import AlicerceError
from alicerce.ids import new_id
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
    recorded: bool = False  # set by the ledger: a call is recorded exactly once


class UsageLedger:
    def __init__(self, request_log: RequestLog, limiter: Limiter, metrics: Metrics) -> None:
        self._log = request_log
        self._limiter = limiter
        self._metrics = metrics
        self._listeners: list[Callable[[str], None]] = []

    def listen(self, listener: Callable[[str], None]) -> None:
        """Has `listener` called with each record's id as it is queued, on the event loop: for
        whoever must know that a request has ended (the tests wait on it, where they polled)."""
        self._listeners.append(listener)

    def record_call(
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
        """A call's one record: its outcome, tokens and line items (merged by SKU and price)."""
        call.recorded = True
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
        for listener in self._listeners:
            listener(call.request_id)

    def record_work(
        self,
        item: LineItem,
        *,
        account_id: str,
        seconds: float,
        key_id: str | None = None,
        model: str | None = None,
        tokens: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Decimal:
        """Knowledge work billed outside a call: one record under its SKU, one line item."""
        record_id = new_id()
        self._log.record(
            RequestRecord(
                id=record_id,
                created_at=utcnow(),
                endpoint=item.sku,
                stream=False,
                account_id=account_id,
                key_id=key_id,
                model=model,
                latency_ms=round(seconds * 1000, 3),
                prompt_tokens=tokens,
                amount=item.amount,
                line_items=[item.to_record()],
                request_metadata=metadata,
            )
        )
        for listener in self._listeners:
            listener(record_id)
        return item.amount
