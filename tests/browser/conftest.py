"""Fixtures for the browser tests: Debian's headless Chromium driven by Playwright against
the real service, `boxoffice serve` in a subprocess, both on the real Redis and PostgreSQL
and embedded (every browser test runs on both). Helpers live in tests/support/
(browser.py, api_situations.py, seat_page.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, sync_playwright

from tests.support.api_situations import ShowChoice, claim, untouched_shows
from tests.support.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HOLD_TTL_S,
    SERVICE_KINDS,
    SHORT_HOLD_TTL_S,
    csp_gaps,
    page_service,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package", params=SERVICE_KINDS)
def service_kind(request: pytest.FixtureRequest) -> str:
    """"real" (Redis + PostgreSQL) or "embedded" (fakeredis + SQLite): the service the page talks to."""
    return str(request.param)


@pytest.fixture(scope="package")
def backing_services(request: pytest.FixtureRequest) -> tuple[str, str]:
    """The session's Redis and PostgreSQL (tests/conftest.py), set up before Playwright
    starts: their setup calls asyncio.run(), which cannot run while Playwright's loop owns
    this thread. Package-scoped users: the services stop when the browser tests are done,
    before other tests truncate the sales tables under them."""
    return request.getfixturevalue("redis_server").url, request.getfixturevalue("database_url")


@pytest.fixture(scope="package")
def live_server_url(service_kind: str, backing_services: tuple[str, str],
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service with holds that outlast a test."""
    redis_url, database_url = backing_services
    with page_service(service_kind, HOLD_TTL_S, "browser-server", redis_url=redis_url, database_url=database_url,
                      work_dir=tmp_path_factory.mktemp("browser")) as url:
        yield url


@pytest.fixture(scope="package")
def short_hold_server_url(service_kind: str, backing_services: tuple[str, str],
                          tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second service whose holds last seconds (its hold TTL setting), to watch one expire."""
    redis_url, database_url = backing_services
    with page_service(service_kind, SHORT_HOLD_TTL_S, "browser-server-short-holds", redis_url=redis_url,
                      database_url=database_url, work_dir=tmp_path_factory.mktemp("browser")) as url:
        yield url


@pytest.fixture(scope="package")
def browser(backing_services: tuple[str, str]) -> Iterator[Browser]:
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
    """The service the page and the api client talk to; a test module may override it."""
    return live_server_url


@pytest.fixture
def page(browser: Browser, server_url: str) -> Iterator[Page]:
    """A fresh browser context per test, failing the test on any script error, CSP
    violation, or page served without the strict CSP."""
    context = browser.new_context(base_url=server_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    problems: list[str] = []

    def check_csp(response: Response) -> None:
        if urlparse(response.url).path == "/" and (gaps := csp_gaps(response)):
            problems.append(f"the page came without {gaps} in its Content-Security-Policy")

    def on_console(message: ConsoleMessage) -> None:
        # Error answers (402, 409...) are logged as failed loads; they are expected.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console: {message.text}")

    context.on("response", check_csp)
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


@pytest.fixture(scope="session")
def claimed_shows() -> set[tuple[str, str]]:
    """(service URL, show id) of the shows tests took, so no two tests share a show."""
    return set()


@pytest.fixture
def fresh_show(api: httpx.Client, claimed_shows: set[tuple[str, str]]) -> ShowChoice:
    for choice in untouched_shows(api, claimed_shows):
        return claim(api, claimed_shows, choice)
    pytest.fail("the service lists no untouched show with at least 12 free seats", pytrace=False)


@pytest.fixture
def small_show(api: httpx.Client, claimed_shows: set[tuple[str, str]]) -> ShowChoice:
    """The untouched show with the fewest seats (among the first few found), for
    tests that fill a whole hall."""
    candidates = []
    for choice in untouched_shows(api, claimed_shows):
        candidates.append(choice)
        if len(candidates) >= 12:
            break
    if not candidates:
        pytest.fail("the service lists no untouched show", pytrace=False)
    return claim(api, claimed_shows, min(candidates, key=lambda c: c.seat_count))
