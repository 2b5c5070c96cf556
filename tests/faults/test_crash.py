"""Crash safety (docs/CONFIRM.md): a real service process is killed (SIGKILL, at a fault
point) between each pair of the confirm's steps; after a restart without the fault the
reconciler finishes or undoes the cut-off confirm. Each test waits until the books
settle: every charge has exactly one booking or one refund, every booked seat is booked
in Redis, no seat is sold twice; then the client's retry with its Idempotency-Key gets the
one booking there is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from boxoffice.engine.wiring import Engine
from tests.support.crashable import Services
from tests.support.sales import Audit, audit, eventually
from tests.support.shows import ShowRef

pytestmark = pytest.mark.fault

PAY = {"payment": {"method": "card", "token": "tok_ok"}}
KEY = {"Idempotency-Key": "key-1"}


@pytest.fixture
def services(ctx: Engine, tmp_path: Path) -> Iterator[Services]:
    started = Services(ctx.settings, tmp_path)
    yield started
    started.stop_all()


async def settled(ctx: Engine) -> Audit | None:
    books = await audit(ctx)
    return books if books.settled else None


async def confirm_until_killed(url: str, show: ShowRef, seats: list[str]) -> str:
    """Holds the seats and sends the confirm that kills the service; returns the hold id."""
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        held = await client.post(f"/v1/shows/{show.show_id}/holds",
                                 json={"seats": seats, "customer": "ana@example.org"})
        assert held.status_code == 201, held.text
        hold_id = str(held.json()["hold_id"])
        with pytest.raises(httpx.TransportError):
            await client.post(f"/v1/holds/{hold_id}/confirm", json=PAY, headers=KEY)
    return hold_id


# What the books hold at the moment of the kill: (charges, bookings, pending payments).
AT_THE_KILL = {
    "after_pin": (0, 0, 0),  # pinned; no payment recorded
    "after_intent": (0, 0, 1),  # payment recorded, provider not called
    "after_charge": (1, 0, 1),  # charged; no booking
    "after_commit": (1, 1, 0),  # booked in PostgreSQL; Redis not told
}


@pytest.mark.parametrize("fault", list(AT_THE_KILL))
async def test_a_confirm_killed_between_two_steps_ends_in_one_booking_after_restart(
        ctx: Engine, show: ShowRef, services: Services, fault: str) -> None:
    seats = show.seat_ids[:2]
    doomed = await services.start(FAULT_POINT=fault, BOXOFFICE_CONFIRM_PIN_S="2")
    hold_id = await confirm_until_killed(doomed.url, show, seats)
    await doomed.wait_killed()
    at_kill = await audit(ctx)
    assert (at_kill.charges, at_kill.bookings, at_kill.pending) == AT_THE_KILL[fault]
    if fault == "after_commit":
        assert at_kill.problems, "Redis does not show the sale yet"

    service = await services.start(BOXOFFICE_CONFIRM_PIN_S="2")
    await eventually(lambda: settled(ctx))
    async with httpx.AsyncClient(base_url=service.url, timeout=30.0) as client:
        # The client whose connection broke sends its confirm again, same key.
        retried = await client.post(f"/v1/holds/{hold_id}/confirm", json=PAY, headers=KEY)
        assert retried.status_code == 201, retried.text
        booking = retried.json()
        assert booking["seats"] == sorted(seats)
        replay = await client.post(f"/v1/holds/{hold_id}/confirm", json=PAY, headers=KEY)
        assert replay.json() == booking
        hold = (await client.get(f"/v1/holds/{hold_id}")).json()
        assert hold["status"] == "confirmed" and hold["booking_id"] == booking["booking_id"]
        seat_map = (await client.get(f"/v1/shows/{show.show_id}/seats")).json()
        assert [s["status"] for s in seat_map["seats"] if s["id"] in seats] == ["booked", "booked"]
    books = await eventually(lambda: settled(ctx))
    books.assert_consistent()
    assert (books.charges, books.bookings, books.refunds) == (1, 1, 0)


@pytest.mark.parametrize("seats_taken", [False, True], ids=["seats-free-again", "seats-went-elsewhere"])
async def test_a_payment_taken_for_a_hold_that_expired_meanwhile_is_booked_or_refunded(
        ctx: Engine, show: ShowRef, services: Services, seats_taken: bool) -> None:
    seats = show.seat_ids[:2]
    doomed = await services.start(FAULT_POINT="after_charge", BOXOFFICE_HOLD_TTL_S="1",
                                  BOXOFFICE_CONFIRM_PIN_S="1")
    hold_id = await confirm_until_killed(doomed.url, show, seats)
    await doomed.wait_killed()
    # While the service is down the hold runs out (its pin too) and its seats come free.
    await eventually(lambda: _expired(ctx, hold_id))
    if seats_taken:
        await ctx.holds.hold(show.show_id, seats, "bob@example.org")

    await services.start()
    books = await eventually(lambda: settled(ctx))
    books.assert_consistent()
    if seats_taken:
        assert (books.charges, books.bookings, books.refunds) == (1, 0, 1)
        statuses = await ctx.holds.seat_statuses(show.show_id)
        assert [statuses[s].value for s in seats] == ["held", "held"], "bob keeps his seats"
    else:
        assert (books.charges, books.bookings, books.refunds) == (1, 1, 0)
        assert (await ctx.holds.hold_status(hold_id)).status.value == "confirmed"


async def _expired(ctx: Engine, hold_id: str) -> bool:
    return (await ctx.holds.hold_status(hold_id)).status.value == "expired"


# A cancel killed after its intent (nothing refunded yet) or after the refund (booked
# seats not yet let go): what the books hold then (charges, refunds, cancellations pending).
CANCEL_AT_THE_KILL = {"after_cancel_intent": (1, 0, 1), "after_refund": (1, 1, 1)}


@pytest.mark.parametrize("fault", list(CANCEL_AT_THE_KILL))
async def test_a_cancel_killed_midway_is_finished_by_the_reconciler(
        ctx: Engine, show: ShowRef, services: Services, fault: str) -> None:
    seats = show.seat_ids[:2]
    doomed = await services.start(FAULT_POINT=fault)
    async with httpx.AsyncClient(base_url=doomed.url, timeout=10.0) as client:
        held = await client.post(f"/v1/shows/{show.show_id}/holds", json={"seats": seats, "customer": "ana@x.org"})
        booked = await client.post(f"/v1/holds/{held.json()['hold_id']}/confirm", json=PAY, headers=KEY)
        assert booked.status_code == 201, booked.text
        booking_id = booked.json()["booking_id"]
        with pytest.raises(httpx.TransportError):
            await client.post(f"/v1/bookings/{booking_id}/cancel", headers={"Idempotency-Key": "cancel-1"})
    await doomed.wait_killed()
    at_kill = await audit(ctx)
    assert (at_kill.charges, at_kill.refunds, at_kill.pending_cancellations) == CANCEL_AT_THE_KILL[fault]

    service = await services.start()
    books = await eventually(lambda: settled(ctx))
    books.assert_consistent()
    assert (books.charges, books.bookings, books.refunds) == (1, 0, 1)
    async with httpx.AsyncClient(base_url=service.url, timeout=30.0) as client:
        for key in ("cancel-1", "another"):
            again = await client.post(f"/v1/bookings/{booking_id}/cancel", headers={"Idempotency-Key": key})
            assert again.status_code == 200 and again.json()["refund"]["status"] == "refunded", again.text
        seat_map = (await client.get(f"/v1/shows/{show.show_id}/seats")).json()
        assert [s["status"] for s in seat_map["seats"] if s["id"] in seats] == ["available", "available"]
    assert (await audit(ctx)).refunds == 1
