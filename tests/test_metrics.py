"""`/metrics`: requests by gateway and model (bounded), upstream errors, fallbacks, limiter
refusals, knowledge work, requests in flight, and the key it may require."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alicerce.api import create_app
from alicerce.billing import TokenUsage
from alicerce.metrics import Metrics
from tests import conftest
from tests.conftest import Account, Alicerce
from tests.servers import ServerThread

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, key: str | None = None) -> Samples:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(url + "/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _ask(client: openai.OpenAI, model: str, **request: object) -> None:
    client.chat.completions.create(  # type: ignore[call-overload]
        model=model, messages=[{"role": "user", "content": "count me"}], **request
    )


def test_requests_latency_and_tokens_by_gateway_and_model(account: Account) -> None:
    gateway = account.create_gateway(model="@mock/priced")
    client = account.openai()
    _ask(client, gateway["id"])
    list(
        client.chat.completions.create(
            model=gateway["slug"], messages=[{"role": "user", "content": "count me"}], stream=True
        )
    )
    _ask(client, "@mock/plain")  # a catalog model by its id: no gateway
    served = {"gateway": gateway["slug"], "model": "@mock/priced"}
    samples = scrape(account.alicerce.url)
    chat = {"endpoint": "chat.completions"}
    assert value(samples, "alicerce_requests_total", **chat, status="200", **served) == 2
    for stream in ("true", "false"):
        count = value(
            samples, "alicerce_request_duration_seconds_count", **chat, stream=stream, **served
        )
        assert count == 1
    assert value(samples, "alicerce_time_to_first_token_seconds_count", **chat, **served) == 1
    # `cached` reports 12 prompt tokens of which 8 were cached, and 5 completion tokens
    assert value(samples, "alicerce_tokens_total", **served, kind="prompt") > 0
    assert value(samples, "alicerce_tokens_total", **served, kind="cached") > 0
    assert value(samples, "alicerce_tokens_total", **served, kind="completion") > 0
    direct = {"gateway": "none", "model": "@mock/plain"}
    assert value(samples, "alicerce_requests_total", **chat, status="200", **direct) >= 1


def test_gateways_past_the_cap_count_as_other() -> None:
    metrics = Metrics(max_gateways=2)
    for gateway in ("a:0001", "b:0002", "c:0003", "a:0001", "d:0004"):
        metrics.observe_request(
            "chat.completions", 200, 0.01, TokenUsage(1, 1), False, None, gateway=gateway
        )
    counts = {
        sample.labels["gateway"]: sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
        if sample.name == "alicerce_requests_total"
    }
    assert counts == {"a:0001": 2, "b:0002": 1, "other": 2}  # c and d


def test_upstream_errors_and_fallbacks(account: Account) -> None:
    gateway = account.create_gateway(model="@mock/down", fallbacks=["@mock/broken", "@mock/plain"])
    before = scrape(account.alicerce.url)
    _ask(account.openai(), gateway["id"])
    after = scrape(account.alicerce.url)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("alicerce_upstream_errors_total", upstream="@mock/down", status="5xx") == 1
    assert grew("alicerce_upstream_errors_total", upstream="@mock/broken", status="5xx") == 1
    fallbacks = "alicerce_fallbacks_total"
    assert grew(fallbacks, from_model="@mock/down", to_model="@mock/broken") == 1
    assert grew(fallbacks, from_model="@mock/broken", to_model="@mock/plain") == 1
    served = {"gateway": gateway["slug"], "model": "@mock/plain"}
    assert grew("alicerce_requests_total", endpoint="chat.completions", status="200", **served)


@pytest.mark.parametrize(
    ("limits", "limit", "asks"),
    [({"rpm": 1}, "rpm", 2), ({"tpm": 1}, "tpm", 1), ({"monthly_budget": 0}, "budget", 1)],
)
def test_limit_refusals_by_limit(
    account: Account, limits: dict[str, int], limit: str, asks: int
) -> None:
    gateway = account.create_gateway()
    client = account.openai(account.create_key(role="inference", **limits))
    before = value(scrape(account.alicerce.url), "alicerce_limit_refusals_total", limit=limit)
    for _ in range(asks - 1):
        _ask(client, gateway["id"])
    with pytest.raises(openai.RateLimitError):
        _ask(client, gateway["id"])
    after = value(scrape(account.alicerce.url), "alicerce_limit_refusals_total", limit=limit)
    assert after - before == 1


def test_requests_in_flight(account: Account) -> None:
    gateway = account.create_gateway(
        endpoint={"base_url": account.upstream.url, "model": "slow-stream"}
    )
    url, name = account.alicerce.url, "alicerce_requests_in_flight"
    idle = value(scrape(url), name)
    marker = "in-flight-" + uuid.uuid4().hex
    stream = account.openai().chat.completions.create(
        model=gateway["id"], messages=[{"role": "user", "content": marker}], stream=True
    )
    next(iter(stream))  # the stream has begun
    assert value(scrape(url), name) == idle + 1
    stream.close()
    assert account.upstream.mock.closed_early(marker)
    account.alicerce.wait_for_record(stream.response.headers["x-request-id"])
    assert value(scrape(url), name) == idle


def test_knowledge_searches_and_indexing(account: Account) -> None:
    endpoint = {"base_url": account.upstream.url, "model": "embed-8", "dimensions": 8}
    url = account.alicerce.url
    before = scrape(url)
    with account.http() as client:
        good = client.post("/collections", json={"name": "m", "embedding": endpoint}).json()
        broken = endpoint | {"model": "fail-500"}
        bad = client.post("/collections", json={"name": "b", "embedding": broken}).json()
        document = {"name": "notes.md", "content": "# Notes\n\nThe kettle boils at noon."}
        for collection in (good, bad):
            added = client.post(f"/collections/{collection['id']}/documents", json=document)
            assert added.status_code == 202, added.text
        account.alicerce.indexed()
        for mode in ("keyword", "vector"):
            found = client.post(
                f"/collections/{good['id']}/search", json={"query": "kettle", "mode": mode}
            )
            assert found.status_code == 200, found.text
    after = scrape(url)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("alicerce_documents_indexed_total") == 1
    assert grew("alicerce_chunks_indexed_total") >= 1
    assert grew("alicerce_indexing_failures_total") == 1
    for mode in ("keyword", "vector"):
        assert grew("alicerce_knowledge_search_duration_seconds_count", mode=mode) == 1
        assert grew("alicerce_knowledge_search_duration_seconds_sum", mode=mode) > 0


METRICS_KEY = "metrics-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alicerce]:
    """A server whose `/metrics` needs `ALICERCE_METRICS_KEY`."""
    directory: Path = tmp_path_factory.mktemp("guarded")
    app = create_app(conftest.test_settings(directory, metrics_key=METRICS_KEY))
    server = ServerThread(app).start()
    yield Alicerce(server.url, "", server, app)
    server.stop()


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", f"Basic {METRICS_KEY}", f"Bearer {METRICS_KEY}x"]
)
def test_metrics_key_is_required_when_set(guarded: Alicerce, header: str | None) -> None:
    headers = {"authorization": header} if header else {}
    response = httpx.get(guarded.url + "/metrics", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert METRICS_KEY not in response.text


def test_metrics_answer_with_the_key(guarded: Alicerce) -> None:
    assert ("alicerce_requests_in_flight", frozenset()) in scrape(guarded.url, METRICS_KEY)
    assert httpx.get(guarded.url + "/healthz").status_code == 200  # still open


def test_metrics_are_open_without_a_key(alicerce: Alicerce) -> None:
    assert httpx.get(alicerce.url + "/metrics").status_code == 200
