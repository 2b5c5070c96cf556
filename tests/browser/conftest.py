"""Fixtures for the browser tests: the real service in a subprocess, Debian's
headless Chromium driven by Playwright, and a few helpers to find a show.

BOXOFFICE_BROWSER_MOCK=1 points the same tests at tests/browser/mock_service.py,
which is only for working on the page while the backend is elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, sync_playwright

from tests.support.services import ServiceProcess, running_service, uvicorn_args

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The core of the policy the service sends with the page (docs/API.md). Added here when the
# service does not (yet), so these tests always prove the page runs under it.
STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'"
# Holds must outlast a test; the page's countdown starts from this.
HOLD_TTL_S = "300"
SHORT_HOLD_TTL_S = "4"
STARTUP_TIMEOUT_S = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package")
def live_server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The boxoffice app served by uvicorn in a subprocess, on the tests' own Redis and
    seeded PostgreSQL (tests/conftest.py). Package-scoped: it stops when the browser
    tests are done, before other tests truncate the sales tables under it."""
    with serve(request, HOLD_TTL_S, "browser-server") as url:
        yield url


@pytest.fixture(scope="package")
def short_hold_server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A second app process whose holds last seconds, to watch one expire."""
    with serve(request, SHORT_HOLD_TTL_S, "browser-server-short-holds") as url:
        yield url


@contextlib.contextmanager
def serve(request: pytest.FixtureRequest, hold_ttl_s: str, name: str,
          extra_env: dict[str, str] | None = None) -> Iterator[str]:
    env = {**os.environ, "BOXOFFICE_HOLD_TTL_S": hold_ttl_s, **(extra_env or {})}
    if using_mock():
        app = "tests.browser.mock_service:create_app"
    else:
        app = "boxoffice.api.app:create_app"
        env["REDIS_URL"] = request.getfixturevalue("redis_server").url
        env["DATABASE_URL"] = request.getfixturevalue("database_url")
        # Seat state of its own in the shared Redis, apart from the other tests' keys.
        env["BOXOFFICE_KEY_PREFIX"] = f"browser{uuid.uuid4().hex[:8]}"
    OUTPUT.mkdir(exist_ok=True)
    # The log stays in test-output for whoever looks into a failed browser test.
    with running_service(env, OUTPUT / f"{name}.log", ready=wait_until_serving,
                         module_args=uvicorn_args(app, log_level=None), log_stdout=True) as server:
        yield server.url


def wait_until_serving(server: ServiceProcess) -> None:
    """Until the catalog answers (the page's first request), not only /healthz."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"the app exited with {server.process.returncode} before serving; see {server.log_path}",
                        pytrace=False)
        try:
            if httpx.get(f"{server.url}/v1/cities", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling a process start, not the page
    pytest.fail(f"the app did not answer within {STARTUP_TIMEOUT_S} s", pytrace=False)


def using_mock() -> bool:
    return os.environ.get("BOXOFFICE_BROWSER_MOCK") == "1"


@pytest.fixture(scope="package")
def backing_services(request: pytest.FixtureRequest) -> None:
    """Redis and PostgreSQL set up before Playwright starts: their setup calls
    asyncio.run(), which cannot run while Playwright's loop owns this thread."""
    if not using_mock():
        request.getfixturevalue("redis_server")
        request.getfixturevalue("database_url")


@pytest.fixture(scope="package")
def browser(backing_services: None) -> Iterator[Browser]:
    # Package scope: Playwright's loop must be gone before asyncio tests elsewhere run.
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package (apt-get install -y chromium)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server_url(live_server_url: str) -> str:
    """The server the page and the api client talk to; a test may override it."""
    return live_server_url


@pytest.fixture
def page(browser: Browser, server_url: str) -> Iterator[Page]:
    """A fresh browser context per test, under a strict CSP, failing the test on
    any script error or CSP violation."""
    context = browser.new_context(base_url=server_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    problems: list[str] = []

    def add_csp(route: Route) -> None:
        response = route.fetch()
        headers = {**response.headers}
        headers.setdefault("content-security-policy", STRICT_CSP)
        route.fulfill(response=response, headers=headers)

    def on_console(message: ConsoleMessage) -> None:
        # Error answers (402, 409...) are logged as failed loads; they are expected.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console: {message.text}")

    context.route(lambda url: urlparse(url).path == "/", add_csp)
    page = context.new_page()
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield page
    context.close()
    assert not problems, "the page reported errors:\n" + "\n".join(problems)


@pytest.fixture
def api(server_url: str) -> Iterator[httpx.Client]:
    """Another client of the service, speaking HTTP directly."""
    with httpx.Client(base_url=server_url, timeout=15) as client:
        yield client


@dataclass(frozen=True)
class ShowChoice:
    city_id: str
    city_name: str
    movie_id: str
    movie_title: str
    show_id: str
    seat_count: int


_used_shows: set[str] = set()


def get_json(api: httpx.Client, path: str) -> Any:
    answer = api.get(path)
    assert answer.status_code == 200, f"GET {path} answered {answer.status_code}: {answer.text}"
    return answer.json()


def untouched_shows(api: httpx.Client) -> Iterator[ShowChoice]:
    """Shows no test has used yet and nobody holds or booked a seat of, so tests
    do not step on each other on a session-wide server."""
    for city in get_json(api, "/v1/cities")["cities"]:
        for movie in get_json(api, f"/v1/cities/{city['id']}/movies")["movies"]:
            path = f"/v1/cities/{city['id']}/movies/{movie['id']}/shows"
            for cinema in get_json(api, path)["cinemas"]:
                for show in cinema["shows"]:
                    if show["id"] in _used_shows or show["available"] < 12:
                        continue
                    counts = get_json(api, f"/v1/shows/{show['id']}/seats")["counts"]
                    if counts["held"] or counts["booked"]:
                        continue
                    yield ShowChoice(
                        city["id"], city["name"], movie["id"], movie["title"], show["id"], counts["available"]
                    )


@pytest.fixture
def fresh_show(api: httpx.Client) -> ShowChoice:
    for choice in untouched_shows(api):
        _used_shows.add(choice.show_id)
        return choice
    pytest.fail("the service lists no untouched show with at least 12 free seats", pytrace=False)


@pytest.fixture
def small_show(api: httpx.Client) -> ShowChoice:
    """The untouched show with the fewest seats (among the first few found), for
    tests that fill a whole hall."""
    candidates = []
    for choice in untouched_shows(api):
        candidates.append(choice)
        if len(candidates) >= 12:
            break
    if not candidates:
        pytest.fail("the service lists no untouched show", pytrace=False)
    choice = min(candidates, key=lambda c: c.seat_count)
    _used_shows.add(choice.show_id)
    return choice
