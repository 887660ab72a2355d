"""Fixtures of the browser tests: a live `depictiod serve`, Debian's Chromium driven by Playwright, screenshots.

The tests need /usr/bin/chromium (Debian's `chromium` package; `make browser` installs it). Without it
they skip, unless DEPICTIOD_REQUIRE_BROWSER=1 (set by .ci/run), which turns the skip into a failure.
Playwright drives that Chromium through `executable_path`; its own browser downloads are never used.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, Response, Route, expect, sync_playwright

from tests.e2e.test_live_server import API, PASSWORD, LiveServer, _free_port, _stop_server, _wait_until_healthy
from tests.examples import REPOSITORY, copy_bundled_examples, write_settings

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_PACKAGES = "chromium chromium-driver"
REQUIRE_BROWSER_VARIABLE = "DEPICTIOD_REQUIRE_BROWSER"
SCREENSHOTS = REPOSITORY / "test-artifacts" / "screenshots"
ADMIN_EMAIL = "admin@example.org"
# Deadline of every wait in the browser (navigation, locators, expect), in milliseconds. Generous
# because two cores are shared by the service, Chromium and other tests.
WAIT_MS = 20_000
# Deadline for a change on disk to reach a page: watcher, settle time, rescan and the page's refresh.
INGEST_WAIT_MS = 45_000
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Settings of the service under test. File events and a short settle time bring a new file in within
# seconds, and self-registration creates the viewer account. Frequent keep-alives end the event streams
# of closed browsers quickly, so that they do not count against the per-user stream limit.
SERVER_ENVIRONMENT = {
    "DEPICTIO_ADMIN_PASSWORD": PASSWORD,
    "DEPICTIO_INGEST_WATCH_MODE": "events",
    "DEPICTIO_INGEST_SETTLE_SECONDS": "0.5",
    "DEPICTIO_AUTH_ALLOW_REGISTRATION": "true",
    "DEPICTIO_SERVER_EVENT_KEEPALIVE_SECONDS": "1",
}
PENGUINS_PROJECT_ID = "6a0001000000000000000001"
IRIS_PROJECT_ID = "6a0002000000000000000001"
LOOPBACK_HOSTS = {"127.0.0.1"}


class WebServer(LiveServer):
    """A live `depictiod serve` over a copy of the bundled examples under `root`."""

    def __init__(self, process: subprocess.Popen[str], base_url: str, log: Path, root: Path) -> None:
        super().__init__(process, base_url, log)
        self.root = root

    @property
    def penguins_data(self) -> Path:
        return self.root / "bundled" / "penguins" / "data"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def api_headers(self, email: str = ADMIN_EMAIL, password: str = PASSWORD) -> dict[str, str]:
        """Sign in over the API and return the bearer header."""
        response = httpx.post(self.url(f"{API}/auth/login"), data={"username": email, "password": password}, timeout=10)
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def api_get(self, path: str, **params: Any) -> Any:
        """GET an API route as the administrator and return the decoded JSON."""
        response = httpx.get(self.url(f"{API}{path}"), params=params, headers=self.api_headers(), timeout=10)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def register(self, email: str, password: str) -> None:
        """Create a user who is not an administrator through `POST /auth/register`."""
        response = httpx.post(self.url(f"{API}/auth/register"), json={"email": email, "password": password}, timeout=10)
        assert response.status_code == 200, response.text


@contextmanager
def serving(root: Path) -> Iterator[WebServer]:
    """Run `depictiod serve` on a free loopback port over a copy of the bundled examples.

    The copy of the iris project is made private (`is_public: false`), so only the administrator
    may read it. Penguins stays public.
    """
    projects = copy_bundled_examples(root)
    iris = root / "bundled" / "iris" / "project.yaml"
    text = iris.read_text(encoding="utf-8")
    assert "is_public: true" in text, f"{iris} no longer contains 'is_public: true'; update this fixture"
    iris.write_text(text.replace("is_public: true", "is_public: false"), encoding="utf-8")

    port = _free_port()
    settings = write_settings(root, projects, port=port)
    log = root / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "depictiod", "serve", "--config", str(settings)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **SERVER_ENVIRONMENT},
            text=True,
        )
    server = WebServer(process, f"http://127.0.0.1:{port}", log, root)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        _stop_server(server)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """A service shared by the tests of a module that leave its files alone."""
    with serving(tmp_path_factory.mktemp("web")) as live:
        yield live


@pytest.fixture
def fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """A service of the test's own, for a test that changes the workflow files."""
    with serving(tmp_path_factory.mktemp("web-fresh")) as live:
        yield live


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = (
        f"{CHROMIUM} is missing: install Debian's packages {BROWSER_PACKAGES} "
        f"(`make browser`, or `apt-get install -y --no-install-recommends {BROWSER_PACKAGES}`)"
    )
    if os.environ.get(REQUIRE_BROWSER_VARIABLE) == "1":
        pytest.fail(f"{message}; {REQUIRE_BROWSER_VARIABLE}=1 makes this a failure rather than a skip")
    pytest.skip(message)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    _require_chromium()
    with sync_playwright() as driver:
        yield driver


class Screenshots:
    """The screenshots of one test, saved as <test>-<number>-<label>.png in SCREENSHOTS."""

    def __init__(self, test_name: str) -> None:
        self.prefix = re.sub(r"[^\w.]", "_", test_name)
        self.saved: list[Path] = []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # Images of an earlier run of the same test would mix with this run's.
        for stale in SCREENSHOTS.glob(f"{self.prefix}-*.png"):
            stale.unlink()

    def save(self, page: Page, label: str) -> Path:
        path = SCREENSHOTS / f"{self.prefix}-{len(self.saved) + 1:02d}-{label}.png"
        page.screenshot(path=str(path), full_page=True, timeout=WAIT_MS)
        self.saved.append(path)
        return path


class Browsing:
    """One Chromium profile of one test: its pages, screenshots, blocked requests and script errors."""

    def __init__(self, context: BrowserContext, server: WebServer, screenshots: Screenshots) -> None:
        self.context = context
        self.server = server
        self.screenshots = screenshots
        self.blocked: list[str] = []
        self.page_errors: list[str] = []
        context.set_default_timeout(WAIT_MS)
        context.set_default_navigation_timeout(WAIT_MS)
        # Only the service on loopback may be reached; any other request fails in the browser.
        context.route("**/*", self._route)
        context.on("page", self._watch)
        for page in context.pages:
            self._watch(page)
        self.page = context.pages[0] if context.pages else context.new_page()

    def _route(self, route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK_HOSTS or url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def _watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.page_errors.append(f"{page.url}: {error}"))

    def shot(self, label: str, page: Page | None = None) -> Path:
        """Save a full-page PNG of `page` (default: the main page)."""
        return self.screenshots.save(page or self.page, label)

    def goto(self, path: str, label: str, status: int = 200) -> Response:
        """Open `path` of the service, check the final status, and save a screenshot named `label`."""
        response = self.page.goto(self.server.url(path), wait_until="load", timeout=WAIT_MS)
        assert response is not None, f"no response for {path}"
        self.shot(label)
        assert response.status == status, f"GET {path} ended at {response.url} with {response.status}"
        return response

    def sign_in(self, email: str = ADMIN_EMAIL, password: str = PASSWORD) -> None:
        """Sign in through the form of /login and wait for the page it leads to."""
        self.goto("/login", "login")
        self.fill_login_form(email, password)
        with self.page.expect_navigation(timeout=WAIT_MS):
            self.page.click("#sign-in", timeout=WAIT_MS)
        expect(self.page.locator("#sign-out")).to_have_count(1, timeout=WAIT_MS)
        self.shot("signed-in")

    def fill_login_form(self, email: str, password: str) -> None:
        form = self.page.locator("#login-form")
        form.locator('input[name="email"]').fill(email, timeout=WAIT_MS)
        form.locator('input[name="password"]').fill(password, timeout=WAIT_MS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Store each phase's report on the test item, so that fixtures know whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


BrowseFactory = Callable[..., Browsing]


@pytest.fixture
def browse(playwright: Playwright, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrowseFactory]:
    """Return a function that starts Chromium with a new profile under tmp_path and returns its Browsing.

    Its keyword arguments go to Playwright's `launch_persistent_context` (viewport,
    java_script_enabled, ...); `server` picks the service (default: the module's shared one).
    Teardown saves a screenshot of every open page when the test failed, closes the browsers, and
    fails the test if a page requested anything but the service or raised a script error.
    """
    screenshots = Screenshots(request.node.name)
    opened: list[Browsing] = []

    def start(server: WebServer | None = None, **options: Any) -> Browsing:
        live = server if server is not None else request.getfixturevalue("server")
        profile = tmp_path / f"profile-{len(opened) + 1}"
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            timeout=WAIT_MS,
            **options,
        )
        browsing = Browsing(context, live, screenshots)
        opened.append(browsing)
        return browsing

    yield start

    report = getattr(request.node, "report_call", None)
    failed = report is not None and report.failed
    try:
        for browsing in opened:
            if failed:
                for page in browsing.context.pages:
                    browsing.shot("at-failure", page)
    finally:
        for browsing in opened:
            browsing.context.close()
    for browsing in opened:
        assert not browsing.blocked, f"pages requested addresses other than the service: {browsing.blocked}"
        assert not browsing.page_errors, f"script errors on the pages: {browsing.page_errors}"


@pytest.fixture
def signed_in(browse: BrowseFactory) -> Browsing:
    """Chromium signed in as the administrator on the module's shared service."""
    browsing = browse()
    browsing.sign_in()
    return browsing
