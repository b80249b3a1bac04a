"""The batched request log: `flush()` is a barrier callers can wait on."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from alicerce.billing import LineItem
from alicerce.request_log import RequestLog, RequestRecord
from alicerce.store import Database
from alicerce.store.tables import LineItemRow, RequestLogRow


class HeldWrites(RequestLog):
    """Each batch's write waits until the test lets it go."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, flush_interval_s=3600, batch_size=10_000)
        self.writing = threading.Event()
        self.release = threading.Event()

    def write(self, requests: list[tuple[Any, ...]], items: list[tuple[Any, ...]]) -> None:
        self.writing.set()
        assert self.release.wait(10)
        super().write(requests, items)


def _record() -> RequestRecord:
    return RequestRecord(
        id=str(uuid.uuid4()), created_at=datetime.now(UTC), endpoint="x", stream=False
    )


def test_a_flush_waits_for_the_batch_already_in_flight(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'log.db'}")
    db.migrate()

    def rows() -> int:
        with db.session() as session:
            return int(session.execute(sa.text("SELECT count(*) FROM request_log")).scalar_one())

    async def run() -> None:
        log = HeldWrites(db)
        log.record(_record())
        in_flight = asyncio.create_task(log.flush())  # takes the batch, then waits to write it
        await asyncio.to_thread(log.writing.wait, 10)
        barrier = asyncio.create_task(log.flush())  # nothing queued: it must wait all the same
        for _ in range(5):  # an unguarded flush would be done after one turn of the loop
            await asyncio.sleep(0)
        assert not barrier.done()
        log.release.set()
        await barrier
        assert rows() == 1  # committed by the time the second flush returned
        await in_flight

    asyncio.run(run())
    db.dispose()


def test_request_log_batches_and_flushes_on_close(db: Database) -> None:
    async def run() -> None:
        log = RequestLog(db, flush_interval_s=10, batch_size=1000)  # only close() flushes
        await log.start()
        for i in range(250):
            log.record(
                RequestRecord(
                    id=str(uuid.uuid4()),
                    created_at=datetime.now(UTC),
                    endpoint="chat.completions",
                    stream=bool(i % 2),
                    prompt_tokens=i,
                    amount=Decimal("0.0000001") * i,
                    line_items=[LineItem("x", i, Decimal("0.0000001"), "d").to_record()],
                    request_metadata={"i": str(i)},
                )
            )
        await log.close()

    asyncio.run(run())
    with db.session() as session:
        count, tokens = session.execute(
            sa.select(sa.func.count(), sa.func.sum(RequestLogRow.prompt_tokens))
        ).one()
        amounts = session.execute(sa.select(RequestLogRow.amount)).scalars().all()
    assert count == 250
    assert tokens == sum(range(250))
    assert sum(Decimal(a) for a in amounts) == Decimal("0.0000001") * sum(range(250))
    with db.session() as session:
        quantity = session.execute(sa.select(sa.func.sum(LineItemRow.quantity))).scalar()
    assert quantity == sum(range(250))
