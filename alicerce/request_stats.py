"""How the inference requests went (`GET /requests/stats`): counts, error rate and latency
percentiles over a window, overall and per day, gateway, key or model.

The answer carries a few numbers a group, never the records. SQLite has no percentile
function, and ranking the records in SQL (`row_number() OVER (PARTITION BY day ORDER BY
latency)`) sorts the whole window once for each figure: measured at 100,000 records, 0.8 s. So
one statement reads the four small columns the figures need (group, status, latency, time to
first token) off the window once, and the counting and sorting happen here: 0.2 s at 100,000
records (`bench/console_queries.py`), with the window's records in memory meanwhile (~100 bytes
each). SQLite and PostgreSQL run the same statement and answer the same numbers.

A percentile is the nearest rank: p95 of n values is the value at rank ceil(0.95 * n), a
latency that was measured, never an interpolation.

What is counted: the records of the inference routes (chat completions, Responses,
embeddings), not the knowledge work billed outside a request (API searches, indexing: the time
an indexing job took is not a latency anyone waited for). `requests` are those served, as in
`/usage`; `refused_requests` those the door turned away (401, 403, 429), which are neither
errors nor in the percentiles (no model was called). `errors` are the served ones answered with
a status of 400 or more (499, a client that left a stream, included).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, func, literal, select

from alicerce.clock import rfc3339
from alicerce.request_listing import REFUSED, RequestFilter
from alicerce.store import Database
from alicerce.store.tables import RequestLogRow

StatsGroup = Literal["day", "gateway", "key", "model"]
PERCENTILES = (50, 95)
METRICS = ("latency_ms", "time_to_first_token_ms")


def day_of(db: Database, column: Any) -> ColumnElement[Any]:
    """The UTC day (`YYYY-MM-DD`) of a stored time: times are stored in UTC."""
    if db.is_sqlite:
        return func.substr(column, 1, 10)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


def rank(percentile: int, count: int) -> int:
    """The nearest rank of a percentile among `count` sorted values: ceil(p/100 * count)."""
    return (count * percentile + 99) // 100


Record = tuple[Any, int, float | None, float | None]  # group, status, latency, ttft


def figures(records: Sequence[Record]) -> dict[str, Any]:
    """Counts and percentiles of (group, status, latency, ttft) records (comprehensions, not a
    call a record: this runs over every record of the window)."""
    served = [r for r in records if r[1] not in REFUSED]
    errors = sum(1 for r in served if r[1] >= 400)
    requests = len(served)
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": round(errors / requests, 6) if requests else None,
        "refused_requests": len(records) - requests,
        "latency_ms": percentiles([r[2] for r in served if r[2] is not None]),
        "time_to_first_token_ms": percentiles([r[3] for r in served if r[3] is not None]),
    }


def percentiles(values: list[float]) -> dict[str, float | None]:
    """`{"p50": ..., "p95": ...}` of `values` by nearest rank; None when there are none."""
    values.sort()
    return {f"p{p}": values[rank(p, len(values)) - 1] if values else None for p in PERCENTILES}


def request_stats(
    db: Database,
    account_id: str,
    where: RequestFilter,
    *,
    group_by: StatsGroup | None,
    names: Callable[[Any, StatsGroup | None], dict[str, str]],
) -> dict[str, Any]:
    """Counts and percentiles over what `where` keeps, overall and per group.

    `names(session, group_by)`: the names of the account's gateways or keys by id, read in the
    same session."""
    group = _group_column(db, group_by) if group_by else literal(None, String)
    query = where.apply(
        select(
            group,
            RequestLogRow.status_code,
            RequestLogRow.latency_ms,
            RequestLogRow.ttft_ms,
        ).where(
            RequestLogRow.account_id == account_id,
            RequestLogRow.endpoint.not_like("knowledge.%"),
        )
    )
    with db.session() as session:  # Core rows, not the ORM's: a third of the time
        records: Sequence[Record] = session.connection().execute(query).all()
        labels = names(session, group_by)
    groups: dict[Any, list[Record]] = defaultdict(list)
    if group_by is not None:
        for record in records:
            groups[record[0]].append(record)
    result: dict[str, Any] = {
        "object": "request_stats",
        "from": rfc3339(where.start) if where.start else None,
        "to": rfc3339(where.end) if where.end else None,
        **figures(records),
    }
    if group_by is not None:
        result["group_by"] = group_by
        result["data"] = [
            _group_view(group_by, key, figures(groups[key]), labels)
            for key in sorted(groups, key=lambda g: (g is None, str(g)))
        ]
    return result


def _group_column(db: Database, group_by: StatsGroup) -> ColumnElement[Any]:
    if group_by == "day":
        return day_of(db, RequestLogRow.created_at)
    columns: dict[str, Any] = {
        "gateway": RequestLogRow.gateway_id,
        "key": RequestLogRow.key_id,
        "model": RequestLogRow.model,
    }
    return columns[group_by]  # type: ignore[no-any-return]


def _group_view(
    group_by: StatsGroup, group: Any, numbers: dict[str, Any], names: dict[str, str]
) -> dict[str, Any]:
    view: dict[str, Any] = {group_by: group}
    if group_by in ("gateway", "key"):  # a deleted one keeps its id, with no name
        view["name"] = names.get(group) if group is not None else None
    return view | numbers
