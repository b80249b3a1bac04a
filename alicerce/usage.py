"""Reading the usage ledger and the request log (SPEC section 5).

Totals are exact: the database sums integer quantities per (group, sku, unit price), and the
amounts are computed here in decimal as sum(quantity * unit_price) — never by adding floats.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, String, func, literal, select, union_all

from alicerce.clock import rfc3339
from alicerce.errors import InvalidRequest
from alicerce.store import Database
from alicerce.store.tables import LineItemRow, RequestLogRow

GroupBy = Literal["day", "sku", "gateway", "key"]
MAX_PAGE = 1000


def parse_time(value: str | None, param: str) -> datetime | None:
    """RFC 3339 or Unix seconds; naive times are UTC."""
    if value is None or value == "":
        return None
    try:
        moment = (
            datetime.fromtimestamp(float(value), UTC)
            if value.replace(".", "", 1).isdigit()
            else datetime.fromisoformat(value.replace("Z", "+00:00"))
        )
    except ValueError:
        raise InvalidRequest(
            f"{param} must be an RFC 3339 time or Unix seconds.", param=param
        ) from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _number(amount: Decimal) -> float | int:
    return float(amount)


class UsageService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _group_column(self, table: Any, group_by: GroupBy) -> ColumnElement[Any]:
        if group_by == "day":  # times are stored in UTC, so days are UTC days
            if self._db.is_sqlite:
                return func.substr(table.created_at, 1, 10)
            return func.to_char(func.timezone("UTC", table.created_at), "YYYY-MM-DD")
        columns: dict[str, Any] = {
            "sku": LineItemRow.sku,
            "gateway": table.gateway_id,
            "key": table.key_id,
        }
        return columns[group_by]  # type: ignore[no-any-return]

    def totals(
        self,
        account_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        group_by: GroupBy | None,
        key_id: str | None = None,
    ) -> dict[str, Any]:
        """Amount, quantity and requests, overall and per group.

        Line items and request counts come from ONE statement (a UNION ALL): a single statement
        reads one snapshot on SQLite and PostgreSQL alike, so a batch of the request log landing
        between two queries cannot show requests without their items or the other way round."""
        no_group = literal(None, String)
        items_group = self._group_column(LineItemRow, group_by) if group_by else no_group
        items: Any = select(
            literal("i").label("part"),
            items_group.label("grp"),
            LineItemRow.unit_price.label("price"),
            func.sum(LineItemRow.quantity).label("n"),
        ).where(LineItemRow.account_id == account_id)
        items = self._window(items, LineItemRow, start, end, key_id).group_by(
            items_group, LineItemRow.sku, LineItemRow.unit_price
        )
        total: Any = select(literal("t"), no_group, no_group, func.count()).where(
            RequestLogRow.account_id == account_id
        )
        parts = [items, self._window(total, RequestLogRow, start, end, key_id)]
        if group_by == "sku":  # a request counts once in each SKU it has
            requests: Any = select(
                literal("r"),
                LineItemRow.sku,
                no_group,
                func.count(func.distinct(LineItemRow.request_id)),
            ).where(LineItemRow.account_id == account_id)
            requests = self._window(requests, LineItemRow, start, end, key_id)
            parts.append(requests.group_by(LineItemRow.sku))
        elif group_by is not None:
            requests_group = self._group_column(RequestLogRow, group_by)
            requests = select(literal("r"), requests_group, no_group, func.count()).where(
                RequestLogRow.account_id == account_id
            )
            requests = self._window(requests, RequestLogRow, start, end, key_id)
            parts.append(requests.group_by(requests_group))

        amounts: dict[Any, Decimal] = defaultdict(Decimal)
        quantities: dict[Any, int] = defaultdict(int)
        counts: dict[Any, int] = defaultdict(int)
        requests_total = 0
        with self._db.session() as session:
            for part, group, price, number in session.execute(union_all(*parts)):
                if part == "i":
                    amounts[group] += int(number) * Decimal(price)
                    quantities[group] += int(number)
                elif part == "t":
                    requests_total = int(number)
                else:
                    counts[group] += int(number)
        total_amount = sum(amounts.values(), Decimal(0))
        result: dict[str, Any] = {
            "object": "usage",
            "from": rfc3339(start) if start else None,
            "to": rfc3339(end) if end else None,
            "amount": _number(total_amount),
            "amount_exact": str(total_amount),
            "quantity": sum(quantities.values()),
            "requests": requests_total,
        }
        if group_by is not None:
            groups = sorted(set(amounts) | set(counts), key=lambda g: (g is None, str(g)))
            result["group_by"] = group_by
            result["data"] = [
                {
                    group_by: group,
                    "amount": _number(amounts.get(group, Decimal(0))),
                    "amount_exact": str(amounts.get(group, Decimal(0))),
                    "quantity": quantities.get(group, 0),
                    "requests": counts.get(group, 0),
                }
                for group in groups
            ]
        return result

    @staticmethod
    def _window(
        query: Select[Any],
        table: Any,
        start: datetime | None,
        end: datetime | None,
        key_id: str | None,
    ) -> Select[Any]:
        if start is not None:
            query = query.where(table.created_at >= start)
        if end is not None:
            query = query.where(table.created_at < end)
        if key_id is not None:
            query = query.where(table.key_id == key_id)
        return query

    def spent(self, key_id: str, since: datetime) -> Decimal:
        """What a key has spent since `since`, exactly (for budgets)."""
        query = (
            select(LineItemRow.unit_price, func.sum(LineItemRow.quantity))
            .where(LineItemRow.key_id == key_id, LineItemRow.created_at >= since)
            .group_by(LineItemRow.unit_price)
        )
        with self._db.session() as session:
            return sum((int(q) * Decimal(p) for p, q in session.execute(query)), Decimal(0))

    def requests(
        self,
        account_id: str,
        *,
        gateway_id: str | None,
        limit: int,
        cursor: str | None,
        metadata: dict[str, str],
    ) -> dict[str, Any]:
        """The request log, newest first, paged by a cursor (the last id seen)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}.", param="limit")
        query = select(RequestLogRow).where(RequestLogRow.account_id == account_id)
        if gateway_id is not None:
            query = query.where(RequestLogRow.gateway_id == gateway_id)
        if cursor:
            query = query.where(RequestLogRow.id < cursor)
        for name, value in metadata.items():
            query = query.where(RequestLogRow.request_metadata[name].as_string() == value)
        query = query.order_by(RequestLogRow.id.desc()).limit(limit + 1)
        with self._db.session() as session:
            rows = list(session.scalars(query))
        page = rows[:limit]
        return {
            "object": "list",
            "data": [request_view(row) for row in page],
            "has_more": len(rows) > limit,
            "next_cursor": page[-1].id if len(rows) > limit else None,
        }


def request_view(row: RequestLogRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "request",
        "created_at": rfc3339(row.created_at),
        "endpoint": row.endpoint,
        "key_id": row.key_id,
        "gateway_id": row.gateway_id,
        "model": row.model,
        "stream": row.stream,
        "status": row.status_code,
        "error": (
            {"type": row.error_type, "message": row.error_message} if row.error_type else None
        ),
        "latency_ms": row.latency_ms,
        "time_to_first_token_ms": row.ttft_ms,
        "usage": {
            "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens,
            "cached_tokens": row.cached_tokens,
            "estimated": row.tokens_estimated,
        },
        "amount": float(Decimal(row.amount)),
        "line_items": row.line_items,
        "metadata": row.request_metadata,
        "attempts": row.attempts or [],
    }
