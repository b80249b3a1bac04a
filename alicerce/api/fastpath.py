"""The hot path's own door: inference routes go straight to their handlers.

FastAPI's middleware stack and router cost more per request than the whole of Alicerce's own
work on a cached gateway (measured with py-spy: about a third of the CPU of a proxied chat
completion). The inference handlers take a plain `Request` and return a `Response`, so they need
none of it; this wrapper dispatches them by exact method and path and hands everything else
(admin API, docs, lifespan) to the FastAPI app, where the same handlers are also registered so
that they appear in the OpenAPI document.

It is also where a worker sheds load: at most `max_in_flight` inference requests at once
(ALICERCE_MAX_REQUESTS_IN_FLIGHT; a stream counts until its last byte). One more is answered 503
`too_many_requests_in_flight` with `retry-after` at once, before its body is read or its key
looked up, and counted in `alicerce_requests_shed_total{reason="in_flight"}`: past what a
worker can hold, an unbounded queue only makes every request late (Envoy's overload manager
sheds the same way). A worker out of CPU sheds the same way, with `worker_overloaded`
(`reason="event_loop_lag"`), while its event loop runs late (`alicerce/loop_lag.py`). A shed
request was never admitted, so it is in no ledger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from alicerce.api.errors import error_response
from alicerce.api.http import EventStream
from alicerce.errors import AlicerceError, Overloaded, internal_error
from alicerce.loop_lag import LoopLag

Handler = Callable[[Request], Awaitable[Response]]
log = logging.getLogger("alicerce.api")


class FastPath:
    def __init__(
        self,
        app: FastAPI,
        routes: dict[tuple[str, str], Handler],
        *,
        max_in_flight: int | None = None,
    ) -> None:
        self.app = app
        self._routes = routes
        self.max_in_flight = max_in_flight
        self.in_flight = 0  # inference requests begun here and not yet answered to the end
        self.lag: LoopLag | None = None  # set while serving (api/app.py) when a bound is set

    def __getattr__(self, name: str) -> Any:  # `state`, `openapi`, ... are the app's
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (
            self._routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if handler is None:
            await self.app(scope, receive, send)
            return
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
            await self._shed(scope, receive, send)
            return
        if self.lag is not None and self.lag.overloaded:
            await self._shed_late(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self._handle(handler, scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _shed(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = Overloaded(
            f"This server holds its maximum of {self.max_in_flight} requests in flight "
            "(ALICERCE_MAX_REQUESTS_IN_FLIGHT, per worker); retry shortly.",
            code="too_many_requests_in_flight",
            retry_after=1,
        )
        await self._refuse(error, "in_flight", scope, receive, send)

    async def _shed_late(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.lag is not None
        error = Overloaded(
            f"This server is out of CPU: its event loop runs {self.lag.lag_s * 1000:.0f} ms late "
            f"(ALICERCE_MAX_EVENT_LOOP_LAG_MS is {self.lag.bound_s * 1000:g}); retry shortly.",
            code="worker_overloaded",
            retry_after=1,
        )
        await self._refuse(error, "event_loop_lag", scope, receive, send)

    async def _refuse(
        self, error: Overloaded, reason: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        services = getattr(self.app.state, "services", None)
        if services is not None:
            services.metrics.shed(reason)
        await error_response(error)(scope, receive, send)

    async def _handle(self, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except AlicerceError as exc:
            response = error_response(exc)
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            response = error_response(internal_error())
        if isinstance(response, EventStream):
            await stream(response, receive, send)
        else:
            await response(scope, receive, send)


async def stream(response: EventStream, receive: Receive, send: Send) -> None:
    """Sends a stream, one write per item of the pipeline's stream, stopping it as soon as the
    client goes away.

    What Starlette does for servers of ASGI spec 2.3 (uvicorn's), with a plain asyncio task
    instead of an anyio task group, whose cancellation cost about a sixth of the event loop
    under streaming load (py-spy, bench/gateway_bench.py), and each item encoded here rather
    than by one more async generator in between."""
    items, encode = response.items, response.encode
    streaming = asyncio.current_task()
    assert streaming is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        streaming.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        await send(
            {"type": "http.response.start", "status": response.status_code,
             "headers": response.raw_headers}
        )  # fmt: skip
        async for item in items:
            await send({"type": "http.response.body", "body": encode(item), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not gone:
            raise
    finally:
        watcher.cancel()
        await items.aclose()  # type: ignore[attr-defined]  # the stream records itself
