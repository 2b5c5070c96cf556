"""The release queue on the page, in headless Chromium against the real service: a show
whose sales open in a few seconds shows a countdown and a "join the queue" button and no
seat map; in the queue the place moves live as those ahead are let in and leave; once
admitted the seat map opens with the pass's time left and the hold carries X-Queue-Pass;
a visitor still waiting when the show sells out is told so and offered nothing.

Other customers are driven through the API: those ahead of the page leave as soon as they
are admitted (so the page's place moves); those between the two pages, once let in, keep
every place for shoppers busy until the first page has bought, then buy the rest of the
hall with their passes (so the show sells out while the second page still waits).
Screenshots go to test-output/release-queue-*.png (the ones in docs/ are copies of a run
that were looked at, so a test run leaves the tree as it found it)."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect

from boxoffice.engine.settings import Settings
from tests.support.browser import HOLD_TTL_S, OUTPUT, SERVE
from tests.support.live import drop_keys
from tests.support.seat_page import EMAIL, seat_by_id
from tests.support.services import running_service, service_environment

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = secrets.token_urlsafe(24)
OPENS_IN_S = 15  # time for the customers ahead to join and the page to show its countdown
DRIVE_TIMEOUT_S = 60


@pytest.fixture(scope="package")
def queue_server_url(backing_services: tuple[str, str]) -> Iterator[str]:
    """The real service with the admin API (to make a show whose sales open soon)."""
    redis_url, database_url = backing_services
    settings = Settings(redis_url=redis_url, database_url=database_url, hold_ttl_s=HOLD_TTL_S,
                        key_prefix=f"browserq{uuid.uuid4().hex[:8]}")
    OUTPUT.mkdir(exist_ok=True)
    try:
        with running_service(service_environment(settings, BOXOFFICE_ADMIN_TOKEN=ADMIN_TOKEN),
                             OUTPUT / "browser-server-queue.log", timeout_s=60, module_args=SERVE) as service:
            yield service.url
    finally:
        drop_keys(settings)


@pytest.fixture
def server_url(queue_server_url: str) -> str:
    return queue_server_url


def smallest_hall(database_url: str) -> tuple[str, str, list[str], int]:
    """(hall id, a movie id, the hall's seat categories, its seat count)."""
    with psycopg.connect(database_url) as conn:
        hall_id, seat_count = conn.execute(
            "SELECT id, seat_count FROM halls WHERE seat_count >= 20 ORDER BY seat_count, id LIMIT 1").fetchone()
        categories = [row[0] for row in conn.execute(
            "SELECT DISTINCT category FROM seats WHERE hall_id = %s ORDER BY 1", (hall_id,))]
        movie_id = conn.execute("SELECT id FROM movies ORDER BY id LIMIT 1").fetchone()[0]
    return str(hall_id), str(movie_id), categories, int(seat_count)


@pytest.fixture
def show_opening_soon(api: httpx.Client, database_url: str) -> Iterator[tuple[str, int]]:
    """A new show in the smallest hall, its sales opening in OPENS_IN_S seconds: (id, seats)."""
    hall_id, movie_id, categories, seat_count = smallest_hall(database_url)
    # Far ahead, at a minute no other test or seed show takes in that hall.
    starts_at = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(
        days=300, minutes=uuid.uuid4().int % 100_000 * 5)
    opens_at = datetime.now(UTC) + timedelta(seconds=OPENS_IN_S)
    answer = api.post("/v1/admin/shows", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, json={
        "hall_id": hall_id, "movie_id": movie_id, "starts_at": starts_at.isoformat(),
        "sale_opens_at": opens_at.isoformat(),
        "prices": [{"category": c, "amount": 1000, "currency": "EUR"} for c in categories]})
    assert answer.status_code == 201, answer.text
    show_id = str(answer.json()["id"])
    yield show_id, seat_count
    # Closed afterwards: the show stays in the shared test database, and a test elsewhere
    # that takes the latest open show must not meet its queue (in a Redis of its own, the
    # queue of a show whose sales opened runs again).
    closed = api.post(f"/v1/admin/shows/{show_id}/close", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                      json={"reason": "test over"})
    assert closed.status_code == 200, closed.text


@dataclass
class Customer:
    """A customer queueing through the API, and what it does once admitted."""

    email: str
    ticket_id: str
    role: str  # "ahead": leaves when admitted; "filler": buys what is free once buying starts
    done: bool = False


@dataclass
class Crowd:
    api: httpx.Client
    show_id: str
    customers: list[Customer] = field(default_factory=list)
    buying: bool = False  # whether the fillers buy yet

    def join(self, role: str, count: int) -> None:
        for _ in range(count):
            email = f"{role}-{uuid.uuid4().hex[:10]}@example.org"
            answer = self.api.post(f"/v1/shows/{self.show_id}/queue", json={"customer": email})
            assert answer.status_code == 201, answer.text
            assert answer.json()["status"] == "waiting", answer.json()
            self.customers.append(Customer(email, answer.json()["ticket_id"], role))

    def step(self) -> None:
        """Each admitted customer acts once: leaves, or holds free seats with its pass and pays."""
        for customer in self.customers:
            if customer.done or (customer.role == "filler" and not self.buying):
                continue
            ticket = self.api.get(f"/v1/queue/{customer.ticket_id}").json()
            if ticket["status"] == "waiting":
                continue
            customer.done = True
            if ticket["status"] != "admitted":
                continue
            if customer.role == "ahead":
                assert self.api.delete(f"/v1/queue/{customer.ticket_id}").status_code == 204
            else:
                self.buy(customer, ticket["pass"]["token"])

    def buy(self, customer: Customer, token: str) -> None:
        free = [s["id"] for s in self.api.get(f"/v1/shows/{self.show_id}/seats").json()["seats"]
                if s["status"] == "available"][:10]
        if not free:
            return
        held = self.api.post(f"/v1/shows/{self.show_id}/holds", headers={"X-Queue-Pass": token},
                             json={"seats": free, "customer": customer.email})
        assert held.status_code == 201, held.text
        paid = self.api.post(f"/v1/holds/{held.json()['hold_id']}/confirm",
                             headers={"Idempotency-Key": uuid.uuid4().hex},
                             json={"payment": {"method": "card", "token": "tok_ok"}})
        assert paid.status_code == 201, paid.text

    def drive(self, until: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DRIVE_TIMEOUT_S
        while not until():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.step()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(OUTPUT / f"release-queue-{name}.png"), full_page=True)


def position(page: Page) -> int | None:
    text = page.locator("#queue-position").text_content() or ""
    return int(text) if text.isdigit() else None


def join_on_page(page: Page, show_id: str, email: str) -> None:
    page.goto(f"/#/show/{show_id}")
    page.get_by_label(re.compile(EMAIL, re.I)).fill(email)
    page.get_by_role("button", name="Join the queue").click()
    expect(page.locator("#queue-waiting")).to_be_visible()


def test_countdown_queue_admission_pass_hold_and_sold_out(
        page: Page, browser: Browser, api: httpx.Client, show_opening_soon: tuple[str, int],
        server_url: str) -> None:
    show_id, seat_count = show_opening_soon
    crowd = Crowd(api, show_id)
    # More ahead than can be let in at once (tied to the free seats): the page has to wait.
    crowd.join("ahead", 2 * seat_count)

    # Before the opening: the countdown and the button, and no seat map.
    page.goto(f"/#/show/{show_id}")
    expect(page.locator("#queue-countdown")).to_have_text(re.compile(r"^0:\d\d$"))
    expect(page.get_by_role("button", name="Join the queue")).to_be_visible()
    expect(page.locator("#plan-closed")).to_be_visible()
    expect(page.locator("#hall-scroll")).to_be_hidden()
    page.get_by_label(re.compile(EMAIL, re.I)).fill("first-page@example.org")
    shot(page, "countdown")
    page.get_by_role("button", name="Join the queue").click()
    expect(page.locator("#queue-position")).to_have_text(str(2 * seat_count + 1))

    # Those between the two pages: more than may shop at once (so the second page waits),
    # and later they buy the hall.
    crowd.join("filler", seat_count)
    second = browser.new_context(base_url=server_url, viewport={"width": 1280, "height": 900})
    other = second.new_page()
    errors: list[str] = []
    other.on("pageerror", lambda error: errors.append(str(error)))
    join_on_page(other, show_id, "second-page@example.org")

    # The opening: those ahead are let in and leave, and the page's place moves, live.
    seen: list[int] = []

    def moved_and_admitted() -> bool:
        shown = position(page)
        if shown is not None and (not seen or seen[-1] != shown):
            seen.append(shown)
            if len(seen) == 2:
                expect(page.locator("#queue-eta")).to_contain_text("wait")
                shot(page, "waiting")
        return page.locator("#pass-banner").is_visible()

    crowd.drive(moved_and_admitted, "the first page's admission")
    assert len(seen) >= 2 and seen == sorted(seen, reverse=True), seen

    # Admitted: the seat map opens with the pass's time left; the hold carries the pass.
    expect(page.locator("#hall-scroll")).to_be_visible()
    expect(page.locator("#plan")).to_have_attribute("data-live", "true")
    expect(page.locator("#pass-left")).to_have_text(re.compile(r"^\d+:\d\d$"))
    shot(page, "admitted")
    seat = page.locator('#plan [data-status="available"]').first
    seat_id = seat.get_attribute("data-seat")
    seat.click()
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith(f"/v1/shows/{show_id}/holds")) as held:
        page.get_by_role("button", name=re.compile(r"^Hold 1 seat$")).click()
    assert held.value.header_value("x-queue-pass"), "the hold was sent without the pass"
    expect(page.locator("#step-pay")).to_be_visible()
    expect(seat_by_id(page, seat_id)).to_have_attribute("data-status", "mine")
    expect(page.locator("#pass-banner")).to_be_hidden()  # the pass has done its job
    page.get_by_role("button", name="Pay").click()
    expect(page.locator("#step-done")).to_be_visible()

    # The rest of the hall is sold to those ahead of the second page: it is told, and offered nothing.
    def sold_out() -> bool:
        counts = api.get(f"/v1/shows/{show_id}/seats").json()["counts"]
        return counts["available"] == 0 and counts["held"] == 0

    crowd.buying = True
    crowd.drive(sold_out, "the show to sell out")
    expect(other.locator("#queue-ended-text")).to_contain_text("Sold out")
    expect(other.locator("#queue-rejoin")).to_be_hidden()
    expect(other.get_by_role("button", name="Join the queue")).to_be_hidden()
    expect(other.locator("#hall-scroll")).to_be_hidden()
    shot(other, "sold-out")
    second.close()
    assert not errors, errors

    # The page tells no more than the service: the ticket really ended sold out.
    assert api.get(f"/v1/shows/{show_id}").json()["queue"]["active"] is False
