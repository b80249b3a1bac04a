"""Per-key limits: rpm, tpm and monthly budgets, in memory and shared through Redis, and the
`x-ratelimit-*` headers that tell a client where its key stands."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest

from alicerce.limits import WINDOW_S, Counted, LimitBackend, MemoryBackend, duration
from alicerce.redis_limits import RedisBackend
from tests.conftest import (
    Account,
    Upstream,
    create_database,
    fresh_postgres_database,
    write_catalog,
)
from tests.servers import ServerProcess

REDIS_URL = "redis://127.0.0.1:6379/15"
DURATION = re.compile(r"^(\d+ms|(\d+m)?\d+(\.\d+)?s)$")


def _ask(client: openai.OpenAI, model: str, text: str = "Q") -> None:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def test_rpm_gives_429_with_retry_after(account: Account) -> None:
    gateway = account.create_gateway()
    client = account.openai(account.create_key(role="inference", rpm=3))
    for _ in range(3):
        _ask(client, gateway["id"])
    with pytest.raises(openai.RateLimitError) as caught:
        _ask(client, gateway["id"])
    error = caught.value
    assert error.body["type"] == "rate_limit_error"
    assert error.body["code"] == "requests_per_minute_exceeded"
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    # another key of the same account is not affected
    _ask(account.openai(), gateway["id"])


def test_a_refused_request_calls_no_router_and_records_no_charge(
    account: Account, upstream: Upstream
) -> None:
    """Limits come before `@auto` routing (a model call) and knowledge searches."""
    gateway = account.create_gateway(
        model="@auto", routing={"router": "@mock/router", "tiers": ["@mock/plain", "@mock/echo"]}
    )
    client = account.openai(account.create_key(role="inference", rpm=1))
    _ask(client, gateway["id"], "EASY")
    calls = len(upstream.mock.received)
    with pytest.raises(openai.RateLimitError) as caught:
        _ask(client, gateway["id"], "EASY")
    assert len(upstream.mock.received) == calls  # neither the router nor a tier was called
    record = account.alicerce.wait_for_record(caught.value.response.headers["x-request-id"])
    assert record.status_code == 429 and record.line_items == []
    assert record.gateway_id == gateway["id"]


def test_tpm_counts_tokens(account: Account) -> None:
    gateway = account.create_gateway()
    client = account.openai(account.create_key(role="inference", tpm=200))
    _ask(client, gateway["id"], "short question")
    with pytest.raises(openai.RateLimitError) as caught:
        _ask(client, gateway["id"], "a long question " * 100)
    assert caught.value.body["code"] == "tokens_per_minute_exceeded"


def test_monthly_budget_gives_insufficient_quota(account: Account) -> None:
    gateway = account.create_gateway(model="@mock/priced")
    client = account.openai(account.create_key(role="inference", monthly_budget=0.0001))
    _ask(client, gateway["id"], "this first request costs more than the whole budget " * 4)
    with pytest.raises(openai.RateLimitError) as caught:
        _ask(client, gateway["id"])
    assert caught.value.status_code == 429
    assert caught.value.body["type"] == "insufficient_quota"
    zero = account.openai(account.create_key(role="inference", monthly_budget=0))
    with pytest.raises(openai.RateLimitError):
        _ask(zero, gateway["id"])


@pytest.mark.slow
def test_two_processes_sharing_redis_let_through_no_more_than_rpm(
    tmp_path: Path, upstream: Upstream
) -> None:
    redis = pytest.importorskip("redis")
    redis.Redis.from_url(REDIS_URL).ping()
    env = {
        "ALICERCE_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
        "ALICERCE_SECRET_KEY": "shared",
        "ALICERCE_ROOT_KEY": "alc_shared_root_" + uuid.uuid4().hex,
        "ALICERCE_ALLOW_PRIVATE_UPSTREAMS": "true",
        "ALICERCE_REDIS_URL": REDIS_URL,
        "ALICERCE_CONFIG": str(write_catalog(tmp_path, upstream)),
    }
    create_database(env["ALICERCE_DATABASE_URL"])
    first = ServerProcess(env).wait_ready()
    second = ServerProcess(env).wait_ready()
    try:
        root = {"authorization": f"Bearer {env['ALICERCE_ROOT_KEY']}"}
        account = httpx.post(first.url + "/api/v1/accounts", json={"name": "a"}, headers=root)
        admin = {"authorization": f"Bearer {account.json()['admin_key']}"}
        gateway = httpx.post(
            first.url + "/api/v1/gateways",
            headers=admin,
            json={"name": "g", "model": "@mock/plain"},
        ).json()
        key = httpx.post(
            first.url + "/api/v1/keys", headers=admin, json={"name": "k", "rpm": 5}
        ).json()["key"]
        body = {"model": gateway["id"], "messages": [{"role": "user", "content": "Q"}]}
        statuses = []
        for i in range(14):
            server = (first, second)[i % 2]
            response = httpx.post(
                server.url + "/api/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {key}"},
                timeout=30,
            )
            statuses.append(response.status_code)
        assert statuses.count(200) == 5, statuses
        assert statuses.count(429) == 9
        assert 200 in statuses[1::2] and 200 in statuses[0::2]  # both processes served
    finally:
        first.stop()
        second.stop()


@pytest.mark.slow
def test_metrics_add_up_every_worker(tmp_path: Path, upstream: Upstream) -> None:
    """`serve --workers 2`: whichever worker answers /metrics counts both workers' requests."""
    root_key = "alc_metrics_root_" + uuid.uuid4().hex
    env = {
        "ALICERCE_DATABASE_URL": f"sqlite:///{tmp_path / 'workers.db'}",
        "ALICERCE_SECRET_KEY": "workers",
        "ALICERCE_ROOT_KEY": root_key,
        "ALICERCE_ALLOW_PRIVATE_UPSTREAMS": "true",
        "ALICERCE_CONFIG": str(write_catalog(tmp_path, upstream)),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),  # else `serve` makes one
    }
    (tmp_path / "metrics").mkdir()
    create_database(env["ALICERCE_DATABASE_URL"])
    server = ServerProcess(env, "--workers", "2").wait_ready(timeout=60)
    try:
        root = {"authorization": f"Bearer {root_key}"}
        account = httpx.post(server.url + "/api/v1/accounts", json={"name": "m"}, headers=root)
        admin = {"authorization": f"Bearer {account.json()['admin_key']}"}
        body = {"model": "@mock/plain", "messages": [{"role": "user", "content": "Q"}]}
        requests = 40
        for _ in range(requests):  # new connections: the kernel spreads them over the workers
            answer = httpx.post(server.url + "/api/v1/chat/completions", json=body, headers=admin)
            assert answer.status_code == 200
        writers = {path.stem.rsplit("_", 1)[1] for path in (tmp_path / "metrics").glob("*.db")}
        writers.discard(str(server.process.pid))  # the supervisor, which serves nothing
        assert len(writers) == 2  # both workers served, each keeping its own counts
        line = (
            'alicerce_requests_total{endpoint="chat.completions",gateway="none",'
            'model="@mock/plain",status="200"}'
        )
        for _ in range(4):
            text = httpx.get(server.url + "/metrics").text
            counts = [float(row.split()[-1]) for row in text.splitlines() if row.startswith(line)]
            assert counts == [requests], text[:2000]
            assert "\nalicerce_requests_in_flight " in text  # one gauge, summed over workers
    finally:
        server.stop()


# -- x-ratelimit-* headers ---------------------------------------------------------------


def _seconds(text: str) -> float:
    """OpenAI's duration text back to seconds (`12ms`, `1m30.5s`)."""
    assert DURATION.match(text), text
    if text.endswith("ms"):
        return int(text[:-2]) / 1000
    minutes, _, seconds = text[:-1].rpartition("m")
    return int(minutes or 0) * 60 + float(seconds)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.0004, "0s"),
        (0.012, "12ms"),
        (0.9994, "999ms"),
        (1, "1s"),
        (8.64, "8.64s"),
        (60, "1m0s"),
        (90.5, "1m30.5s"),
        (119.9996, "2m0s"),
        (360, "6m0s"),
        (3723.25, "1h2m3.25s"),
    ],
)
def test_durations_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_answers_say_where_the_key_stands(account: Account) -> None:
    gateway = account.create_gateway()
    client = account.openai(account.create_key(role="inference", rpm=5, tpm=100_000))
    messages = [{"role": "user", "content": "how far am I from my limits?"}]
    first = client.chat.completions.with_raw_response.create(
        model=gateway["id"], messages=messages, max_tokens=16
    )
    headers = first.headers
    assert headers["x-ratelimit-limit-requests"] == "5"
    assert headers["x-ratelimit-remaining-requests"] == "4"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"  # when this request leaves the window
    assert headers["x-ratelimit-limit-tokens"] == "100000"
    left = int(headers["x-ratelimit-remaining-tokens"])
    # spoken for while it runs: its prompt and the longest answer it may get
    assert 100_000 - 16 - 50 < left < 100_000 - 16
    assert WINDOW_S <= _seconds(headers["x-ratelimit-reset-tokens"]) <= 2 * WINDOW_S
    account.alicerce.wait_for_record(headers["x-request-id"])  # its tokens are settled
    used = first.parse().usage
    assert used is not None
    second = client.chat.completions.with_raw_response.create(
        model=gateway["id"], messages=messages, stream=True
    )
    assert second.headers["x-ratelimit-remaining-requests"] == "3"
    assert int(second.headers["x-ratelimit-remaining-tokens"]) <= left - used.total_tokens + 1
    assert second.headers["content-type"].startswith("text/event-stream")
    assert [c for c in second.parse() if c.choices]  # the stream itself is untouched


def test_only_the_limits_a_key_has_are_told(account: Account) -> None:
    gateway = account.create_gateway()
    messages = [{"role": "user", "content": "Q"}]
    rpm_only = account.openai(account.create_key(role="inference", rpm=10))
    headers = rpm_only.chat.completions.with_raw_response.create(
        model=gateway["id"], messages=messages
    ).headers
    assert "x-ratelimit-limit-requests" in headers and "x-ratelimit-limit-tokens" not in headers
    for key in (account.admin_key, account.create_key(role="inference", monthly_budget=10)):
        headers = (
            account.openai(key)
            .chat.completions.with_raw_response.create(model=gateway["id"], messages=messages)
            .headers
        )
        assert not [name for name in headers if name.startswith("x-ratelimit")]


def test_a_429_tells_the_limits_too(account: Account) -> None:
    gateway = account.create_gateway()
    client = account.openai(account.create_key(role="inference", rpm=1, tpm=1_000))
    _ask(client, gateway["id"])
    with pytest.raises(openai.RateLimitError) as caught:
        _ask(client, gateway["id"])
    headers = caught.value.response.headers
    assert caught.value.body["code"] == "requests_per_minute_exceeded"  # type: ignore[index]
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 0 < _seconds(headers["x-ratelimit-reset-requests"]) <= WINDOW_S
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    tokens = account.openai(account.create_key(role="inference", rpm=1, tpm=200))
    with pytest.raises(openai.RateLimitError) as caught:
        _ask(tokens, gateway["id"], "a long question " * 100)
    headers = caught.value.response.headers
    assert caught.value.body["code"] == "tokens_per_minute_exceeded"  # type: ignore[index]
    assert headers["x-ratelimit-remaining-tokens"] == "200"  # nothing used yet
    assert headers["x-ratelimit-remaining-requests"] == "1"  # a refused request takes no slot
    assert "retry-after" in headers
    _ask(tokens, gateway["id"])  # and the slot is still there


def test_responses_and_embeddings_tell_the_limits(account: Account) -> None:
    gateway = account.create_gateway()
    client = account.openai(account.create_key(role="inference", rpm=3, tpm=5_000))
    response = client.responses.with_raw_response.create(model=gateway["id"], input="Hi")
    assert response.headers["x-ratelimit-remaining-requests"] == "2"
    assert response.headers["x-ratelimit-limit-tokens"] == "5000"
    answer = client.embeddings.with_raw_response.create(model="@mock/embed", input=["a", "b"])
    assert answer.headers["x-ratelimit-remaining-requests"] == "1"


# -- the backends: one step, in memory and in Redis --------------------------------------


@pytest.fixture(params=["memory", "redis"])
def make_backend(request: pytest.FixtureRequest) -> Callable[[], LimitBackend]:
    """Makes a fresh backend (on the running loop: Redis's client belongs to one)."""
    if request.param == "memory":
        return MemoryBackend
    redis = pytest.importorskip("redis")
    redis.Redis.from_url(REDIS_URL).ping()
    prefix = "alicerce-test-" + uuid.uuid4().hex
    return lambda: RedisBackend(REDIS_URL, prefix)


def test_a_backend_admits_counts_and_refuses_in_one_step(
    make_backend: Callable[[], LimitBackend],
) -> None:
    async def scenario() -> list[Counted]:
        backend = make_backend()
        try:
            taken = [await backend.take("k", 2, None, 10) for _ in range(3)]
            await backend.add_tokens("t", 100)
            taken.append(await backend.take("t", 5, 150, 60))  # 100 + 60 > 150
            taken.append(await backend.take("t", 5, 150, 50))
            taken.append(await backend.take("none", None, 150, 0))
            return taken
        finally:
            await backend.close()

    first, second, third, over_tokens, within, tokens_only = asyncio.run(scenario())
    assert (first.refused, first.requests) == (None, 1)
    assert abs(first.requests_clear_s - WINDOW_S) < 1 and abs(first.requests_free_s - 60) < 1
    assert (second.refused, second.requests) == (None, 2)
    assert (third.refused, third.requests) == ("requests", 2)
    assert 0 < third.requests_free_s <= first.requests_free_s
    assert over_tokens.refused == "tokens" and over_tokens.requests == 0  # no slot taken
    assert over_tokens.tokens_current + over_tokens.tokens_previous == 100
    assert 0 <= over_tokens.minute_elapsed_s < WINDOW_S
    assert (within.refused, within.requests) == (None, 1)
    assert (tokens_only.refused, tokens_only.requests) == (None, 0)


def test_two_backends_on_one_redis_share_the_window() -> None:
    redis = pytest.importorskip("redis")
    redis.Redis.from_url(REDIS_URL).ping()
    prefix = "alicerce-test-" + uuid.uuid4().hex

    async def scenario() -> list[Counted]:
        one, two = RedisBackend(REDIS_URL, prefix), RedisBackend(REDIS_URL, prefix)
        try:
            return [await (one, two)[i % 2].take("k", 3, None, 0) for i in range(4)]
        finally:
            await one.close()
            await two.close()

    assert [(c.refused, c.requests) for c in asyncio.run(scenario())] == [
        (None, 1),
        (None, 2),
        (None, 3),
        ("requests", 3),
    ]


# -- budgets under concurrency: reserved at admission, settled when the request ends ------


def _concurrent_asks(
    base_urls: list[str], key: str, gateway: str, marker: str, n: int = 40
) -> list[int]:
    """`n` requests at once (spread over `base_urls`): their statuses."""

    async def ask(i: int) -> int:
        client = openai.AsyncOpenAI(
            base_url=base_urls[i % len(base_urls)] + "/api/v1", api_key=key, max_retries=0
        )
        try:
            await client.chat.completions.create(
                model=gateway,
                messages=[{"role": "user", "content": f"{marker} how much is this?"}],
                max_tokens=16,
            )
            return 200
        except openai.APIStatusError as exc:
            return exc.status_code
        finally:
            await client.close()

    async def all_of_them() -> list[int]:
        return list(await asyncio.gather(*(ask(i) for i in range(n))))

    return asyncio.run(all_of_them())


def _one_slow_answer(account: Account, kind: str) -> tuple[dict[str, Any], str, list[Any]]:
    """A gateway on the slow model, the marker of its requests, and the line items of one
    answer to the question `_concurrent_asks` sends."""
    gateway = account.create_gateway(model="@mock/pause")
    marker = f"{kind}-" + uuid.uuid4().hex[:8]
    _, context = account.answer(
        stream=False,
        model=gateway["id"],
        messages=[{"role": "user", "content": f"{marker} how much is this?"}],
        max_tokens=16,
    )
    return gateway, marker, context["generated_usage"]


def _spent(client: httpx.Client, key_id: str) -> float:
    return float(client.get("/usage", params={"key": key_id}).json()["amount"])


def test_a_budget_holds_under_concurrent_slow_requests(
    account: Account, upstream: Upstream
) -> None:
    """40 requests at once to a model that takes 0.8 s, at a budget worth 2.5 of them: the
    budget is overrun by at most one request's cost, and the refused ones call no model."""
    gateway, marker, items = _one_slow_answer(account, "budget")
    one = sum(float(item["amount"]) for item in items)
    assert one > 0
    budget = round(one * 2.5, 8)
    with account.http() as client:
        created = client.post("/keys", json={"name": "b", "monthly_budget": budget}).json()
    calls = len(upstream.mock.received)
    statuses = _concurrent_asks([account.alicerce.url], created["key"], gateway["id"], marker)
    served = statuses.count(200)
    assert served >= 1 and statuses.count(429) == 40 - served, statuses
    assert len(upstream.mock.received) - calls == served  # a refused request calls no model
    account.alicerce.flushed()
    with account.http() as client:
        spent = _spent(client, created["id"])
    assert spent == pytest.approx(served * one)
    assert spent <= budget + one * 1.0001, (spent, budget, one)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_budget_holds_across_two_replicas_on_postgres_and_redis(
    tmp_path: Path, upstream: Upstream
) -> None:
    redis = pytest.importorskip("redis")
    redis.Redis.from_url(REDIS_URL).ping()
    root_key = "alc_budget_root_" + uuid.uuid4().hex
    with contextlib.ExitStack() as stack:
        env = {
            "ALICERCE_DATABASE_URL": stack.enter_context(fresh_postgres_database()),
            "ALICERCE_CREATE_DATABASE": "true",
            "ALICERCE_SECRET_KEY": "shared",
            "ALICERCE_ROOT_KEY": root_key,
            "ALICERCE_ALLOW_PRIVATE_UPSTREAMS": "true",
            "ALICERCE_REDIS_URL": REDIS_URL,
            "ALICERCE_CONFIG": str(write_catalog(tmp_path, upstream)),
        }
        first = ServerProcess(env).wait_ready(60)
        stack.callback(first.stop)
        second = ServerProcess(env).wait_ready(60)
        stack.callback(second.stop)
        root = {"authorization": f"Bearer {root_key}"}
        account = httpx.post(first.url + "/api/v1/accounts", json={"name": "a"}, headers=root)
        admin = httpx.Client(
            base_url=first.url + "/api/v1",
            headers={"authorization": f"Bearer {account.json()['admin_key']}"},
            timeout=30,
        )
        stack.callback(admin.close)
        gateway = admin.post("/gateways", json={"name": "g", "model": "@mock/pause"}).json()
        marker = "budget-" + uuid.uuid4().hex[:8]
        answer = admin.post(
            "/chat/completions",
            json={
                "model": gateway["id"],
                "messages": [{"role": "user", "content": f"{marker} how much is this?"}],
                "max_tokens": 16,
            },
        ).json()
        one = sum(float(i["amount"]) for i in answer["generation_context"]["generated_usage"])
        budget = round(one * 2.5, 8)
        created = admin.post("/keys", json={"name": "b", "monthly_budget": budget}).json()
        statuses = _concurrent_asks([first.url, second.url], created["key"], gateway["id"], marker)
        served = statuses.count(200)
        assert served >= 1 and statuses.count(429) == 40 - served, statuses
        deadline = time.monotonic() + 10
        while (spent := _spent(admin, created["id"])) < served * one * 0.9999:
            assert time.monotonic() < deadline, (spent, served, one)
            time.sleep(0.1)  # each replica flushes its request log on its own
        assert spent == pytest.approx(served * one)
        assert spent <= budget + one * 1.0001, (spent, budget, one)


def test_a_backend_reserves_against_a_budget_in_one_step(
    make_backend: Callable[[], LimitBackend],
) -> None:
    from decimal import Decimal

    async def scenario() -> list[Decimal | None]:
        backend = make_backend()
        loads: list[int] = []

        def ledger() -> Decimal:  # what the key spent before this process counted it
            loads.append(1)
            return Decimal("0.5")

        try:
            budget = Decimal("1")
            first = await backend.reserve("k", "2026-12", Decimal("0.4"), budget, ledger)
            second = await backend.reserve("k", "2026-12", Decimal("0.4"), budget, ledger)
            refused = await backend.reserve("k", "2026-12", Decimal("0.4"), budget, ledger)
            await backend.add_spent("k", "2026-12", Decimal("-0.35"))  # settled below reserved
            again = await backend.reserve("k", "2026-12", Decimal("0.1"), budget, ledger)
            other = await backend.reserve("k", "2027-01", Decimal("0.1"), budget, ledger)
            assert len(loads) == 2  # once per month, not per request
            return [first, second, refused, again, other]
        finally:
            await backend.close()

    first, second, refused, again, other = asyncio.run(scenario())
    assert first == Decimal("0.5")
    assert second == Decimal("0.9")  # below the budget: admitted, and may overrun it
    assert refused is None  # 1.3 committed: nothing left
    assert again is not None and abs(again - Decimal("0.95")) < Decimal("1e-9")
    assert other == Decimal("0.5")


# -- tpm under concurrency: the worst case reserved at admission, settled at the end -------


def test_a_backend_reserves_tokens_and_settles_them_in_their_minute(
    make_backend: Callable[[], LimitBackend],
) -> None:
    async def scenario() -> list[Counted]:
        backend = make_backend()
        try:
            first = await backend.take("t", None, 100, 10, 40)  # prompt 10, worst case 40
            second = await backend.take("t", None, 100, 10, 40)
            third = await backend.take("t", None, 100, 30, 60)  # 80 + 30 > 100: refused
            await backend.add_tokens("t", 25 - 40, first.minute)  # the first used 25
            fourth = await backend.take("t", None, 100, 30, 60)  # 65 + 30 <= 100
            return [first, second, third, fourth]
        finally:
            await backend.close()

    first, second, third, fourth = asyncio.run(scenario())
    assert first.refused is None and first.tokens_current + first.tokens_previous == 0
    assert second.refused is None and second.tokens_current == 40  # the first's reservation
    assert third.refused == "tokens" and third.tokens_current == 80
    assert fourth.refused is None and fourth.tokens_current == 65


def test_tpm_holds_under_concurrent_slow_requests(account: Account, upstream: Upstream) -> None:
    """40 requests at once to a model that takes 0.8 s, at a tpm worth about 2.5 of their worst
    cases: without reservations every one passed the check; now the requests in flight count,
    so the key is overrun by at most one request, and the refused ones call no model."""
    gateway, marker, items = _one_slow_answer(account, "tpm")
    one = sum(i["quantity"] for i in items if i["sku"].endswith(".in"))
    worst = one + 16  # its prompt and max_tokens
    key = account.create_key(role="inference", tpm=int(worst * 2.5))
    calls = len(upstream.mock.received)
    statuses = _concurrent_asks([account.alicerce.url], key, gateway["id"], marker)
    served = statuses.count(200)
    assert 1 <= served <= 3 and statuses.count(429) == 40 - served, statuses
    assert len(upstream.mock.received) - calls == served
