"""Real HTTP servers on loopback, run in background threads for the tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

T = TypeVar("T")


class ServerThread:
    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", loop="asyncio"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.loop = self.server.servers[0].get_loop()
        return self

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Runs `coroutine` on the server's event loop, from the test's thread, and returns its
        result: the way to reach the app's parts, which belong to that loop."""
        assert self.loop is not None, "the server is not running"
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class ServerProcess:
    """`alicerce serve` as a real process (for several processes sharing one store). Its
    output is read when it stops, or goes to `log` as it comes: a server that logs much (a
    fuzzer's thousands of requests) would fill a pipe nobody reads and stall."""

    def __init__(self, env: dict[str, str], *args: str, log: Path | None = None) -> None:
        import os
        import socket
        import subprocess
        import sys

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.log = log
        sink = log.open("wb") if log is not None else subprocess.PIPE
        self.process = subprocess.Popen(
            [sys.executable, "-m", "alicerce", "serve", "--port", str(self.port), *args],
            env=os.environ | env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        if log is not None:
            sink.close()  # type: ignore[union-attr]  # the child holds its own copy
        self._output = ""

    @property
    def output(self) -> str:
        if self.log is not None:
            return self.log.read_text(errors="replace") if self.log.exists() else ""
        return self._output

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> ServerProcess:
        import httpx2 as httpx

        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/healthz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"alicerce serve did not start:\n{self.output}")
            time.sleep(0.05)

    def stop(self) -> int:
        import signal
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out = self.process.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            self.process.kill()
            out = self.process.communicate()[0]
        if out is not None:
            self._output = out.decode()
        return self.process.returncode
