"""The web console: static files from `alicerce/console/`, served at `/console/` by the same
server, with a Content-Security-Policy that allows no inline script and no other origin.

The console is a client of the public REST API and nothing else: it holds no server-side state
and has no routes of its own beyond its files (`docs/console.md`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

# Scripts, styles and requests from this origin only; no inline script or style, no eval,
# no frames, no plugins. Images may be data: URLs (the favicon).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    # files are not fingerprinted: a browser revalidates (ETag) so an upgrade shows at once
    (b"cache-control", b"no-cache"),
]


class ConsoleFiles:
    """`StaticFiles` with the console's security headers on every answer, gzipped for
    browsers that accept it (the scripts are ~180 KB as written, ~60 KB gzipped)."""

    def __init__(self) -> None:
        self._files = GZipMiddleware(
            StaticFiles(directory=CONSOLE_DIR, html=True), minimum_size=1024
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self._files(scope, receive, with_headers)


router = APIRouter(include_in_schema=False)


@router.get("/")
@router.get("/console")
async def to_console() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)
