"""The console's Overview and Requests pages over a request log of 100,000 records: how long
each API call they make takes, and the query plans behind them.

What is real and what is not:
- The server is a real `alicerce serve` process on a fresh store (SQLite by default, or the
  PostgreSQL database `--postgres URL` names, which is emptied first); the account, its gateways
  and its keys are made through the API.
- The records are written straight into the store in batches of 5,000 (the request log's own
  writer, `RequestLog.write_records`, with times and UUIDv7 ids in the past), since making
  100,000 real requests would take minutes and measure the gateway, not the console's reads. They
  are spread over 30 days (more on weekdays and in working hours), over 4 gateways and 3 keys,
  with ~92% answered 200, ~4% 5xx, ~1% 400, ~1% 499 (a client that left) and ~2% refused with
  429; latencies are log-normal per gateway; 40% are streams with a time to first token; each
  record has its line items (tokens in and out, at the catalog's prices).
- Each call is made `--repeat` times (20) over one keep-alive connection, as a browser tab
  does; the figures are the median and the slowest. "Page" is the wall time of all the calls one
  page makes, sent at once as the console sends them.

    uv run --frozen python bench/console_queries.py [--requests 100000] [--repeat 20]
    uv run --frozen python bench/console_queries.py --postgres postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import event, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alicerce.billing import LineItem  # noqa: E402
from alicerce.request_listing import RequestFilter  # noqa: E402
from alicerce.request_log import RequestLog, RequestRecord  # noqa: E402
from alicerce.store import Database  # noqa: E402
from alicerce.usage import UsageService  # noqa: E402
from bench.servers import Proc, free_port, wait_http  # noqa: E402

ROOT_KEY = "alc_bench_root_" + uuid.uuid4().hex
DAYS = 30
BATCH = 5_000
CATALOG = """
[providers.bench]
base_url = "http://127.0.0.1:9/v1"
api_key_env = "ALICERCE_BENCH_PROVIDER_KEY"

[[models]]
id = "@bench/small"
provider = "bench"
upstream_model = "small"
price_in = 0.15
price_out = 0.6

[[models]]
id = "@bench/large"
provider = "bench"
upstream_model = "large"
price_in = 2.5
price_out = 10
"""
GATEWAYS = [  # name, model, share of the traffic, median latency (ms)
    ("support-bot", "@bench/large", 0.45, 900.0),
    ("search-helper", "@bench/small", 0.30, 350.0),
    ("summariser", "@bench/large", 0.15, 2200.0),
    ("classifier", "@bench/small", 0.10, 120.0),
]
PRICES = {"small": (Decimal("0.15"), Decimal("0.6")), "large": (Decimal("2.5"), Decimal(10))}
KEYS = [("web-app", 0.6), ("batch-jobs", 0.3), ("staging", 0.1)]
STATUSES = [(200, 0.92), (500, 0.02), (502, 0.01), (503, 0.01), (400, 0.01), (499, 0.01)]
STATUSES += [(429, 0.02)]


# -- the server ------------------------------------------------------------------------------


def start_server(workdir: Path, database_url: str) -> tuple[Proc, str]:
    catalog = workdir / "catalog.toml"
    catalog.write_text(CATALOG)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ALICERCE_")},
        "ALICERCE_DATABASE_URL": database_url,
        "ALICERCE_CREATE_DATABASE": "true",
        "ALICERCE_ROOT_KEY": ROOT_KEY,
        "ALICERCE_SECRET_KEY": "bench-secret",
        "ALICERCE_CONFIG": str(catalog),
        "ALICERCE_BENCH_PROVIDER_KEY": "sk-unused",
        "ALICERCE_LOG_LEVEL": "warning",
        "ALICERCE_KNOWLEDGE_INDEX_DIR": str(workdir / "vectors"),
    }
    port = free_port()
    argv = [sys.executable, "-m", "alicerce", "serve", "--port", str(port)]
    proc = Proc("alicerce", argv, env, ROOT, workdir / "serve.log")
    base = f"http://127.0.0.1:{port}"
    wait_http(proc, base + "/readyz")
    return proc, base


def make_account(
    base: str, name: str
) -> tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]:
    """An account, its gateways and keys, through the API: (account id, admin key, ...)."""
    root = httpx.Client(base_url=base + "/api/v1", headers={"authorization": f"Bearer {ROOT_KEY}"})
    account = root.post("/accounts", json={"name": name}).raise_for_status().json()
    admin = httpx.Client(
        base_url=base + "/api/v1", headers={"authorization": f"Bearer {account['admin_key']}"}
    )
    gateways = [
        admin.post("/gateways", json={"name": name, "model": model}).raise_for_status().json()
        for name, model, _, _ in GATEWAYS
    ]
    keys = [admin.post("/keys", json={"name": name}).raise_for_status().json() for name, _ in KEYS]
    return account["id"], account["admin_key"], gateways, keys


# -- the records -----------------------------------------------------------------------------


def uuid7_at(moment: datetime, rng: random.Random) -> str:
    """A UUIDv7 of a past moment (ids sort by time, as the log's cursor expects)."""
    ms = int(moment.timestamp() * 1000)
    value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62)
    value |= rng.getrandbits(62)
    return str(uuid.UUID(int=value))


def moments(count: int, end: datetime, rng: random.Random) -> list[datetime]:
    """`count` times over the `DAYS` days before `end`: weekdays busier, working hours busiest."""
    start = end - timedelta(days=DAYS)
    hours = [start + timedelta(hours=h) for h in range(DAYS * 24)]
    weights = [
        (1.0 if hour.weekday() < 5 else 0.4)
        * (1.0 + 2.0 * math.exp(-(((hour.hour - 14) / 4) ** 2)))
        for hour in hours
    ]
    chosen = rng.choices(hours, weights, k=count)
    return sorted(hour + timedelta(seconds=rng.random() * 3600) for hour in chosen)


def records(
    account_id: str,
    gateways: list[dict[str, Any]],
    keys: list[dict[str, Any]],
    count: int,
    seed: int = 13,
) -> list[RequestRecord]:
    rng = random.Random(seed)
    end = datetime.now(UTC) - timedelta(minutes=5)
    statuses, status_weights = zip(*STATUSES, strict=True)
    result = []
    for moment in moments(count, end, rng):
        index = rng.choices(range(len(GATEWAYS)), [g[2] for g in GATEWAYS])[0]
        _, model, _, median = GATEWAYS[index]
        key = rng.choices(keys, [k[1] for k in KEYS])[0]
        status = rng.choices(statuses, status_weights)[0]
        stream = rng.random() < 0.4
        refused = status == 429
        latency = 2.0 + rng.random() * 3 if refused else rng.lognormvariate(math.log(median), 0.6)
        prompt, completion = (0, 0) if refused else (rng.randint(50, 3000), rng.randint(0, 800))
        upstream = model.rsplit("/", 1)[1]
        price_in, price_out = PRICES[upstream]
        items = []
        if not refused:
            for sku, quantity, price in (
                ("inference.chat_completions.in", prompt, price_in),
                ("inference.chat_completions.out", completion, price_out),
            ):
                if quantity:
                    item = LineItem(
                        sku, quantity, price / 1_000_000, f"Inference for AI model '{model}'"
                    )
                    items.append(item)
        error = (
            None if status < 400 else ("server_error" if status >= 500 else "invalid_request_error")
        )
        result.append(
            RequestRecord(
                id=uuid7_at(moment, rng),
                created_at=moment,
                endpoint="chat.completions",
                stream=stream,
                account_id=account_id,
                key_id=key["id"],
                gateway_id=None if refused and rng.random() < 0.5 else gateways[index]["id"],
                model=None if refused else upstream,
                status_code=status,
                error_type=error,
                error_message=None if error is None else f"The upstream answered {status}.",
                latency_ms=round(latency, 3),
                ttft_ms=round(latency * rng.uniform(0.1, 0.4), 3)
                if stream and not refused
                else None,
                prompt_tokens=prompt,
                completion_tokens=completion,
                amount=sum((i.amount for i in items), Decimal(0)),
                line_items=[i.to_record() for i in items],
                request_metadata={"team": rng.choice(["growth", "core", "ops"])},
            )
        )
    return result


def fill(database_url: str, rows: list[RequestRecord]) -> float:
    db = Database(database_url)
    log = RequestLog(db, flush_interval_s=1, batch_size=BATCH)
    started = time.perf_counter()
    for at in range(0, len(rows), BATCH):
        log.write_records(rows[at : at + BATCH])
    if not db.is_sqlite:
        with db.engine.begin() as connection:
            connection.execute(text("ANALYZE request_log"))
            connection.execute(text("ANALYZE line_items"))
    else:
        with db.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    db.dispose()
    return time.perf_counter() - started


# -- the calls -------------------------------------------------------------------------------


def window(end: datetime) -> dict[str, str]:
    """The last 30 days, as the Overview asks for them."""
    return {"from": (end - timedelta(days=DAYS)).isoformat(), "to": end.isoformat()}


def overview_calls(end: datetime) -> list[tuple[str, dict[str, Any]]]:
    """What the Overview asks for when it opens (pages/overview.js); the other breakdowns (by
    SKU, by key) when their tab is chosen."""
    return [
        ("/usage", {**window(end), "group_by": "day"}),
        ("/requests/stats", {**window(end), "group_by": "day"}),
        ("/usage", {**window(end), "group_by": "gateway"}),
    ]


def requests_calls(gateway: str, key: str) -> list[tuple[str, dict[str, Any]]]:
    """What the Requests page asks for: the first page, its filters' choices (pages/requests.js)."""
    return [("/requests", {"limit": 50}), ("/gateways", {}), ("/keys", {})]


def timed(client: httpx.Client, path: str, params: dict[str, Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path, params=params)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


def page_wall(
    base: str, key: str, calls: list[tuple[str, dict[str, Any]]], repeat: int
) -> list[float]:
    """All of a page's calls at once, each on its own connection, as a browser sends them."""
    clients = [client_for(base, key) for _ in calls]
    walls = []
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        for client, (path, params) in zip(clients, calls, strict=True):
            client.get(path, params=params).raise_for_status()  # connections open
        for _ in range(repeat):
            started = time.perf_counter()
            futures = [
                pool.submit(
                    lambda c, p, q: c.get(p, params=q).raise_for_status(), client, path, params
                )
                for client, (path, params) in zip(clients, calls, strict=True)
            ]
            for future in futures:
                future.result()
            walls.append((time.perf_counter() - started) * 1000)
    for client in clients:
        client.close()
    return walls


def client_for(base: str, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=base + "/api/v1", headers={"authorization": f"Bearer {key}"}, timeout=60
    )


def describe(params: dict[str, Any]) -> str:
    shown = {k: v for k, v in params.items() if k not in ("from", "to")}
    text_ = "&".join(f"{k}={v}" for k, v in shown.items())
    if "from" in params:
        text_ = "30 days" + (f", {text_}" if text_ else "")
    return text_


# -- the query plans ---------------------------------------------------------------------------


def plans(database_url: str, account_id: str, gateway: str, key: str, cursor: str) -> list[str]:
    """The plan of each statement the domain code runs for the calls measured, in process (the
    same code the server runs), so that a full scan shows up here."""
    db = Database(database_url)
    service = UsageService(db, gateway_id=lambda _a, ref: ref)
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    end = datetime.now(UTC)
    start = end - timedelta(days=DAYS)
    event.listen(db.engine, "before_cursor_execute", capture)
    for group_by in ("day", "gateway", "sku", "key"):
        service.totals(account_id, start=start, end=end, group_by=group_by)  # type: ignore[arg-type]
    service.stats(account_id, RequestFilter(start=start, end=end), group_by="day")
    for where in (
        RequestFilter(),
        RequestFilter(status="error"),
        RequestFilter(gateway_id=gateway),
        RequestFilter(key_id=key),
        RequestFilter(start=end - timedelta(days=2), end=end - timedelta(days=1)),
    ):
        service.requests(account_id, where, limit=50, cursor=None)
    service.requests(account_id, RequestFilter(), limit=50, cursor=cursor)
    event.remove(db.engine, "before_cursor_execute", capture)
    out = []
    with db.engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        for statement, parameters in statements:
            cursor_ = raw.cursor()
            prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
            cursor_.execute(prefix + statement, parameters)
            rows = cursor_.fetchall()
            cursor_.close()
            lines = [r[-1] if db.is_sqlite else r[0] for r in rows]
            first = " ".join(statement.split())[:110]
            out.append(first + " ...\n    " + "\n    ".join(str(line) for line in lines))
    db.dispose()
    return out


# -- the run -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--neighbours", type=int, default=100_000, help="records of another account, beside"
    )
    parser.add_argument("--postgres", help="a PostgreSQL URL to use instead of SQLite (emptied)")
    parser.add_argument("--plans", action="store_true", help="print every query plan")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        database_url = args.postgres or f"sqlite:///{workdir / 'console.db'}"
        if args.postgres:
            empty_postgres(args.postgres)
        proc, base = start_server(workdir, database_url)
        try:
            run(args, base, database_url)
        finally:
            proc.stop()


def empty_postgres(url: str) -> None:
    db = Database(url)
    with db.engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    db.dispose()


def run(args: argparse.Namespace, base: str, database_url: str) -> None:
    account_id, admin_key, gateways, keys = make_account(base, "bench")
    rows = records(account_id, gateways, keys, args.requests)
    seconds = fill(database_url, rows)
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"{backend}: {len(rows):,} records and {sum(len(r.line_items) for r in rows):,} line"
        f" items written in {seconds:.1f} s, over {DAYS} days, {len(gateways)} gateways,"
        f" {len(keys)} keys"
    )
    if args.neighbours:
        other, _, other_gateways, other_keys = make_account(base, "neighbour")
        fill(database_url, records(other, other_gateways, other_keys, args.neighbours, seed=7))
        print(f"and {args.neighbours:,} records of another account in the same store")
    print()
    _, new_admin, _, _ = make_account(base, "newcomer")
    client = client_for(base, admin_key)
    end = datetime.now(UTC)
    gateway, key = gateways[0]["id"], keys[1]["id"]
    first = client.get("/requests", params={"limit": 50}).json()
    cursor = first["next_cursor"]
    deep = cursor
    for _ in range(19):  # page 21: 1,000 records in
        deep = client.get("/requests", params={"limit": 50, "cursor": deep}).json()["next_cursor"]
    one_day = {
        "from": (end - timedelta(days=2)).isoformat(),
        "to": (end - timedelta(days=1)).isoformat(),
    }
    detail = f"/requests/{first['data'][7]['id']}"
    measured: list[tuple[str, str, dict[str, Any]]] = [
        *(("Overview", path, params) for path, params in overview_calls(end)),
        ("Overview", "/usage", {**window(end), "group_by": "sku"}),
        ("Overview", "/usage", {**window(end), "group_by": "key"}),
        ("Overview", "/requests/stats", {**window(end), "group_by": "gateway"}),
        ("Requests", "/requests", {"limit": 50}),
        ("Requests", "/requests", {"limit": 50, "cursor": cursor}),
        ("Requests", "/requests", {"limit": 50, "cursor": deep}),
        ("Requests", "/requests", {"limit": 50, "status": "error"}),
        ("Requests", "/requests", {"limit": 50, "status": "5xx", "gateway": gateway}),
        ("Requests", "/requests", {"limit": 50, "gateway": gateway}),
        ("Requests", "/requests", {"limit": 50, "key": key}),
        ("Requests", "/requests", {"limit": 50, **one_day}),
        ("Requests", "/requests", {"limit": 50, "status": "400", **one_day}),
        ("Requests", detail, {}),
        ("Requests", "/keys", {}),
    ]
    print("| page | call | median | slowest |")
    print("| --- | --- | --- | --- |")
    for page, path, params in measured:
        times = timed(client, path, params, args.repeat)
        shown = describe(params).replace(gateway, "<gateway>").replace(key, "<key>")
        shown = shown.replace(str(cursor), "<page 2>").replace(str(deep), "<page 21>")
        call = "`GET " + ("/requests/{id}" if path == detail else path)
        call += f"?{shown}`" if shown else "`"
        print(f"| {page} | {call} | {statistics.median(times):.1f} ms | {max(times):.1f} ms |")
    newcomer = client_for(base, new_admin)
    print()
    print("A new account in the same store (no records of its own):")
    for path, params in (*overview_calls(end)[:3], ("/requests", {"limit": 50})):
        times = timed(newcomer, path, params, args.repeat)
        print(f"- `GET {path}?{describe(params)}`: median {statistics.median(times):.1f} ms")
    print()
    for page, calls in (
        ("Overview", overview_calls(end)),
        ("Requests", requests_calls(gateway, key)),
    ):
        walls = page_wall(base, admin_key, calls, args.repeat)
        print(
            f"{page} page, its {len(calls)} calls at once: median"
            f" {statistics.median(walls):.1f} ms, slowest {max(walls):.1f} ms"
        )
    print()
    found = plans(database_url, account_id, gateway, key, cursor)
    scans = [
        p for p in found if "SCAN request_log" in p or "SCAN line_items" in p or "Seq Scan" in p
    ]
    print(f"{len(found)} statements; {len(scans)} with a full scan of a log table")
    for plan in found if args.plans else scans:
        print(plan)


if __name__ == "__main__":
    main()
