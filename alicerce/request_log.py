"""The request log: one record per inference request, written in batches off the request path.

Records are queued in memory and flushed by a background task every
`ALICERCE_REQUEST_LOG_FLUSH_INTERVAL_S` (0.1 s) or when a batch fills, in a worker thread, with
one multi-row INSERT. A graceful shutdown flushes everything; a hard kill can lose at most the
records of the last flush interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

from alicerce.store import Database
from alicerce.store.tables import LineItemRow, RequestLogRow

log = logging.getLogger("alicerce.request_log")


@dataclass(slots=True)
class RequestRecord:
    id: str
    created_at: datetime
    endpoint: str
    stream: bool
    account_id: str | None = None
    key_id: str | None = None
    gateway_id: str | None = None
    model: str | None = None
    status_code: int = 200
    error_type: str | None = None
    error_message: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    tokens_estimated: bool = False
    amount: Decimal = Decimal(0)
    line_items: list[dict[str, Any]] = field(default_factory=list)
    request_metadata: dict[str, Any] | None = None


class RequestLog:
    def __init__(self, db: Database, *, flush_interval_s: float, batch_size: int) -> None:
        self._db = db
        self._interval = flush_interval_s
        self._batch_size = batch_size
        self._pending: list[RequestRecord] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def record(self, entry: RequestRecord) -> None:
        """Queues a record; never blocks the request."""
        self._pending.append(entry)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="request-log-writer")

    async def close(self) -> None:
        """Stops the writer and flushes what is left."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()

    async def flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._batch_size]
            del self._pending[: len(batch)]
            try:
                await asyncio.to_thread(self.write, batch)
            except Exception:
                log.exception("request log: could not write %d records; will retry", len(batch))
                self._pending[:0] = batch
                if self._closing:
                    return
                await asyncio.sleep(self._interval)

    def write(self, batch: list[RequestRecord]) -> None:
        """Writes records and their line items in one transaction: all of a batch, or none."""
        requests, items = [], []
        for record in batch:
            row = asdict(record)
            row["amount"] = str(record.amount)
            requests.append(row)
            items += [
                {
                    "request_id": record.id,
                    "account_id": record.account_id,
                    "key_id": record.key_id,
                    "gateway_id": record.gateway_id,
                    "sku": item["sku"],
                    "quantity": item["quantity"],
                    "unit_price": item["unit_price"],
                    "description": item["description"],
                    "created_at": record.created_at,
                }
                for item in record.line_items
            ]
        with self._db.session() as session:
            session.execute(insert(RequestLogRow), requests)
            if items:
                session.execute(insert(LineItemRow), items)

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            await self.flush()
