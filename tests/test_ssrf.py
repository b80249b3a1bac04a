"""SSRF at connection time: user-supplied URLs (gateway endpoints, embeddings endpoints,
server-side functions) never reach an internal address unless the operator allows it.

The check is on the address connected to, after DNS (`upstreams.http.guarded_socket`): a
resolver seam answers a public name with loopback, as a rebinding DNS server would, and the
connection is refused before it is made; every numeric spelling of an internal address is
refused too; redirects are not followed at all. Against the mock upstream, a real HTTP server
on loopback, with aiohttp's real sessions."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from alicerce.api.app import create_app
from alicerce.embeddings import OpenAIEmbedder
from alicerce.errors import AlicerceError, InvalidRequest, UpstreamError
from alicerce.gateways import Function
from alicerce.inference.functions import Toolbox, ToolCall, WebhookFunction
from alicerce.security import check_upstream_url, is_private_address
from alicerce.upstreams.http import HttpClients, OpenAIHttpUpstream
from tests import conftest
from tests.conftest import ROOT_KEY, Upstream
from tests.servers import ServerThread

PUBLIC_NAME = "api.public-upstream.example"  # answered with 127.0.0.1 by the seam below
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}

INTERNAL_SPELLINGS = [
    "127.0.0.1",
    "2130706433",  # 127.0.0.1 as one number
    "0x7f.1",
    "0x7f000001",
    "0177.0.0.1",  # octal
    "127.1",
    "127.0.0.1.",  # a trailing dot
    "0",  # 0.0.0.0
    "10.0.0.5",
    "169.254.169.254",  # cloud metadata
    "[::1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
    "[::ffff:7f00:1]",
    "[::ffff:a9fe:a9fe]",  # 169.254.169.254, mapped
    "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
    "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    "[fe80::1%25eth0]",
    "[::]",
]


class RebindingResolver(AbstractResolver):
    """Answers `PUBLIC_NAME` with loopback (as DNS rebinding would); other names as usual."""

    def __init__(self) -> None:
        self._system = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host == PUBLIC_NAME:
            return [
                ResolveResult(
                    hostname=host,
                    host="127.0.0.1",
                    port=port,
                    family=socket.AF_INET,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            ]
        return await self._system.resolve(host, port, family)

    async def close(self) -> None:
        await self._system.close()


async def _with_clients(allow_private: bool, use: Callable[[HttpClients], Awaitable[Any]]) -> Any:
    clients = HttpClients(
        allow_private=allow_private,
        pool_size=4,
        connect_timeout_s=2,
        read_timeout_s=5,
        resolver=RebindingResolver(),
    )
    await clients.start()
    try:
        return await use(clients)
    finally:
        await clients.close()


def _upstream_at(clients: HttpClients, base_url: str) -> OpenAIHttpUpstream:
    assert clients.guarded is not None
    return OpenAIHttpUpstream(
        clients.guarded, base_url=base_url, model="echo", api_key=None, headers=None, label="'m'"
    )


def _failure(*, allow_private: bool, base_url: str, marker: str, stream: bool) -> AlicerceError:
    """The error an upstream at `base_url` fails with, asked once (streamed or not)."""

    async def use(clients: HttpClients) -> AlicerceError:
        upstream_ = _upstream_at(clients, base_url)
        with pytest.raises(AlicerceError) as caught:
            if stream:
                async for _ in upstream_.stream(_ask(marker)):
                    pass
            else:
                await upstream_.complete(_ask(marker))
        return caught.value

    return asyncio.run(_with_clients(allow_private, use))


def _rebound(upstream: Upstream) -> str:
    """The mock upstream's base URL under the public name the seam resolves to loopback."""
    return upstream.url.replace("127.0.0.1", PUBLIC_NAME)


def _ask(marker: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": marker}]}


def _received(upstream: Upstream, marker: str) -> bool:
    return any(marker in str(body) for body in upstream.mock.received)


# -- at creation: what the URL spells -------------------------------------------------------


@pytest.mark.parametrize("host", INTERNAL_SPELLINGS)
def test_every_spelling_of_an_internal_address_is_refused_without_dns(host: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_upstream_url(
            f"http://{host}:8000/v1", allow_private=False, param="endpoint.base_url", resolve=False
        )
    assert caught.value.code == "private_upstream" and caught.value.param == "endpoint.base_url"


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_public(address: str) -> None:
    assert not is_private_address(address)
    host = f"[{address}]" if ":" in address else address
    assert check_upstream_url(f"https://{host}/v1", allow_private=False, param="p", resolve=False)


def test_a_url_with_an_impossible_port_is_a_400_not_a_500() -> None:
    with pytest.raises(InvalidRequest):
        check_upstream_url("http://example.com:99999/v1", allow_private=False, param="p")


# -- at connection time: the address connected to -------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_public_name_that_resolves_to_loopback_is_refused(
    upstream: Upstream, stream: bool
) -> None:
    marker = "rebound-" + uuid.uuid4().hex

    error = _failure(allow_private=False, base_url=_rebound(upstream), marker=marker, stream=stream)
    assert isinstance(error, UpstreamError) and error.status == 502
    assert error.code == "private_upstream" and "private address" in error.message
    assert not _received(upstream, marker)


def test_the_same_name_connects_when_private_upstreams_are_allowed(upstream: Upstream) -> None:
    """The seam really leads to the mock upstream: the refusal above is the guard's."""

    async def use(clients: HttpClients) -> Any:
        return await _upstream_at(clients, _rebound(upstream)).complete(_ask("allowed"))

    completion = asyncio.run(_with_clients(True, use))
    assert completion["choices"]


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "2130706433", "0x7f.1", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]"]
)
def test_every_spelling_is_refused_at_connection_time_too(upstream: Upstream, host: str) -> None:
    """A stored URL that spells loopback (saved while private upstreams were allowed, say) is
    refused when connecting, whatever the spelling: aiohttp skips the resolver for IP
    literals, the socket factory does not. (aiohttp refuses some legacy spellings itself, "not
    a canonical IPv4 address", before any connection.)"""
    port = upstream.url.split(":")[2].split("/")[0]
    marker = "spelled-" + uuid.uuid4().hex

    async def use(clients: HttpClients) -> AlicerceError:
        upstream_ = _upstream_at(clients, f"http://{host}:{port}/v1")
        with pytest.raises(AlicerceError) as caught:
            await upstream_.complete(_ask(marker))
        return caught.value

    error = asyncio.run(_with_clients(False, use))
    assert isinstance(error, UpstreamError)
    assert error.code == "private_upstream" or "not a canonical" in error.message, error.message
    assert not _received(upstream, marker)


def test_an_embeddings_endpoint_that_resolves_to_loopback_is_refused(upstream: Upstream) -> None:
    async def use(clients: HttpClients) -> AlicerceError:
        assert clients.guarded is not None
        embedder = OpenAIEmbedder(
            clients.guarded, base_url=_rebound(upstream), model="e", dimensions=4
        )
        with pytest.raises(AlicerceError) as caught:
            await embedder.embed(["a"], kind="query")
        return caught.value

    error = asyncio.run(_with_clients(False, use))
    assert error.status == 502 and error.code == "private_upstream"


def test_a_function_that_resolves_to_loopback_is_not_called(upstream: Upstream) -> None:
    url = _rebound(upstream).removesuffix("/v1") + "/functions/echo"
    before = len(upstream.mock.function_calls)

    async def use(clients: HttpClients) -> str | None:
        function = Function(name="lookup", parameters=CITY, url=url)
        toolbox = Toolbox([WebhookFunction(function, clients)])
        return (await toolbox.run(ToolCall("c1", "lookup", '{"city": "Lagos"}'))).error

    error = asyncio.run(_with_clients(False, use))
    assert error is not None and "private address" in error
    assert len(upstream.mock.function_calls) == before


# -- redirects are not followed -----------------------------------------------------------


@pytest.fixture(scope="module")
def redirector(upstream: Upstream) -> Iterator[str]:
    """A server that answers every POST with a 307 to the mock upstream (on loopback)."""
    target = upstream.url.removesuffix("/v1")

    async def redirect(request: Request) -> Response:
        return RedirectResponse(target + request.url.path, status_code=307)

    app = Starlette(routes=[Route("/{path:path}", redirect, methods=["POST"])])
    server = ServerThread(app).start()
    yield server.url
    server.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_a_redirect_is_not_followed(upstream: Upstream, redirector: str, stream: bool) -> None:
    """Even with private upstreams allowed (the redirector itself is on loopback), a redirect
    is answered as the upstream's error, never followed to where it points."""
    marker = "redirected-" + uuid.uuid4().hex

    error = _failure(allow_private=True, base_url=redirector + "/v1", marker=marker, stream=stream)
    assert error.status == 502 and "redirect (307)" in error.message
    assert not _received(upstream, marker)


def test_a_function_redirect_is_not_followed(upstream: Upstream, redirector: str) -> None:
    before = len(upstream.mock.function_calls)

    async def use(clients: HttpClients) -> str | None:
        function = Function(name="lookup", parameters=CITY, url=redirector + "/functions/echo")
        toolbox = Toolbox([WebhookFunction(function, clients)])
        return (await toolbox.run(ToolCall("c1", "lookup", '{"city": "Lagos"}'))).error

    error = asyncio.run(_with_clients(True, use))
    assert error is not None and "redirect" in error
    assert len(upstream.mock.function_calls) == before


def test_an_embeddings_redirect_is_not_followed(upstream: Upstream, redirector: str) -> None:
    async def use(clients: HttpClients) -> AlicerceError:
        assert clients.guarded is not None
        embedder = OpenAIEmbedder(
            clients.guarded, base_url=redirector + "/v1", model="e", dimensions=4
        )
        with pytest.raises(AlicerceError) as caught:
            await embedder.embed(["a"], kind="query")
        return caught.value

    error = asyncio.run(_with_clients(True, use))
    assert error.status == 502 and "redirect" in error.message


# -- through the API ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server that does not allow private upstreams (the suite's shared one does)."""
    tmp: Path = tmp_path_factory.mktemp("ssrf")
    server = ServerThread(
        create_app(conftest.test_settings(tmp, allow_private_upstreams=False))
    ).start()
    yield server.url
    server.stop()


def _admin(base: str) -> openai.OpenAI:
    import httpx2 as httpx

    account = httpx.post(
        base + "/api/v1/accounts",
        json={"name": "ssrf-" + uuid.uuid4().hex[:6]},
        headers={"authorization": f"Bearer {ROOT_KEY}"},
    )
    assert account.status_code == 201, account.text
    return openai.OpenAI(base_url=base + "/api/v1", api_key=account.json()["admin_key"])


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "localhost"])
def test_a_gateway_on_an_internal_address_is_refused_when_saved(
    guarded_server: str, host: str
) -> None:
    client = _admin(guarded_server)
    endpoint = {"base_url": f"http://{host}:9/v1", "model": "m"}
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/gateways", body={"name": "g", "endpoint": endpoint}, cast_to=dict)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "private_upstream" and error["param"] == "endpoint.base_url"
    function = {"name": "f", "parameters": CITY, "url": f"http://{host}:9/hook"}
    with pytest.raises(openai.BadRequestError) as caught:
        client.post(
            "/gateways", body={"name": "g", "model": "@local/smollm2-135m",
                               "functions": [function]}, cast_to=dict,
        )  # fmt: skip
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == "functions.0.url"


def test_a_saved_name_that_now_resolves_to_loopback_gets_502_at_request_time(
    tmp_path: Path, upstream: Upstream
) -> None:
    """A gateway saved while private upstreams were allowed (or whose name resolved publicly
    then) is refused at the connection, with a clear 502, once they are not: the name is
    resolved again for each new connection."""
    allowing = ServerThread(create_app(conftest.test_settings(tmp_path))).start()
    try:
        client = _admin(allowing.url)
        base_url = upstream.url.replace("127.0.0.1", "localhost")  # a name, not a literal
        gateway = client.post(
            "/gateways",
            body={"name": "g", "endpoint": {"base_url": base_url, "model": "echo"}},
            cast_to=dict,
        )
        key = client.post("/keys", body={"name": "k", "role": "inference"}, cast_to=dict)["key"]
    finally:
        allowing.stop()
    settings = conftest.test_settings(tmp_path, allow_private_upstreams=False)
    refusing = ServerThread(create_app(settings)).start()
    marker = "request-time-" + uuid.uuid4().hex
    try:
        inference = openai.OpenAI(base_url=refusing.url + "/api/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.APIStatusError) as caught:
            inference.chat.completions.create(
                model=gateway["slug"], messages=[{"role": "user", "content": marker}]
            )
    finally:
        refusing.stop()
    assert caught.value.status_code == 502
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "private_upstream"
    assert "private address" in error["message"]
    assert not _received(upstream, marker)
