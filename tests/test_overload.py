"""Overload is explicit (issue 15): past a worker's bound on requests in flight, or on calls to
one upstream host, a new request gets 503 with `retry-after` at once, counted in `/metrics`,
instead of waiting in a queue without end; what was admitted is answered and recorded.

Real servers on loopback with small bounds: streams from the mock upstream's `slow-stream` (5 s)
hold the slots, read with httpx as a client would."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from alicerce.api import create_app
from tests import conftest
from tests.conftest import ROOT_KEY, Alicerce, Upstream
from tests.servers import ServerThread

MAX_IN_FLIGHT = 2


def _server(directory: Path, **overrides: object) -> Alicerce:
    app = create_app(conftest.test_settings(directory, **overrides))
    server = ServerThread(app).start()
    return Alicerce(server.url, ROOT_KEY, server, app)


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alicerce]:
    """A worker that holds two inference requests at once."""
    alicerce = _server(tmp_path_factory.mktemp("bounded"), max_requests_in_flight=MAX_IN_FLIGHT)
    yield alicerce
    alicerce.server.stop()


@pytest.fixture(scope="module")
def one_per_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alicerce]:
    """A worker that makes one call at a time to any upstream host."""
    alicerce = _server(tmp_path_factory.mktemp("per-host"), upstream_max_connections_per_host=1)
    yield alicerce
    alicerce.server.stop()


def _gateways(alicerce: Alicerce, upstream: Upstream) -> tuple[str, str, str]:
    """A new account with a gateway on the mock's `slow-stream` and one on its `echo`:
    (the slow gateway, the quick one, an inference key)."""
    with alicerce.http(alicerce.root_key) as client:
        account = client.post("/accounts", json={"name": "acct-" + uuid.uuid4().hex[:6]}).json()
    names = []
    with alicerce.http(account["admin_key"]) as client:
        for model in ("slow-stream", "echo"):
            name = f"{model}-{uuid.uuid4().hex[:6]}"
            endpoint = {"base_url": upstream.url, "api_key": "sk-up", "model": model}
            assert client.post("/gateways", json={"name": name, "endpoint": endpoint}).is_success
            names.append(name)
        key = client.post("/keys", json={"name": "k", "role": "inference"}).json()["key"]
    return names[0], names[1], key


@contextmanager
def _open_stream(client: httpx.Client, gateway: str) -> Iterator[None]:
    """A stream through `gateway`, held open (its first chunk read) until the block ends."""
    body = {"model": gateway, "stream": True, "messages": [{"role": "user", "content": "hold"}]}
    with client.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
        yield


def _ask(client: httpx.Client, gateway: str) -> tuple[httpx.Response, float]:
    body = {"model": gateway, "messages": [{"role": "user", "content": "Hi"}]}
    started = time.monotonic()
    response = client.post("/chat/completions", json=body)
    return response, time.monotonic() - started


def _shed_count(alicerce: Alicerce, reason: str) -> float:
    text = httpx.get(alicerce.url + "/metrics").text
    for line in text.splitlines():
        if line.startswith(f'alicerce_requests_shed_total{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _assert_retryable_503(response: httpx.Response, code: str, elapsed: float) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["type"] in ("service_unavailable", "upstream_error")
    assert set(error) >= {"message", "type", "param", "code"}
    assert response.headers["retry-after"] == "1"
    assert elapsed < 1.0, f"a shed request waited {elapsed:.2f} s"


def test_a_request_past_the_bound_on_requests_in_flight_gets_503_at_once(
    bounded: Alicerce, upstream: Upstream
) -> None:
    slow, quick, key = _gateways(bounded, upstream)
    shed_before = _shed_count(bounded, "in_flight")
    with ExitStack() as held, bounded.http(key) as client:
        for _ in range(MAX_IN_FLIGHT):  # streams count until their last byte
            held.enter_context(_open_stream(held.enter_context(bounded.http(key)), slow))
        assert bounded.app.in_flight == MAX_IN_FLIGHT
        response, elapsed = _ask(client, quick)
        _assert_retryable_503(response, "too_many_requests_in_flight", elapsed)
        assert _shed_count(bounded, "in_flight") == shed_before + 1
    # the streams' clients left: their slots are free again, and the next request is served
    deadline = time.monotonic() + 10
    while bounded.app.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    with bounded.http(key) as client:
        response, _ = _ask(client, quick)
    assert response.status_code == 200, response.text
    assert _shed_count(bounded, "in_flight") == shed_before + 1


def test_requests_admitted_under_the_bound_are_all_answered_and_recorded(
    bounded: Alicerce, upstream: Upstream
) -> None:
    """Shedding is only of what is past the bound: with the worker full, the two admitted
    streams run to their end (all 100 pieces) and each has its request log row."""
    slow, quick, key = _gateways(bounded, upstream)
    sdk = openai.OpenAI(base_url=bounded.url + "/api/v1", api_key=key, max_retries=0)
    streams = [
        sdk.chat.completions.create(
            model=slow, stream=True, messages=[{"role": "user", "content": f"s{i}"}]
        )
        for i in range(MAX_IN_FLIGHT)
    ]
    with bounded.http(key) as client:
        response, elapsed = _ask(client, quick)
    _assert_retryable_503(response, "too_many_requests_in_flight", elapsed)
    for stream in streams:
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.startswith("0 1 2 ") and " 99 " in text
        bounded.wait_for_record(chunks[0].id)


def test_a_call_past_the_bound_on_connections_to_one_upstream_host_gets_503_at_once(
    one_per_host: Alicerce, upstream: Upstream
) -> None:
    """The per-host bound: the request was admitted, so it is in the request log, as a 503
    `upstream_saturated` that never reached the upstream."""
    slow, quick, key = _gateways(one_per_host, upstream)
    shed_before = _shed_count(one_per_host, "upstream_connections")
    sent_before = len(upstream.mock.received)
    with one_per_host.http(key) as client:
        with _open_stream(one_per_host.http(key), slow):
            response, elapsed = _ask(client, quick)
            _assert_retryable_503(response, "upstream_saturated", elapsed)
            assert len(upstream.mock.received) == sent_before + 1  # only the stream's
        assert _shed_count(one_per_host, "upstream_connections") == shed_before + 1
        row = one_per_host.wait_for_record(response.headers["x-request-id"])
        assert row.status_code == 503
        deadline = time.monotonic() + 10
        while one_per_host.services.http.slots.held(upstream.url.rsplit("/", 1)[0]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.02)
        response, _ = _ask(client, quick)
    assert response.status_code == 200, response.text


def test_a_worker_whose_event_loop_runs_late_sheds_until_it_catches_up(
    tmp_path: Path, upstream: Upstream
) -> None:
    """CPU starvation is overload too (alicerce/loop_lag.py): callbacks that hold the loop make
    its ticks late, tick after tick; new requests then get 503 `worker_overloaded` at once, and
    once the loop is on time again they are served."""
    alicerce = _server(tmp_path, max_event_loop_lag_ms=50)
    try:
        _, quick, key = _gateways(alicerce, upstream)
        assert alicerce.server.loop is not None
        release = threading.Event()

        async def hog() -> None:  # a worker out of CPU, in steps, as under load
            while not release.is_set():
                time.sleep(0.1)  # noqa: ASYNC251 - the point: the loop is held
                await asyncio.sleep(0)

        holding = asyncio.run_coroutine_threadsafe(hog(), alicerce.server.loop)
        try:
            lag = alicerce.app.lag
            assert lag is not None
            deadline = time.monotonic() + 10
            while not lag.overloaded and time.monotonic() < deadline:
                time.sleep(0.02)
            assert lag.overloaded
            sdk = openai.OpenAI(base_url=alicerce.url + "/api/v1", api_key=key, max_retries=0)
            with pytest.raises(openai.APIStatusError) as refused:
                sdk.chat.completions.create(
                    model=quick, messages=[{"role": "user", "content": "Hi"}]
                )
            assert refused.value.status_code == 503
            assert refused.value.code == "worker_overloaded"
            assert refused.value.response.headers["retry-after"] == "1"
            assert _shed_count(alicerce, "event_loop_lag") >= 1
        finally:
            release.set()
            holding.result(5)
        deadline = time.monotonic() + 10
        while lag.overloaded and time.monotonic() < deadline:
            time.sleep(0.02)
        with alicerce.http(key) as client:
            assert _ask(client, quick)[0].status_code == 200
    finally:
        alicerce.server.stop()


def test_the_default_bounds_hold_what_the_benchmark_measured() -> None:
    """BENCHMARKS.md ("Requests in flight"): one worker holds 1,500 requests in flight and
    2,000 streams that all complete; the defaults must not shed them, and each request holds
    one connection."""
    from alicerce.settings import Settings

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.max_requests_in_flight >= 2000
    assert settings.upstream_pool_size >= settings.max_requests_in_flight
    assert settings.upstream_max_connections_per_host >= settings.max_requests_in_flight
    assert settings.http_max_connections > settings.max_requests_in_flight


def test_serve_raises_its_open_file_limit_to_the_hard_limit() -> None:
    """Each request in flight is two descriptors: a soft limit of 256 (1,024 is common) would
    cap a worker far below its bounds while the hard limit allows them."""
    code = (
        "import resource\n"
        "from alicerce.cli.serve import raise_open_file_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "print(raise_open_file_limit(100), resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    returned, soft, hard = (int(v) for v in out.stdout.split())
    assert returned == soft
    assert soft == hard or (hard == -1 and soft >= 256)
