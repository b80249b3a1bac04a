"""Usage totals from the ledger (SPEC section 5: `GET /usage`), and what its filters name.

Totals are exact: the database sums integer quantities per (group, sku, unit price), and the
amounts are computed here in decimal as sum(quantity * unit_price) — never by adding floats.
Every amount is shown as `Money` (a plain JSON number) in the catalog's currency, beside
`amount_exact` (the same digits as a string, for clients whose JSON parser reads floats).

Quantities are reported per SKU (`quantities`), since SKUs count different things (tokens,
searches). `quantity`, their plain sum, stays because SPEC lists it; it only means something
within one SKU (`group_by=sku`).

Requests are counted in two parts: `requests`, those the gateway took on (answered, or failed
on the way, whatever their status), and `refused_requests`, those its door turned away before
any model was called and with nothing billed: 401, 403 (a key not allowed that gateway) and 429
(a key over its rate limits or budget).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)

from alicerce.billing import unit_of
from alicerce.clock import rfc3339
from alicerce.errors import InvalidRequest, NotFound
from alicerce.money import DEFAULT_CURRENCY, Money, plain
from alicerce.request_listing import REFUSED, RequestFilter, one, page
from alicerce.request_stats import StatsGroup, day_of, request_stats
from alicerce.store import Database
from alicerce.store.tables import ApiKeyRow, GatewayRow, LineItemRow, RequestLogRow

GroupBy = Literal["day", "sku", "gateway", "key", "model"]


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
    except (ValueError, OverflowError, OSError):
        raise InvalidRequest(
            f"{param} must be an RFC 3339 time or Unix seconds.", param=param
        ) from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_window(start: datetime | None, end: datetime | None) -> None:
    """`to` is exclusive, so a window must end after it starts."""
    if start is not None and end is not None and end <= start:
        raise InvalidRequest("to must be later than from.", param="to")


def amounts(total: Decimal) -> dict[str, Any]:
    """An amount as every usage answer shows it: a number, and its exact digits as a string."""
    return {"amount": Money(total), "amount_exact": plain(total)}


class _Sums:
    """One group's (or the whole window's) figures while the rows come in."""

    __slots__ = ("amount", "quantities", "refused", "requests")

    def __init__(self) -> None:
        self.amount = Decimal(0)
        self.quantities: dict[str, int] = defaultdict(int)
        self.requests = 0  # all of them, refused ones included, until `view`
        self.refused = 0

    def view(self) -> dict[str, Any]:
        return {
            **amounts(self.amount),
            "quantity": sum(self.quantities.values()),
            "quantities": dict(sorted(self.quantities.items())),
            "requests": self.requests - self.refused,
            "refused_requests": self.refused,
        }


class UsageService:
    def __init__(
        self,
        db: Database,
        *,
        currency: Callable[[], str] = lambda: DEFAULT_CURRENCY,
        gateway_id: Callable[[str, str], str | None] | None = None,
    ) -> None:
        """`currency`: the current catalog's; `gateway_id`: the id a gateway reference (id,
        slug or name) names in an account (`GatewayService.id_of`), for the filters."""
        self._db = db
        self.currency = currency
        self._gateway_id = gateway_id

    # -- totals ----------------------------------------------------------------------------

    def _group_column(self, table: Any, group_by: GroupBy) -> ColumnElement[Any]:
        if group_by == "day":  # times are stored in UTC, so days are UTC days
            return day_of(self._db, table.created_at)
        columns: dict[str, Any] = {
            "sku": LineItemRow.sku,
            # Wrapped, so that SQLite does not group the request log by walking its index on
            # (gateway_id, created_at) in order: that walk reads every account's records of
            # the window, where (account_id, created_at) reads this account's only.
            "gateway": func.coalesce(table.gateway_id, literal(None, String))
            if table is RequestLogRow
            else table.gateway_id,
            "key": table.key_id,
            "model": table.model,
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
        gateway_id: str | None = None,
    ) -> dict[str, Any]:
        """Amount, quantities and requests, overall and per group.

        Line items and request counts come from ONE statement (a UNION ALL): a single statement
        reads one snapshot on SQLite and PostgreSQL alike, so a batch of the request log landing
        between two queries cannot show requests without their items or the other way round."""
        check_window(start, end)
        window = (start, end, key_id, gateway_id)
        none, zero = literal(None, String), literal(0, Integer)
        refused = func.sum(case((RequestLogRow.status_code.in_(REFUSED), 1), else_=0))
        items_group = self._group_column(LineItemRow, group_by) if group_by else none
        items: Any = select(
            literal("i").label("part"),
            items_group.label("grp"),
            LineItemRow.sku.label("sku"),
            LineItemRow.unit_price.label("price"),
            func.sum(LineItemRow.quantity).label("n"),
            zero.label("refused"),
        ).where(LineItemRow.account_id == account_id)
        items = self._window(items, LineItemRow, *window).group_by(
            items_group, LineItemRow.sku, LineItemRow.unit_price
        )
        total: Any = select(literal("t"), none, none, none, func.count(), refused).where(
            RequestLogRow.account_id == account_id
        )
        parts = [items, self._window(total, RequestLogRow, *window)]
        if group_by == "sku":  # a request counts once in each SKU it has (refused ones have none)
            requests: Any = select(
                literal("r"),
                LineItemRow.sku,
                none,
                none,
                func.count(func.distinct(LineItemRow.request_id)),
                zero,
            ).where(LineItemRow.account_id == account_id)
            requests = self._window(requests, LineItemRow, *window)
            parts.append(requests.group_by(LineItemRow.sku))
        elif group_by is not None:
            requests_group = self._group_column(RequestLogRow, group_by)
            requests = select(
                literal("r"), requests_group, none, none, func.count(), refused
            ).where(RequestLogRow.account_id == account_id)
            requests = self._window(requests, RequestLogRow, *window)
            parts.append(requests.group_by(requests_group))

        overall: _Sums = _Sums()
        groups: dict[Any, _Sums] = defaultdict(_Sums)
        with self._db.session() as session:
            for part, group, sku, price, number, turned_away in session.execute(union_all(*parts)):
                if part == "i":
                    for sums in (overall, groups[group]) if group_by else (overall,):
                        sums.amount += int(number) * Decimal(price)
                        sums.quantities[sku] += int(number)
                else:
                    sums = overall if part == "t" else groups[group]
                    sums.requests, sums.refused = int(number), int(turned_away or 0)
            names = self._names(session, account_id, group_by)
        result: dict[str, Any] = {
            "object": "usage",
            "from": rfc3339(start) if start else None,
            "to": rfc3339(end) if end else None,
            "currency": self.currency(),
            **overall.view(),
        }
        if group_by is not None:
            result["group_by"] = group_by
            result["data"] = [
                self._group_view(group_by, group, groups[group], names)
                for group in sorted(groups, key=lambda g: (g is None, str(g)))
            ]
        return result

    @staticmethod
    def _names(session: Any, account_id: str, group_by: GroupBy | None) -> dict[str, str]:
        """The names of the account's gateways or keys, shown beside their ids."""
        table: Any = {"gateway": GatewayRow, "key": ApiKeyRow}.get(group_by or "")
        if table is None:
            return {}
        query = select(table.id, table.name).where(table.account_id == account_id)
        return {row_id: name for row_id, name in session.execute(query)}

    @staticmethod
    def _group_view(
        group_by: GroupBy, group: Any, sums: _Sums, names: dict[str, str]
    ) -> dict[str, Any]:
        view: dict[str, Any] = {group_by: group}
        if group_by in ("gateway", "key"):  # a deleted one keeps its id, with no name
            view["name"] = names.get(group) if group is not None else None
        elif group_by == "sku":
            view["unit"] = unit_of(group)
        return view | sums.view()

    @staticmethod
    def _window(
        query: Select[Any],
        table: Any,
        start: datetime | None,
        end: datetime | None,
        key_id: str | None,
        gateway_id: str | None,
    ) -> Select[Any]:
        if start is not None:
            query = query.where(table.created_at >= start)
        if end is not None:
            query = query.where(table.created_at < end)
        if key_id is not None:
            query = query.where(table.key_id == key_id)
        if gateway_id is not None:
            query = query.where(table.gateway_id == gateway_id)
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
        self, account_id: str, where: RequestFilter, *, limit: int, cursor: str | None
    ) -> dict[str, Any]:
        """The request log, newest first, paged by a cursor (`request_listing`)."""
        check_window(where.start, where.end)
        return page(
            self._db, account_id, where, limit=limit, cursor=cursor, currency=self.currency()
        )

    def request(self, account_id: str, request_id: str) -> dict[str, Any]:
        """One record of the request log (`request_listing.one`)."""
        return one(self._db, account_id, request_id, currency=self.currency())

    def stats(
        self, account_id: str, where: RequestFilter, *, group_by: StatsGroup | None
    ) -> dict[str, Any]:
        """Counts, error rate and latency percentiles of the inference requests
        (`request_stats`)."""
        check_window(where.start, where.end)
        return request_stats(
            self._db,
            account_id,
            where,
            group_by=group_by,
            names=lambda session, group: self._names(session, account_id, group),
        )

    # -- what the filters name -------------------------------------------------------------

    def gateway_filter(self, account_id: str, ref: str) -> str:
        """The id of the gateway `ref` names (its id, slug or name), or the id of a deleted
        gateway whose requests the log still holds; 404 for anything else (another account's
        gateways included)."""
        found = self._gateway_id(account_id, ref) if self._gateway_id else None
        if found is None and self._logged(account_id, RequestLogRow.gateway_id, ref):
            found = ref
        if found is None:
            raise NotFound(f"No gateway {ref!r} in this account.", param="gateway")
        return found

    def key_filter(self, account_id: str, ref: str) -> str:
        """The id of the key `ref` names (its id or name), or the id of a deleted key whose
        requests the log still holds; 404 for anything else, 400 for a name several keys
        share."""
        query = select(ApiKeyRow.id).where(
            ApiKeyRow.account_id == account_id, or_(ApiKeyRow.id == ref, ApiKeyRow.name == ref)
        )
        with self._db.session() as session:
            ids = list(session.scalars(query))
        if ref in ids:
            return ref
        if len(ids) > 1:
            raise InvalidRequest(
                f"{len(ids)} keys are named {ref!r}: name the one you mean by its id.",
                param="key",
            )
        if ids:
            return ids[0]
        if self._logged(account_id, RequestLogRow.key_id, ref):
            return ref
        raise NotFound(f"No key {ref!r} in this account.", param="key")

    def _logged(self, account_id: str, column: Any, value: str) -> bool:
        query = select(RequestLogRow.id).where(
            RequestLogRow.account_id == account_id, column == value
        )
        with self._db.session() as session:
            return session.scalar(query.limit(1)) is not None
