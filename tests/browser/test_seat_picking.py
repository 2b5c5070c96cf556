"""The seat-picking page in headless Chromium against the service, real and embedded."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, Route, expect

from tests.support.api_situations import ShowChoice, chunks, free_seats_side_by_side, hold_directly, seats_of
from tests.support.browser import OUTPUT
from tests.support.seat_page import EMAIL, open_show, seat_button, seat_by_id, wait_until_live


def test_full_journey_from_city_to_confirmed_booking(page: Page, api: httpx.Client, fresh_show: ShowChoice) -> None:
    page.goto("/")
    page.locator("#city-list a").filter(has=page.get_by_text(fresh_show.city_name, exact=True)).click()
    page.locator("#movie-list a").filter(has=page.get_by_text(fresh_show.movie_title, exact=True)).click()
    page.locator(f'#cinema-list a[href$="/show/{fresh_show.show_id}"]').click()
    wait_until_live(page)

    show = api.get(f"/v1/shows/{fresh_show.show_id}").json()
    for price in show["prices"]:
        expect(page.locator("#price-list")).to_contain_text(price["category"])

    seats = free_seats_side_by_side(api, fresh_show.show_id, 2)
    for seat in seats:
        seat_button(page, seat).click()
        expect(seat_button(page, seat)).to_have_attribute("aria-checked", "true")
    expect(page.locator("#selection-list li")).to_have_count(2)

    OUTPUT.mkdir(exist_ok=True)
    page.locator(".hall").screenshot(path=OUTPUT / "seating-plan.png")
    page.screenshot(path=OUTPUT / "seat-picking-page.png", full_page=True)

    page.get_by_label(EMAIL).fill("journey@example.org")
    page.get_by_role("button", name="Hold 2 seats").click()
    expect(page.locator("#step-pay")).to_be_visible()
    expect(page.locator("#countdown")).to_have_text(re.compile(r"^[45]:\d\d$"))
    for seat in seats:
        expect(seat_by_id(page, seat["id"])).to_have_attribute("data-status", "mine")

    # A declined card says so and leaves the hold in place for another try.
    page.get_by_label("Card").select_option("tok_decline")
    page.get_by_role("button", name=re.compile("^Pay ")).click()
    expect(page.locator("#message")).to_contain_text("declined")
    expect(page.locator("#step-pay")).to_be_visible()

    # So does a payment provider that is down.
    page.get_by_label("Card").select_option("tok_error")
    page.get_by_role("button", name=re.compile("^Pay ")).click()
    expect(page.locator("#message")).to_contain_text("unavailable")
    expect(page.locator("#step-pay")).to_be_visible()

    page.get_by_label("Card").select_option("tok_ok")
    page.get_by_role("button", name=re.compile("^Pay ")).click()
    expect(page.locator("#step-done")).to_be_visible()
    booking_id = page.locator("#booking-id").inner_text()
    assert booking_id
    expect(page.locator("#booking-link")).to_have_attribute("href", f"#/booking/{booking_id}")

    booking = api.get(f"/v1/bookings/{booking_id}").json()
    assert booking["status"] == "confirmed"
    assert sorted(booking["seats"]) == sorted(seat["id"] for seat in seats)
    for seat in seats:
        expect(seat_by_id(page, seat["id"])).to_have_attribute("data-status", "booked")
    page.locator(".hall").screenshot(path=OUTPUT / "seating-plan-booked.png")


def test_an_eleventh_seat_is_refused_with_an_explanation(page: Page, api: httpx.Client, fresh_show: ShowChoice) -> None:
    open_show(page, fresh_show)
    free = [s for s in seats_of(api, fresh_show.show_id) if s["status"] == "available"][:11]

    for seat in free[:10]:
        seat_by_id(page, seat["id"]).click()
    expect(page.locator('#plan [aria-checked="true"]')).to_have_count(10)

    seat_by_id(page, free[10]["id"]).click()
    expect(page.locator("#message")).to_contain_text("at most 10 seats")
    expect(seat_by_id(page, free[10]["id"])).to_have_attribute("aria-checked", "false")
    expect(page.locator('#plan [aria-checked="true"]')).to_have_count(10)
    expect(page.get_by_role("button", name="Hold 10 seats")).to_be_enabled()


def test_seats_taken_by_another_client_turn_unavailable_without_a_reload(
    page: Page, api: httpx.Client, fresh_show: ShowChoice
) -> None:
    open_show(page, fresh_show)
    picked, other = free_seats_side_by_side(api, fresh_show.show_id, 2)
    seat_by_id(page, picked["id"]).click()
    expect(seat_by_id(page, picked["id"])).to_have_attribute("data-status", "selected")
    expect(seat_by_id(page, other["id"])).to_have_attribute("data-status", "available")

    hold_directly(api, fresh_show.show_id, [picked["id"], other["id"]], "rival@example.org")

    for seat in (picked, other):
        expect(seat_by_id(page, seat["id"])).to_have_attribute("data-status", "held", timeout=1000)
        expect(seat_by_id(page, seat["id"])).to_have_attribute("aria-disabled", "true")
    # The seat this page had picked is let go of, and the page says why.
    expect(page.locator("#selection-list li")).to_have_count(0)
    expect(page.locator("#message")).to_contain_text("just taken")
    page.locator(".hall").screenshot(path=OUTPUT / "seating-plan-taken.png")


def test_a_waitlist_grant_reaches_the_page_and_leads_to_payment(
    page: Page, api: httpx.Client, small_show: ShowChoice
) -> None:
    show_id = small_show.show_id
    # Others hold every seat but the two this page will pick.
    wanted = free_seats_side_by_side(api, show_id, 2)
    wanted_ids = [seat["id"] for seat in wanted]
    rest = [s["id"] for s in seats_of(api, show_id) if s["status"] == "available" and s["id"] not in wanted_ids]
    for number, seat_ids in enumerate(chunks(rest, 10)):
        hold_directly(api, show_id, seat_ids, f"crowd-{number}@example.org")

    open_show(page, small_show)
    for seat in wanted:
        seat_by_id(page, seat["id"]).click()

    # A rival takes the two seats while this page's hold request is on its way.
    rival: dict = {}

    def rival_first(route: Route) -> None:
        rival.update(hold_directly(api, show_id, wanted_ids, "rival@example.org"))
        route.continue_()

    page.route(f"**/v1/shows/{show_id}/holds", rival_first, times=1)
    page.get_by_label(EMAIL).fill("patient@example.org")
    page.get_by_role("button", name="Hold 2 seats").click()

    expect(page.locator("#step-offer")).to_be_visible()
    page.get_by_role("button", name="Join the waitlist for 2 seats").click()
    expect(page.locator("#step-waiting")).to_be_visible()
    expect(page.locator("#wait-position")).to_have_text("1")

    assert api.delete(f"/v1/holds/{rival['hold_id']}").status_code == 204

    expect(page.locator("#step-pay")).to_be_visible()
    expect(page.locator("#held-list li")).to_have_count(2)
    expect(page.locator('#plan [data-status="mine"]')).to_have_count(2)
    page.screenshot(path=OUTPUT / "waitlist-grant.png", full_page=True)

    page.get_by_label("Card").select_option("tok_ok")
    page.get_by_role("button", name=re.compile("^Pay ")).click()
    expect(page.locator("#step-done")).to_be_visible()
    booking = api.get(f"/v1/bookings/{page.locator('#booking-id').inner_text()}").json()
    assert booking["customer"] == "patient@example.org"
    assert len(booking["seats"]) == 2


def test_a_sold_out_show_offers_the_waitlist(page: Page, api: httpx.Client, small_show: ShowChoice) -> None:
    show_id = small_show.show_id
    free = [s["id"] for s in seats_of(api, show_id) if s["status"] == "available"]
    crowd = [hold_directly(api, show_id, ids, f"crowd-{n}@example.org") for n, ids in enumerate(chunks(free, 10))]

    open_show(page, small_show)
    expect(page.locator("#soldout")).to_be_visible()
    page.get_by_label(EMAIL).fill("hopeful@example.org")
    page.get_by_label("Seats wanted").fill("3")
    page.get_by_role("button", name="Join the waitlist").click()
    expect(page.locator("#wait-position")).to_have_text("1")

    # A crowd member gives up a hold of at least three seats: they go to the waiter.
    giving_up = next(hold for hold in crowd if len(hold["seats"]) >= 3)
    assert api.delete(f"/v1/holds/{giving_up['hold_id']}").status_code == 204
    expect(page.locator("#step-pay")).to_be_visible()
    expect(page.locator("#held-list li")).to_have_count(3)


def test_seats_can_be_picked_with_the_keyboard(page: Page, api: httpx.Client, fresh_show: ShowChoice) -> None:
    open_show(page, fresh_show)
    front_row = sorted((s for s in seats_of(api, fresh_show.show_id) if s["row"] == "A"), key=lambda s: s["x"])

    # The plan is one tab stop; the arrow keys move within it.
    page.locator("#plan .seat[tabindex='0']").focus()
    expect(seat_by_id(page, front_row[0]["id"])).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(seat_by_id(page, front_row[1]["id"])).to_be_focused()
    page.keyboard.press("Space")
    expect(seat_by_id(page, front_row[1]["id"])).to_have_attribute("aria-checked", "true")
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    expect(seat_by_id(page, front_row[-1]["id"])).to_have_attribute("aria-checked", "true")
    expect(page.locator("#selection-list li")).to_have_count(2)


def test_the_page_fits_a_phone_screen(page: Page, api: httpx.Client, fresh_show: ShowChoice) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    open_show(page, fresh_show)
    # A wide hall scrolls inside its own box; the page itself never scrolls sideways.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    seat = free_seats_side_by_side(api, fresh_show.show_id, 1)[0]
    box = seat_by_id(page, seat["id"]).bounding_box()
    assert box and box["width"] >= 16, f"seats too small to tap: {box}"
    # Once a seat is picked, the Hold button is on screen without scrolling (the panel
    # with it comes after the plan on a phone).
    page.evaluate("window.scrollTo(0, 0)")
    seat_by_id(page, seat["id"]).click()
    hold = page.get_by_role("button", name="Hold 1 seat")
    expect(hold).to_be_enabled()
    held_at = hold.bounding_box()
    assert held_at and 0 <= held_at["y"] and held_at["y"] + held_at["height"] <= 844, \
        f"the Hold button is off screen on a phone: {held_at}"
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=OUTPUT / "seat-picking-phone.png")
    # Without an email it asks for one; with it, the seat is held.
    hold.click()
    expect(page.get_by_label(EMAIL)).to_be_focused()
    page.get_by_label(EMAIL).fill("on-the-bus@example.org")
    hold.click()
    expect(seat_by_id(page, seat["id"])).to_have_attribute("data-status", "mine")


def test_releasing_a_hold_frees_the_seats_for_everyone(page: Page, api: httpx.Client, fresh_show: ShowChoice) -> None:
    open_show(page, fresh_show)
    seat = free_seats_side_by_side(api, fresh_show.show_id, 1)[0]
    seat_by_id(page, seat["id"]).click()
    page.get_by_label(EMAIL).fill("changed-my-mind@example.org")
    page.get_by_role("button", name="Hold 1 seat").click()
    expect(seat_by_id(page, seat["id"])).to_have_attribute("data-status", "mine")

    page.get_by_role("button", name="Release these seats").click()
    expect(page.locator("#message")).to_contain_text("released")
    expect(page.locator("#step-select")).to_be_visible()
    expect(seat_by_id(page, seat["id"])).to_have_attribute("data-status", "available")
    statuses = {s["id"]: s["status"] for s in seats_of(api, fresh_show.show_id)}
    assert statuses[seat["id"]] == "available"
