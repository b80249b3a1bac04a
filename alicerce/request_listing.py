"""Reading the request log back (SPEC section 5: `GET /requests`): filters, pages, the view.

Pages are newest first and the cursor is the last id of the page before: ids are UUIDv7, so
"older than the cursor" is `id < cursor`, whatever the filters. A client sends the same filters
with each cursor; the pages then hold every matching record once.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select

from alicerce.billing import LineItem
from alicerce.clock import rfc3339
from alicerce.errors import InvalidRequest, NotFound
from alicerce.money import Money
from alicerce.store import Database
from alicerce.store.tables import RequestLogRow

MAX_PAGE = 1000
REFUSED = (401, 403, 429)  # as `usage.REFUSED`: turned away at the door, nothing billed
_STATUS = RequestLogRow.status_code
_WORDS: dict[str, ColumnElement[bool]] = {
    "ok": _STATUS < 400,
    "error": _STATUS >= 400,
    "refused": _STATUS.in_(REFUSED),
    "served": _STATUS.not_in(REFUSED),
}
STATUS_HELP = (
    "status must be an HTTP status code (429), a class (2xx ... 5xx), ok, error, served or "
    "refused, or several of them separated by commas."
)


def status_condition(value: str) -> ColumnElement[bool]:
    """`status=`: codes, classes and words, any of which may match (`429,5xx`)."""
    conditions: list[ColumnElement[bool]] = []
    for part in value.split(","):
        word = part.strip().lower()
        if word in _WORDS:
            conditions.append(_WORDS[word])
        elif re.fullmatch(r"[1-5]xx", word):
            low = int(word[0]) * 100
            conditions.append(_STATUS.between(low, low + 99))
        elif re.fullmatch(r"[1-5][0-9][0-9]", word):
            conditions.append(RequestLogRow.status_code == int(word))
        else:
            raise InvalidRequest(STATUS_HELP, param="status")
    return or_(*conditions)


@dataclass(slots=True)
class RequestFilter:
    """What `/requests` lists; ids already resolved (`UsageService.gateway_filter`, ...)."""

    gateway_id: str | None = None
    key_id: str | None = None
    model: str | None = None  # as recorded: the upstream model that answered
    status: str | None = None  # see `status_condition`
    start: datetime | None = None
    end: datetime | None = None  # exclusive
    metadata: dict[str, str] = field(default_factory=dict)

    def apply(self, query: Select[Any]) -> Select[Any]:
        conditions: list[ColumnElement[bool]] = []
        if self.gateway_id is not None:
            conditions.append(RequestLogRow.gateway_id == self.gateway_id)
        if self.key_id is not None:
            conditions.append(RequestLogRow.key_id == self.key_id)
        if self.model is not None:
            conditions.append(RequestLogRow.model == self.model)
        if self.status is not None:
            conditions.append(status_condition(self.status))
        if self.start is not None:
            conditions.append(RequestLogRow.created_at >= self.start)
        if self.end is not None:
            conditions.append(RequestLogRow.created_at < self.end)
        for name, value in self.metadata.items():
            conditions.append(RequestLogRow.request_metadata[name].as_string() == value)
        return query.where(*conditions)


def page(
    db: Database,
    account_id: str,
    where: RequestFilter,
    *,
    limit: int,
    cursor: str | None,
    currency: str,
) -> dict[str, Any]:
    """One page of the account's request log, newest first."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}.", param="limit")
    query = where.apply(select(RequestLogRow).where(RequestLogRow.account_id == account_id))
    if cursor:
        try:
            uuid.UUID(cursor)
        except ValueError:
            raise InvalidRequest(
                "cursor must be the next_cursor of a previous page.", param="cursor"
            ) from None
        query = query.where(RequestLogRow.id < cursor)
    query = query.order_by(RequestLogRow.id.desc()).limit(limit + 1)
    with db.session() as session:
        rows = list(session.scalars(query))
    shown = rows[:limit]
    more = len(rows) > limit
    return {
        "object": "list",
        "data": [request_view(row, currency) for row in shown],
        "has_more": more,
        "next_cursor": shown[-1].id if more else None,
    }


def one(db: Database, account_id: str, request_id: str, *, currency: str) -> dict[str, Any]:
    """One record, by id: the same view as a page's entries; another account's is 404, as
    one that does not exist."""
    query = select(RequestLogRow).where(
        RequestLogRow.id == request_id, RequestLogRow.account_id == account_id
    )
    with db.session() as session:
        row = session.scalar(query)
    if row is None:
        raise NotFound(f"No request {request_id!r} in this account.")
    return request_view(row, currency)


def request_view(row: RequestLogRow, currency: str) -> dict[str, Any]:
    """A record as `/requests` shows it; its line items as `generation_context` shows them."""
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
        "currency": currency,
        "amount": Money(Decimal(row.amount)),
        "line_items": [LineItem.from_record(item).to_json() for item in row.line_items],
        "metadata": row.request_metadata,
        "attempts": row.attempts or [],
        "routing": row.routing,
    }
