"""The batched request log: `flush()` is a barrier callers can wait on."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from alicerce.billing import LineItem
from alicerce.errors import NotFound
from alicerce.request_listing import RequestFilter
from alicerce.request_log import RequestLog, RequestRecord
from alicerce.store import Database
from alicerce.store.database import MIGRATIONS
from alicerce.store.tables import LineItemRow, RequestLogRow
from alicerce.usage import UsageService
from tests.conftest import fresh_postgres_database


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


# -- reading it back: the same exact totals on SQLite and PostgreSQL ---------------------------

PRICE_IN, PRICE_OUT, SEARCH = Decimal("0.0000025"), Decimal("0.00001"), Decimal("0.001")


def _call(
    account: str,
    day: int,
    *,
    key: str,
    gateway: str | None,
    model: str | None,
    status: int = 200,
    items: tuple[LineItem, ...] = (),
) -> RequestRecord:
    return RequestRecord(
        id=str(uuid.uuid4()),
        created_at=datetime(2026, 3, day, 12, tzinfo=UTC),
        endpoint="chat.completions",
        stream=False,
        account_id=account,
        key_id=key,
        gateway_id=gateway,
        model=model,
        status_code=status,
        amount=sum((item.amount for item in items), Decimal(0)),
        line_items=[item.to_record() for item in items],
    )


def test_usage_totals_are_exact_and_the_same_on_both_databases(db: Database) -> None:
    account, gateway, k1, k2 = (str(uuid.uuid4()) for _ in range(4))
    tokens_in = LineItem("inference.chat_completions.in", 100, PRICE_IN, "d")
    tokens_out = LineItem("inference.chat_completions.out", 10, PRICE_OUT, "d")
    more_in = LineItem("inference.chat_completions.in", 50, PRICE_IN, "d")
    search = LineItem("knowledge.search", 1, SEARCH, "s")
    log = RequestLog(db, flush_interval_s=1, batch_size=100)
    log.write_records(
        [
            _call(account, 1, key=k1, gateway=gateway, model="m-a", items=(tokens_in, tokens_out)),
            _call(account, 2, key=k1, gateway=gateway, model="m-b", items=(more_in, search)),
            _call(account, 2, key=k2, gateway=None, model=None, status=429),
            _call(account, 2, key=k2, gateway=gateway, model=None, status=403),
            _call(account, 2, key=k2, gateway=gateway, model="m-b", status=502),
            _call(str(uuid.uuid4()), 2, key=k1, gateway=gateway, model="m-a", items=(search,)),
        ]
    )
    usage = UsageService(db)

    def grouped(group_by: Any, **window: Any) -> list[tuple[Any, ...]]:
        data = usage.totals(account, start=None, end=None, group_by=group_by, **window)["data"]
        return [
            (g[group_by], g["amount"], g["quantities"], g["requests"], g["refused_requests"])
            for g in data
        ]

    whole = usage.totals(account, start=None, end=None, group_by=None)
    a, b = Decimal("0.00035"), Decimal("0.001125")  # 100 in + 10 out; 50 in + 1 search
    assert (whole["amount"], whole["amount_exact"], whole["currency"]) == (a + b, "0.001475", "USD")
    assert whole["quantities"] == {
        "inference.chat_completions.in": 150,
        "inference.chat_completions.out": 10,
        "knowledge.search": 1,
    }
    assert (whole["quantity"], whole["requests"], whole["refused_requests"]) == (161, 3, 2)
    in_out = {"inference.chat_completions.in": 100, "inference.chat_completions.out": 10}
    in_search = {"inference.chat_completions.in": 50, "knowledge.search": 1}
    assert grouped("model") == [
        ("m-a", a, in_out, 1, 0),
        ("m-b", b, in_search, 2, 0),
        (None, 0, {}, 0, 2),
    ]
    assert grouped("day") == [("2026-03-01", a, in_out, 1, 0), ("2026-03-02", b, in_search, 2, 2)]
    assert grouped("key") == sorted([(k1, a + b, whole["quantities"], 2, 0), (k2, 0, {}, 1, 2)])
    assert grouped("gateway") == [(gateway, a + b, whole["quantities"], 3, 1), (None, 0, {}, 0, 1)]
    by_sku = usage.totals(account, start=None, end=None, group_by="sku", key_id=k1)["data"]
    assert [(g["sku"], g["unit"], g["amount"], g["quantity"], g["requests"]) for g in by_sku] == [
        ("inference.chat_completions.in", "token", Decimal("0.000375"), 150, 2),
        ("inference.chat_completions.out", "token", Decimal("0.0001"), 10, 1),
        ("knowledge.search", "search", SEARCH, 1, 1),
    ]
    assert usage.key_filter(account, k2) == k2  # no such key any more, but its requests are here
    with pytest.raises(NotFound):
        usage.key_filter(str(uuid.uuid4()), k2)  # not in another account

    def listed(**where: Any) -> list[int]:
        page = usage.requests(account, RequestFilter(**where), limit=10, cursor=None)
        return sorted(row["status"] for row in page["data"])

    assert listed(status="refused") == [403, 429]
    assert listed(status="5xx,200") == [200, 200, 502]
    assert listed(model="m-b", status="error") == [502]
    assert listed(start=datetime(2026, 3, 2, tzinfo=UTC), key_id=k1) == [200]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema yet, to migrate step by step."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


def test_migration_0006_gives_earlier_line_items_their_requests_model(empty_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    db = Database(empty_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        connection.execute(  # a request and its item as they were written before 0006
            sa.text(
                "INSERT INTO request_log (id, endpoint, stream, status_code, latency_ms, "
                "prompt_tokens, completion_tokens, cached_tokens, tokens_estimated, amount, "
                "line_items, model, created_at) VALUES ('r1', 'chat.completions', false, 200, "
                "1.0, 3, 0, 0, false, '0.0000075', '[]', 'm-a', :now)"
            ),
            {"now": datetime.now(UTC)},
        )
        connection.execute(
            sa.text(
                "INSERT INTO line_items (request_id, sku, quantity, unit_price, description, "
                "created_at) VALUES ('r1', 'inference.chat_completions.in', 3, '0.0000025', 'd', "
                ":now), ('gone', 'knowledge.search', 1, '0', 's', :now)"
            ),
            {"now": datetime.now(UTC)},
        )
    db.migrate()
    with db.session() as session:
        models = session.execute(sa.select(LineItemRow.request_id, LineItemRow.model)).all()
    assert sorted(models) == [("gone", None), ("r1", "m-a")]
    db.dispose()


def test_a_record_that_can_never_be_written_does_not_hold_the_others_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A number no column holds (an upstream's `prompt_tokens: 2**70` once reached here) fails
    its batch on SQLite with an OverflowError: the batch is written record by record, the bad
    one dropped and logged, and the rest are in the log (they were retried forever)."""
    db = Database(f"sqlite:///{tmp_path / 'log.db'}")
    db.migrate()
    good, bad, after = _record(), _record(), _record()
    bad.prompt_tokens = 2**70

    async def run() -> None:
        log = RequestLog(db, flush_interval_s=3600, batch_size=10_000)
        log.record(good)
        log.record(bad)
        log.record(after)
        await asyncio.wait_for(log.flush(), 10)

    asyncio.run(run())
    with db.session() as session:
        ids = set(session.execute(sa.text("SELECT id FROM request_log")).scalars())
    assert ids == {good.id, after.id}
    assert f"record {bad.id} cannot be written, dropped" in caplog.text
    db.dispose()
