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

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from alicerce.billing import LineItem, TokenUsage, merged
from alicerce.clock import utcnow
from alicerce.errors import AlicerceError
from alicerce.ids import new_id
from alicerce.keys import Principal
from alicerce.limits import Limiter, Reservation
from alicerce.metrics import Metrics
from alicerce.request_log import RequestLog, RequestRecord

if TYPE_CHECKING:
    from alicerce.upstreams.registry import Target

requests_log = logging.getLogger("alicerce.requests")

# A 429 of the key's own limits, by its error code (`limits.py`): the metric's `limit` label.
_LIMITS = {
    "requests_per_minute_exceeded": "rpm",
    "tokens_per_minute_exceeded": "tpm",
    "insufficient_quota": "budget",
}


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """One try of an upstream that failed, and what came next: `retry` the same upstream,
    `fallback` to the next one, or `fail` (none was left, or its stream had begun)."""

    upstream: str  # how logs name it: a catalog id, or a gateway's endpoint by its host
    model: str  # how metrics label it: a catalog id, or `endpoint`
    attempt: int  # 1 for the first try of this upstream
    status: int | None  # the upstream's HTTP status, None when none came (unreachable, timeout)
    error: AlicerceError
    then: Literal["retry", "fallback", "fail"]
    next: str | None = None  # the upstream tried next (`fallback`)
    next_model: str | None = None

    def status_class(self) -> str:
        """The metric's `status` label: `429`, `4xx`, `5xx`, `timeout`, `unreachable`,
        `saturated` or `invalid` (an answer that was not one)."""
        if self.status is not None:
            return "429" if self.status == 429 else f"{self.status // 100}xx"
        code = self.error.code
        if code == "upstream_timeout":
            return "timeout"
        if code == "upstream_saturated":  # refused here, before a connection was asked for
            return "saturated"
        return "unreachable" if code == "upstream_unavailable" else "invalid"

    def to_record(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream,
            "attempt": self.attempt,
            "status": self.status,
            "error": {
                "type": self.error.type,
                "code": self.error.code,
                "message": self.error.message,
            },
            "then": self.then,
            "next": self.next,
        }


@dataclass(slots=True)
class Call:
    """One inference call: who, through which gateway, since when; what served it and what
    failed on the way."""

    request_id: str
    principal: Principal
    gateway_id: str | None
    endpoint: str
    started: float
    metadata: dict[str, Any] | None
    recorded: bool = False  # set by the ledger: a call is recorded exactly once
    gateway: str | None = None  # the gateway's slug, for logs and metrics
    target: Target | None = None  # the upstream that served it (or was to)
    attempts: list[FailedAttempt] | None = None  # upstream tries that failed, in order
    reserved: Reservation | None = None  # of the key's budget at admission, settled at record
    # Whether the client has gone away (the HTTP layer's; asked once a whole answer is ready).
    client_gone: Callable[[], Awaitable[bool]] | None = None
    routing: dict[str, Any] | None = None  # `@auto`: how it was routed, kept in the request log


class UsageLedger:
    def __init__(
        self,
        request_log: RequestLog,
        limiter: Limiter,
        metrics: Metrics,
        *,
        log_requests: bool = True,
    ) -> None:
        self._log = request_log
        self._limiter = limiter
        self.metrics = metrics  # also for the knowledge work counted outside calls
        self._log_requests = log_requests
        self._listeners: list[Callable[[str], None]] = []

    def open_call(self, principal: Principal, endpoint: str, started: float) -> Call:
        """A new call by `principal`, in flight until it is recorded."""
        self.metrics.calls_open += 1
        return Call(new_id(), principal, None, endpoint, started, None)

    def release(self, call: Call) -> None:
        """A call that ends unrecorded (cancelled before it was answered) gives back what it
        reserved of its key's budget."""
        if call.reserved is not None and not call.recorded:
            self._limiter.settle(call.principal, 0, Decimal(0), call.reserved)
            call.reserved = None

    def listen(self, listener: Callable[[str], None]) -> None:
        """Has `listener` called with each record's id as it is queued, on the event loop: for
        whoever must know that a request has ended (the tests wait on it, where they polled)."""
        self._listeners.append(listener)

    def attempt_failed(self, call: Call, attempt: FailedAttempt) -> None:
        """An upstream try of `call` failed (`inference/fallback.py` logs it): kept for the
        call's record, counted now."""
        if call.attempts is None:
            call.attempts = []
        call.attempts.append(attempt)
        self.metrics.upstream_failed(attempt.model, attempt.status_class())
        if attempt.then == "fallback":
            self.metrics.fell_back(attempt.model, attempt.next_model)

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
        """A call's one record: its outcome, tokens and line items (merged by SKU and price);
        `model` is the model the upstream named (for embeddings, the catalog id). Also its
        request log line and its metrics."""
        call.recorded = True
        latency_ms = round((time.perf_counter() - call.started) * 1000, 3)
        ttft_ms = round(ttft_ms, 3) if ttft_ms is not None else None
        amount = sum((item.amount for item in items), Decimal(0))
        attempts = call.attempts
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
                latency_ms=latency_ms,
                ttft_ms=ttft_ms,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                tokens_estimated=usage.estimated,
                amount=amount,
                line_items=[item.to_record() for item in merged(items)],
                request_metadata=call.metadata,
                attempts=[attempt.to_record() for attempt in attempts] if attempts else None,
                routing=call.routing,
            )
        )
        self._limiter.settle(call.principal, usage.total_tokens, amount, call.reserved)
        call.reserved = None
        target = call.target
        metrics = self.metrics
        metrics.calls_open -= 1
        metrics.observe_request(
            call.endpoint,
            status,
            latency_ms / 1000,
            usage,
            stream,
            ttft_ms,
            gateway=call.gateway,
            model=target.label if target is not None else model,
        )
        if error is not None:
            limit = _LIMITS.get(error.code or "") if error.status == 429 else None
            if limit is not None:
                metrics.refused(limit)
        if self._log_requests and requests_log.isEnabledFor(logging.INFO):
            self._log_line(call, model, status, usage, stream, latency_ms, ttft_ms, amount, error)
        for listener in self._listeners:
            listener(call.request_id)

    @staticmethod
    def _log_line(
        call: Call,
        model: str | None,
        status: int,
        usage: TokenUsage,
        stream: bool,
        latency_ms: float,
        ttft_ms: float | None,
        amount: Decimal,
        error: AlicerceError | None,
    ) -> None:
        """The call's one `alicerce.requests` line: its fields as JSON keys, and a message
        short enough to read at a terminal."""
        principal = call.principal
        target = call.target
        upstream = target.name if target is not None else model
        fields = {
            "request_id": call.request_id,
            "account_id": principal.account_id,
            "key_id": principal.key_id,
            "gateway_id": call.gateway_id,
            "gateway": call.gateway,
            "endpoint": call.endpoint,
            "stream": stream,
            "status": status,
            "upstream": upstream,
            "model": model,
            "latency_ms": latency_ms,
            "ttft_ms": ttft_ms,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "amount": float(amount),
            "error_type": error.type if error is not None else None,
            "error_code": error.code if error is not None else None,
            "failed_attempts": len(call.attempts or ()),
        }
        message = "%s %s %d %s %s %.1f ms, %d+%d tokens, amount %s"
        args: list[Any] = [
            call.request_id,
            call.endpoint,
            status,
            call.gateway or "-",
            upstream or "-",
            latency_ms,
            usage.prompt_tokens,
            usage.completion_tokens,
            format(amount, "f"),
        ]
        if ttft_ms is not None:
            message += ", first token %.1f ms"
            args.append(ttft_ms)
        if call.attempts:
            message += ", after %d failed attempts"
            args.append(len(call.attempts))
        if error is not None:
            message += ": %s"
            args.append(error.code or error.type)
        # made and handled here: the caller's file and line (`findCaller`) say nothing useful
        record = requests_log.makeRecord(
            requests_log.name, logging.INFO, __file__, 0, message, tuple(args), None
        )
        record.fields = fields  # one attribute, spread into the JSON object (`logs.py`)
        requests_log.handle(record)

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
