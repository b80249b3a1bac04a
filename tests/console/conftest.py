"""The console in a real browser: Debian's Chromium driven by Playwright, against a real
`alicerce serve` process whose catalog models are the mock upstream (real HTTP on loopback).

Every page a test visits is checked with axe-core (from the npm registry, `package.json` here)
for serious and critical violations, and its screenshot is written to `screenshots/` (ignored
by git) for people to look at. Without Chromium or axe-core these tests fail, never skip: CI
installs both (`.ci/run`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.conftest import ROOT_KEY, Upstream, write_catalog
from tests.servers import ServerProcess

HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE / "screenshots"
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"


def chromium_path() -> str:
    found = os.environ.get("ALICERCE_TEST_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "The console tests need Debian's Chromium (apt-get install chromium), or its path "
            "in ALICERCE_TEST_CHROMIUM; .ci/run installs it."
        )
    return found


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's script, installed from the npm registry by its lock file when it is not
    there yet (`.ci/run` installs it first)."""
    if not AXE.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("The console tests need npm (for axe-core); .ci/run installs it first.")
        subprocess.run(
            [npm, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund", "--loglevel=error"],
            check=True,
            timeout=300,
        )
    return AXE.read_text()


@dataclass
class ConsoleServer:
    """`alicerce serve` in its own process, its output in a file (a pipe nobody reads could
    fill and stall it)."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, key: str, account: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"}
        if account:
            headers["x-alicerce-account"] = account
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=60)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def console_server(
    tmp_path_factory: pytest.TempPathFactory, upstream: Upstream
) -> Iterator[ConsoleServer]:
    directory = tmp_path_factory.mktemp("console")
    catalog = write_catalog(directory, upstream)
    env = {
        "ALICERCE_DATABASE_URL": f"sqlite:///{directory / 'alicerce.db'}",
        "ALICERCE_CREATE_DATABASE": "true",
        "ALICERCE_ROOT_KEY": ROOT_KEY,
        "ALICERCE_SECRET_KEY": "console-test-secret",
        "ALICERCE_CONFIG": str(catalog),
        "ALICERCE_ALLOW_PRIVATE_UPSTREAMS": "true",
        "ALICERCE_REQUEST_LOG_FLUSH_INTERVAL_S": "0.05",
        "ALICERCE_KNOWLEDGE_INDEX_DIR": str(directory / "vectors"),
    }
    log = directory / "serve.log"
    process = ServerProcess(env, log=log).wait_ready(60)
    yield ConsoleServer(process.url, process.process, log)
    process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not for the session: Playwright's sync API keeps an
    event loop running in this thread while it lives, where other tests call asyncio.run."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@dataclass
class ConsoleAccount:
    id: str
    name: str
    admin_key: str
    server: ConsoleServer

    def api(self) -> httpx.Client:
        return self.server.api(self.admin_key)


@pytest.fixture
def console_account(console_server: ConsoleServer) -> ConsoleAccount:
    """A fresh account for one test, made through the API with the root key."""
    name = "team-" + uuid.uuid4().hex[:6]
    with console_server.api(ROOT_KEY) as client:
        response = client.post("/accounts", json={"name": name})
    assert response.status_code == 201, response.text
    body = response.json()
    return ConsoleAccount(body["id"], name, body["admin_key"], console_server)


@dataclass
class Console:
    """One browser tab on the console, with what a test needs: log in, go to a page, check
    it (axe-core, screenshot), and every error the page's scripts raised."""

    page: Any
    server: ConsoleServer
    axe: str  # axe-core's script
    errors: list[str] = field(default_factory=list)

    def open(self, route: str = "") -> Any:
        self.page.goto(f"{self.server.url}/console/{'#/' + route if route else ''}")
        return self.page

    def log_in(self, key: str, route: str = "") -> Any:
        self.open(route)
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Log in").click()
        self.page.get_by_role("button", name="Log out").wait_for()
        return self.page

    def go(self, route: str) -> Any:
        """Shows the page at `#/route` and waits until it has loaded."""
        self.page.evaluate("route => { location.hash = '#/' + route }", route)
        self.page.locator("main#main .loading").wait_for(state="detached")
        return self.page

    def check(self, name: str, *, dark: bool = False) -> None:
        """No serious or critical axe-core violation on the page as it is now; its
        screenshot (light, and dark when asked) in `screenshots/<name>.png`."""
        self.page.evaluate(self.axe)  # evaluated by the driver, not blocked by the CSP
        result = self.page.evaluate(
            "() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations"
            ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
            ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))"
        )
        SCREENSHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        if dark:
            self.page.emulate_media(color_scheme="dark")
            dark_result = self.page.evaluate(
                "() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations"
                ".filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => v.id))"
            )
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}-dark.png"), full_page=True)
            self.page.emulate_media(color_scheme="light")
            assert dark_result == [], f"{name} (dark): {dark_result}"
        assert result == [], f"{name}: accessibility violations: {result}"

    def fits(self, width: int = 390) -> None:
        """Nothing on the page is wider than a phone's screen."""
        overflow = self.page.evaluate("() => document.documentElement.scrollWidth")
        assert overflow <= width, f"the page is {overflow} px wide at a {width}-px screen"


_IGNORED = re.compile(r"Failed to load resource: the server responded with a status of (4\d\d)")


@pytest.fixture
def console(browser: Any, console_server: ConsoleServer, axe_source: str) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme="light")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    tab = Console(page, console_server, axe_source)
    page.on("pageerror", lambda error: tab.errors.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            tab.errors.append(f"console {message.type}: {message.text}")
            if message.type == "error" and not _IGNORED.search(message.text)
            else None
        ),
    )
    yield tab
    context.close()
    assert tab.errors == [], "the console's scripts reported errors:\n" + "\n".join(tab.errors)
