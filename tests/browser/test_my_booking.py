"""The "my booking" view (#/booking/<id>): the tickets of a booking, and cancelling it."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Dialog, Page, expect

from tests.support.api_situations import ShowChoice, book


def test_a_booking_shows_its_tickets_and_can_be_cancelled(page: Page, api: httpx.Client,
                                                          fresh_show: ShowChoice) -> None:
    booking = book(api, fresh_show.show_id)
    page.goto(f"/#/booking/{booking['booking_id']}")
    expect(page.locator("#view-booking")).to_be_visible()
    expect(page.locator("#my-booking-id")).to_have_text(booking["booking_id"])
    expect(page.locator("#my-booking-status")).to_have_text("Confirmed.")
    expect(page.locator("#my-booking-seats li")).to_have_count(2)
    for seat in booking["seats"]:
        expect(page.locator("#my-booking-seats")).to_contain_text(f"Seat {seat}")
    expect(page.locator("#my-booking-show")).to_contain_text(fresh_show.movie_title)

    dialogs: list[str] = []

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.get_by_role("button", name="Cancel this booking and refund it").click()
    expect(page.locator("#my-booking-status")).to_have_text(re.compile(r"^Cancelled\. Refund of .*: refunded\.$"))
    expect(page.get_by_role("button", name="Cancel this booking and refund it")).to_be_hidden()
    assert dialogs and "refunded" in dialogs[0]
    assert api.get(f"/v1/bookings/{booking['booking_id']}").json()["status"] == "cancelled"
    # the seats are on sale again
    seats = {s["id"]: s["status"] for s in api.get(f"/v1/shows/{fresh_show.show_id}/seats").json()["seats"]}
    assert [seats[s] for s in booking["seats"]] == ["available", "available"]


def test_an_unknown_booking_says_so(page: Page) -> None:
    page.goto("/#/booking/bk_AAAAAAAAAAAAAAAAAAAAAA")
    expect(page.locator("#page-error")).to_be_visible()
