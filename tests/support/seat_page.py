"""The web page as a person meets it, for the browser tests: opening a show and finding its
seats the way a screen reader names them."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.support.api_situations import ShowChoice

EMAIL = "email for your tickets"


def open_show(page: Page, choice: ShowChoice) -> None:
    page.goto(f"/#/city/{choice.city_id}/movie/{choice.movie_id}/show/{choice.show_id}")
    wait_until_live(page)


def wait_until_live(page: Page) -> None:
    # The plan is drawn from the first event of the seat stream: once it is
    # there, later changes arrive on the same connection.
    expect(page.locator("#plan")).to_have_attribute("data-live", "true")


def seat_button(page: Page, seat: dict) -> Locator:
    """A seat as a user of a screen reader meets it: a checkbox named by row and number."""
    name = re.compile(rf"^Row {re.escape(seat['row'])} seat {seat['number']},")
    return page.get_by_role("checkbox", name=name)


def seat_by_id(page: Page, seat_id: str) -> Locator:
    return page.locator(f'#plan [data-seat="{seat_id}"]')
