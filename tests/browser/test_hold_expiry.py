"""An expired hold, seen in the browser: against a server whose holds last seconds."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.api_situations import ShowChoice, free_seats_side_by_side
from tests.support.browser import SHORT_HOLD_TTL_S
from tests.support.seat_page import EMAIL, open_show, seat_by_id


@pytest.fixture
def server_url(short_hold_server_url: str) -> str:
    return short_hold_server_url


def test_an_expired_hold_says_so_and_frees_the_seats(page: Page, api: httpx.Client, fresh_show: ShowChoice) -> None:
    open_show(page, fresh_show)
    seat = free_seats_side_by_side(api, fresh_show.show_id, 1)[0]
    seat_by_id(page, seat["id"]).click()
    page.get_by_label(EMAIL).fill("slowcoach@example.org")
    page.get_by_role("button", name="Hold 1 seat").click()
    expect(page.locator("#step-pay")).to_be_visible()
    expect(page.locator("#countdown")).to_have_text(re.compile(r"^0:0\d$"))

    expiry_ms = (SHORT_HOLD_TTL_S + 3) * 1000
    expect(page.locator("#message")).to_contain_text("expired", timeout=expiry_ms)
    expect(page.locator("#step-select")).to_be_visible()
    expect(page.locator("#selection-list li")).to_have_count(0)
    # The service frees the seat within a second of the expiry, and says so on the stream.
    expect(seat_by_id(page, seat["id"])).to_have_attribute("data-status", "available")
