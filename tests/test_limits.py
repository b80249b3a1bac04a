"""Per-key limits: rpm, tpm and monthly budgets, in memory and shared through Redis."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from tests.conftest import Account, Upstream, write_catalog
from tests.servers import ServerProcess

REDIS_URL = "redis://127.0.0.1:6379/15"


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
