"""Connections that cannot exhaust the server (alicerce/connections.py), against a real
`alicerce serve` on loopback, driven with raw sockets as a hostile client would."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from tests.conftest import create_database
from tests.servers import ServerProcess

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
MAX_HEADER_BYTES = 8192
MAX_CONNECTIONS = 40
ROOT_KEY = "alc_connections_root_" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("connections")
    env = {
        "ALICERCE_DATABASE_URL": f"sqlite:///{tmp / 'connections.db'}",
        "ALICERCE_SECRET_KEY": "connections",
        "ALICERCE_ROOT_KEY": ROOT_KEY,
        "ALICERCE_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "ALICERCE_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "ALICERCE_HTTP_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
        "ALICERCE_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "ALICERCE_LOG_LEVEL": "error",
    }
    create_database(env["ALICERCE_DATABASE_URL"])
    process = ServerProcess(env).wait_ready(60)
    yield process
    process.stop()


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def _read_all(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _error(response: bytes) -> tuple[int, dict[str, object]]:
    """The status and the OpenAI error object of a raw HTTP response."""
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    error = json.loads(body)["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    return status, error


def _healthy(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200


def test_a_half_request_line_is_closed_after_the_header_timeout(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HT")
        started = time.monotonic()
        response = _read_all(sock)
        waited = time.monotonic() - started
    assert HEADER_TIMEOUT_S * 0.8 <= waited < HEADER_TIMEOUT_S + 3
    status, error = _error(response)
    assert status == 408 and error["code"] == "request_timeout"


def test_a_connection_that_sends_nothing_is_closed_too(server: ServerProcess) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        _read_all(sock)
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_headers_trickled_slowly_are_timed_from_the_connection(server: ServerProcess) -> None:
    """A slowloris that keeps sending a byte of header now and then is still cut off."""
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        for _ in range(int(HEADER_TIMEOUT_S * 10) + 30):
            try:
                sock.sendall(b"X-a: b\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
        assert closed, "the server kept a slowloris connection open"
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_an_oversized_header_is_refused_with_431(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-big: " + b"a" * (MAX_HEADER_BYTES * 2))
        status, error = _error(_read_all(sock))
    assert status == 431 and error["code"] == "headers_too_large"
    _healthy(server)


def test_an_unterminated_header_is_refused_as_it_arrives(server: ServerProcess) -> None:
    """5 MB of one header, sent in pieces: refused once past the cap, not buffered."""
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-big: ")
        sent = 0
        try:
            while sent < 5 * 1024 * 1024:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = _read_all(sock)
    assert sent < 1024 * 1024 or response.startswith(b"HTTP/1.1 431")


def test_headers_within_the_cap_are_served(server: ServerProcess) -> None:
    headers = {"x-fill": "a" * (MAX_HEADER_BYTES // 2)}
    assert httpx.get(server.url + "/healthz", headers=headers).status_code == 200


def test_a_body_read_with_its_headers_is_not_counted_as_header(server: ServerProcess) -> None:
    """The cap is counted per read: a read that holds small headers and a body larger than the
    cap is served (here a 401: no key), and headers past the cap in the same read are not."""
    body = json.dumps({"model": "x", "fill": "a" * (MAX_HEADER_BYTES * 3)}).encode()

    def send(fill: int) -> bytes:
        lines = [b"POST /api/v1/chat/completions HTTP/1.1", b"Host: x", b"Connection: close",
                 b"Content-Type: application/json", b"Content-Length: %d" % len(body),
                 b"X-fill: " + b"a" * fill]  # fmt: skip
        with _connect(server) as sock:
            sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            return _read_all(sock)

    assert _error(send(100))[0] == 401
    assert _error(send(MAX_HEADER_BYTES + 100))[0] == 431


def test_connections_past_the_bound_are_refused_at_once(server: ServerProcess) -> None:
    held = [_connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # incomplete: held open
        time.sleep(0.2)  # the server has accepted them all
        with _connect(server) as extra:
            started = time.monotonic()
            status, error = _error(_read_all(extra))
            assert time.monotonic() - started < 0.5 * HEADER_TIMEOUT_S
        assert status == 503 and error["code"] == "too_many_connections"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    _healthy(server)  # an ordinary client is served once the crowd has gone
    metrics = httpx.get(server.url + "/metrics").text
    assert 'alicerce_connections_refused_total{reason="too_many_connections"}' in metrics


def test_a_body_that_stalls_is_timed_out(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + ROOT_KEY.encode() + b"\r\n"
            b'Content-Length: 1000\r\n\r\n{"name": '
        )
        started = time.monotonic()
        response = _read_all(sock)
        waited = time.monotonic() - started
    assert BODY_TIMEOUT_S * 0.8 <= waited < BODY_TIMEOUT_S + 3
    status, error = _error(response)
    assert status == 408 and error["code"] == "request_timeout"


def test_a_body_that_keeps_coming_is_not_timed_out(server: ServerProcess) -> None:
    """The body timeout bounds each pause, not the whole upload."""
    body = b'{"name": "' + b"a" * 30 + b'"}'
    with _connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + ROOT_KEY.encode() + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
        )
        for i in range(0, len(body), 4):  # longer in all than the timeout, no pause near it
            sock.sendall(body[i : i + 4])
            time.sleep(BODY_TIMEOUT_S / 6)
        response = _read_all(sock)
    assert response.startswith(b"HTTP/1.1 201"), response  # the account was made


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # TLS spoken to plain HTTP
        b"GET /\x00 HTTP/1.1\r\n\r\n",
    ],
    ids=["two-content-lengths", "bad-chunk-size", "header-without-colon", "tls", "nul-in-path"],
)
def test_malformed_framing_gets_an_openai_error(
    server: ServerProcess, request_bytes: bytes
) -> None:
    with _connect(server) as sock:
        sock.sendall(request_bytes)
        status, error = _error(_read_all(sock))
    assert status == 400 and error["code"] == "malformed_http"
    assert error["type"] == "invalid_request_error"


def test_keep_alive_requests_each_get_the_header_timeout(server: ServerProcess) -> None:
    """The header timer is re-armed for the next request on a kept-alive connection."""
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        status, error = _error(_read_all(sock))
    assert status == 408 and error["code"] == "request_timeout"


def test_the_limits_are_settings() -> None:
    from alicerce.connections import ConnectionLimits
    from alicerce.settings import Settings

    limits = ConnectionLimits.from_settings(Settings(http_max_connections=7))
    assert limits.max_connections == 7 and limits.header_timeout_s == 10.0


def test_a_client_waiting_for_100_continue_is_not_timed_out(server: ServerProcess) -> None:
    """`Expect: 100-continue`: the client sends its body only once asked; the wait before that
    is the server's, not a pause of the client's."""
    body = b'{"name": "continued"}'
    with _connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + ROOT_KEY.encode() + b"\r\nExpect: 100-continue\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
        )
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        assert _read_all(sock).startswith(b"HTTP/1.1 201")
