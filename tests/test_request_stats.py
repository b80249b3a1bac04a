"""`GET /requests/stats` and `GET /requests/{id}`: what the console's Overview and Requests
pages read. Counts, error rates and nearest-rank percentiles, checked against the request log
itself (through the API) and against known values on SQLite and PostgreSQL; tenancy; bad
parameters answer 400 with the `param` they name."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import text

from alicerce.ids import new_id
from alicerce.request_listing import RequestFilter
from alicerce.request_log import RequestLog, RequestRecord
from alicerce.request_stats import rank
from alicerce.store import Database
from alicerce.usage import UsageService
from tests.conftest import Account
from tests.test_usage_api import body, chat, new_key, recorded


def nearest_rank(values: list[float], percentile: int) -> float | None:
    """The textbook definition, written apart from the server's: ceil(p/100 * n)-th smallest."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(percentile / 100 * len(ordered)) - 1]


def expected(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What `/requests/stats` should say of these `/requests` entries."""
    served = [r for r in records if r["status"] not in (401, 403, 429)]
    errors = sum(1 for r in served if r["status"] >= 400)
    latencies = [r["latency_ms"] for r in served]
    ttfts = [r["time_to_first_token_ms"] for r in served if r["time_to_first_token_ms"] is not None]
    return {
        "requests": len(served),
        "errors": errors,
        "error_rate": round(errors / len(served), 6) if served else None,
        "refused_requests": len(records) - len(served),
        "latency_ms": {"p50": nearest_rank(latencies, 50), "p95": nearest_rank(latencies, 95)},
        "time_to_first_token_ms": {"p50": nearest_rank(ttfts, 50), "p95": nearest_rank(ttfts, 95)},
    }


def figures(stats: dict[str, Any]) -> dict[str, Any]:
    keep = ("requests", "errors", "error_rate", "refused_requests", "latency_ms")
    return {name: stats[name] for name in (*keep, "time_to_first_token_ms")}


def test_stats_count_the_requests_and_rank_their_latencies(account: Account) -> None:
    priced = account.create_gateway(name="answers", model="@mock/priced")
    broken = account.create_gateway(name="broken", model="@mock/broken")
    limited = new_key(account, name="limited", rpm=1)
    with account.http() as http:
        responses = [chat(http, priced["id"]) for _ in range(3)]
        responses += [chat(http, priced["id"], stream=True) for _ in range(2)]
        responses += [chat(http, broken["id"]) for _ in range(2)]
        responses += [chat(http, priced["id"], key=limited["key"]) for _ in range(2)]
        assert [r.status_code >= 400 for r in responses] == [False] * 5 + [True, True, False, True]
        assert responses[-1].status_code == 429  # refused: over its rpm
        collection = body(http.post("/collections", json={"name": "notes"}), 201)
        search = http.post(
            f"/collections/{collection['id']}/search", json={"query": "x", "mode": "keyword"}
        )
        assert search.status_code == 200, search.text
        ids = recorded(account, *responses)
        account.alicerce.flushed()
        listed = body(http.get("/requests", params={"limit": 100}))["data"]
        stats = body(http.get("/requests/stats"))
        by_gateway = body(http.get("/requests/stats", params={"group_by": "gateway"}))
        by_day = body(http.get("/requests/stats", params={"group_by": "day"}))
        by_key = body(http.get("/requests/stats", params={"group_by": "key"}))

    inference = [r for r in listed if r["id"] in ids]
    assert len(inference) == 9 and len(listed) == 10  # the search is in the log, not the stats
    assert stats["object"] == "request_stats"
    assert (stats["from"], stats["to"]) == (None, None)
    assert figures(stats) == expected(inference)
    assert (stats["requests"], stats["errors"], stats["refused_requests"]) == (8, 2, 1)
    assert stats["error_rate"] == 0.25
    assert stats["time_to_first_token_ms"]["p50"] is not None  # the two streams
    assert "group_by" not in stats and "data" not in stats

    assert by_gateway["group_by"] == "gateway"
    groups = {g["gateway"]: g for g in by_gateway["data"]}
    assert groups[priced["id"]]["name"] == "answers" and groups[broken["id"]]["name"] == "broken"
    for gateway_id, group in groups.items():
        rows = [r for r in inference if r["gateway_id"] == gateway_id]
        assert figures(group) == expected(rows)
    assert groups[broken["id"]]["error_rate"] == 1.0
    assert groups[broken["id"]]["time_to_first_token_ms"] == {"p50": None, "p95": None}

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    days = {g["day"]: g for g in by_day["data"]}
    assert set(days) <= {today, (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")}
    assert sum(g["requests"] for g in days.values()) == 8
    keys = {g["key"]: g for g in by_key["data"]}
    assert keys[limited["id"]]["name"] == "limited"
    assert (keys[limited["id"]]["requests"], keys[limited["id"]]["refused_requests"]) == (1, 1)


def test_stats_keep_the_window_and_the_filters(account: Account) -> None:
    plain = account.create_gateway(model="@mock/plain")
    priced = account.create_gateway(model="@mock/priced")
    alpha = new_key(account, name="alpha")
    with account.http() as http:
        responses = [chat(http, plain["id"], key=alpha["key"]) for _ in range(2)]
        responses += [chat(http, priced["id"]) for _ in range(3)]
        ids = recorded(account, *responses)
        rows = {r["id"]: r for r in body(http.get("/requests", params={"limit": 10}))["data"]}

        def stats(**params: Any) -> dict[str, Any]:
            return body(http.get("/requests/stats", params=params))  # type: ignore[no-any-return]

        assert stats(gateway=plain["slug"])["requests"] == 2
        assert stats(gateway=priced["name"], key="alpha")["requests"] == 0
        assert stats(key=alpha["id"])["requests"] == 2
        assert stats(model="cached-2026")["requests"] == 3
        start, end = rows[ids[1]]["created_at"], rows[ids[3]]["created_at"]
        window = stats(**{"from": start, "to": end})
        assert window["from"] == start and window["to"] == end
        assert figures(window) == expected([rows[i] for i in ids[1:3]])
        empty = stats(**{"from": end, "to": "2999-01-01T00:00:00Z", "gateway": plain["id"]})
        assert figures(empty) == expected([])
        assert stats(**{"from": end, "group_by": "day"})["data"][0]["requests"] == 2


def test_a_request_is_read_by_its_id_in_its_account_only(
    account: Account, other_account: Account
) -> None:
    gateway = account.create_gateway(model="@mock/priced")
    with account.http() as http:
        answer = chat(http, gateway["id"], metadata={"ticket": "T-7"})
        (request_id,) = recorded(account, answer)
        one = body(http.get(f"/requests/{request_id}"))
        listed = body(http.get("/requests"))["data"]
        missing = http.get(f"/requests/{new_id()}")
        garbage = http.get("/requests/not-an-id")
    assert one == listed[0]
    assert one["id"] == request_id == answer.json()["id"]
    assert one["line_items"] == body(answer)["generation_context"]["generated_usage"]
    assert one["metadata"] == {"ticket": "T-7"}
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    assert garbage.status_code == 404

    with other_account.http() as http:
        assert http.get(f"/requests/{request_id}").status_code == 404  # as if it did not exist
        stats = body(http.get("/requests/stats", params={"group_by": "gateway"}))
        assert (stats["requests"], stats["data"]) == (0, [])
        assert http.get("/requests/stats", params={"gateway": gateway["id"]}).status_code == 404
    with account.http(account.create_key(name="app")) as http:  # an inference key
        assert http.get(f"/requests/{request_id}").status_code == 403
        assert http.get("/requests/stats").status_code == 403


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"group_by": "sku"}, "group_by"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to"),
    ],
)
def test_bad_parameters_are_400_naming_them(
    account: Account, params: dict[str, str], param: str
) -> None:
    with account.http() as http:
        response = http.get("/requests/stats", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_unknown_filters_are_404_naming_them(account: Account) -> None:
    with account.http() as http:
        for param in ("gateway", "key"):
            response: httpx.Response = http.get("/requests/stats", params={param: "nope"})
            assert response.status_code == 404, response.text
            assert response.json()["error"]["param"] == param


# -- the figures themselves, on both databases ------------------------------------------------


def _record(account_id: str, moment: datetime, **fields: Any) -> RequestRecord:
    fields = {"endpoint": "chat.completions", "stream": False} | fields
    return RequestRecord(id=new_id(), created_at=moment, account_id=account_id, **fields)


def test_percentiles_are_nearest_ranks_per_utc_day(db: Database) -> None:
    """Known values: 1..20 ms on one UTC day, 100 ms and a refused 1 ms on the next (late in
    the day in São Paulo, the next day in UTC), indexing work that is not counted."""
    log = RequestLog(db, flush_interval_s=1, batch_size=100)
    account_id = new_id()
    first = datetime(2026, 3, 9, 12, tzinfo=UTC)
    second = datetime(2026, 3, 9, 22, 30, tzinfo=timezone(timedelta(hours=-3))).astimezone(UTC)
    records = [
        _record(
            account_id,
            first + timedelta(seconds=n),
            latency_ms=float(n),
            ttft_ms=float(n) / 10 if n % 2 else None,
            stream=bool(n % 2),
            status_code=500 if n in (4, 8) else 200,
            gateway_id="gw-a",
        )
        for n in range(20, 0, -1)
    ]
    records += [
        _record(account_id, second, latency_ms=100.0, gateway_id=None, status_code=499),
        _record(account_id, second, latency_ms=1.0, status_code=429),
        _record(account_id, second, latency_ms=1e6, endpoint="knowledge.indexing"),
    ]
    log.write_records(records)
    service = UsageService(db)
    stats = service.stats(account_id, RequestFilter(), group_by="day")
    values = [float(n) for n in range(1, 21)] + [100.0]
    assert stats["requests"] == 21 and stats["refused_requests"] == 1 and stats["errors"] == 3
    assert stats["latency_ms"] == {"p50": 11.0, "p95": 20.0}
    assert stats["latency_ms"]["p95"] == nearest_rank(values, 95)
    assert stats["time_to_first_token_ms"] == {"p50": 0.9, "p95": 1.9}  # the odd ones
    assert [(d["day"], d["requests"], d["errors"]) for d in stats["data"]] == [
        ("2026-03-09", 20, 2),
        ("2026-03-10", 1, 1),
    ]
    assert stats["data"][0]["latency_ms"] == {"p50": 10.0, "p95": 19.0}
    assert stats["data"][1]["latency_ms"] == {"p50": 100.0, "p95": 100.0}  # a day of one
    assert stats["data"][1]["error_rate"] == 1.0
    by_gateway = service.stats(account_id, RequestFilter(), group_by="gateway")["data"]
    assert [(g["gateway"], g["name"], g["requests"]) for g in by_gateway] == [
        ("gw-a", None, 20),  # a gateway the account does not have (deleted): no name
        (None, None, 1),
    ]
    assert service.stats("another", RequestFilter(), group_by="day")["data"] == []


def test_nearest_rank() -> None:
    assert [rank(50, n) for n in (1, 2, 3, 4, 20, 21)] == [1, 1, 2, 2, 10, 11]
    assert [rank(95, n) for n in (1, 2, 19, 20, 21, 100)] == [1, 2, 19, 19, 20, 95]
    for n in range(1, 300):
        for p in (50, 95):
            assert rank(p, n) == math.ceil(p * n / 100)


def test_a_page_of_the_log_reads_its_account_by_index(tmp_path: Path) -> None:
    """`(account_id, id)`: a page walks its own account's records, never the whole log (on
    SQLite, whose planner otherwise walks the primary key)."""
    db = Database(f"sqlite:///{tmp_path / 'plan.db'}")
    db.migrate()
    query = (
        "EXPLAIN QUERY PLAN SELECT id FROM request_log WHERE account_id = 'a' "
        "AND id < 'z' ORDER BY id DESC LIMIT 51"
    )
    with db.engine.connect() as connection:
        plan = " ".join(str(row[-1]) for row in connection.execute(text(query)))
    db.dispose()
    assert "ix_request_log_account_id" in plan, plan
