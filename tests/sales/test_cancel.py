"""Cancelling a booking (docs/API.md, "Cancelling a booking"), on the real Redis and
PostgreSQL: the refund happens once whatever the keys and however many cancels race, the
seats go to the first waiter and then back to sale, the cutoff holds, and a cancel killed
midway is finished by the reconciler. Every test ends with the audit of
tests/support/sales.py (each charge ends in one standing booking or one refund)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text

from boxoffice.api.app import create_app
from boxoffice.engine.db import as_utc
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.backends import BOTH
from tests.support.sales import audit
from tests.support.seats import seat_marks
from tests.support.shows import ShowRef, pick_show
from tests.waitlist.test_waitlist import customer, fill, small_show

pytestmark = pytest.mark.parametrize("backend", BOTH, indirect=True)


async def book(client: httpx.AsyncClient, show_id: int, seats: list[str], who: str = "ana@example.org") -> str:
    held = await client.post(f"/v1/shows/{show_id}/holds", json={"seats": seats, "customer": who})
    assert held.status_code == 201, held.text
    confirmed = await client.post(f"/v1/holds/{held.json()['hold_id']}/confirm",
                                  json={"payment": {"method": "card", "token": "tok_ok"}},
                                  headers={"Idempotency-Key": f"order-{held.json()['hold_id'][-8:]}"})
    assert confirmed.status_code == 201, confirmed.text
    return str(confirmed.json()["booking_id"])


async def cancel(client: httpx.AsyncClient, booking_id: str, key: str = "cancel-1") -> httpx.Response:
    return await client.post(f"/v1/bookings/{booking_id}/cancel", headers={"Idempotency-Key": key})


async def ledger(ctx: Engine) -> list[tuple[str, str]]:
    async with ctx.sql.connect() as conn:
        return [(r[0], r[1]) for r in await conn.execute(text("SELECT provider_key, status FROM simulated_payments"))]


async def seat_marks_of(ctx: Engine, show_id: int, seats: list[str]) -> list[str | None]:
    marks = await seat_marks(ctx.redis, ctx.keys, show_id)
    return [marks.get(seat) for seat in seats]


async def test_a_cancel_refunds_once_and_frees_the_seats(ctx: Engine, client: httpx.AsyncClient,
                                                         show: ShowRef) -> None:
    seats = show.seat_ids[:2]
    booking_id = await book(client, show.show_id, seats)
    answer = await cancel(client, booking_id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "cancelled" and body["booking_id"] == booking_id and body["seats"] == sorted(seats)
    assert body["refund"] == {"amount": body["amount"], "currency": body["currency"], "status": "refunded"}
    assert (await client.get(f"/v1/bookings/{booking_id}")).json() == body
    # the same key, and another key: the same answer, no second refund
    assert (await cancel(client, booking_id)).json() == body
    assert (await cancel(client, booking_id, "another-key")).json() == body
    assert [status for _, status in await ledger(ctx)] == ["refunded"]
    assert await seat_marks_of(ctx, show.show_id, seats) == [None, None]
    # back on sale: someone else may buy them
    await book(client, show.show_id, seats, "bo@example.org")
    books = await audit(ctx)
    books.assert_consistent()
    assert (books.charges, books.refunds, books.bookings) == (2, 1, 1)


async def test_unknown_and_malformed_bookings_and_a_missing_key(client: httpx.AsyncClient) -> None:
    assert (await cancel(client, "bk_" + "A" * 22)).status_code == 404
    assert (await cancel(client, "nope")).status_code == 404
    missing = await client.post("/v1/bookings/bk_" + "A" * 22 + "/cancel")
    assert missing.status_code == 422 and missing.json()["details"][0]["field"] == "Idempotency-Key"


async def test_racing_cancels_refund_exactly_once(ctx: Engine, client: httpx.AsyncClient, show: ShowRef) -> None:
    booking_ids = [await book(client, show.show_id, show.seat_ids[i:i + 2], f"c{i}@example.org")
                   for i in range(0, 6, 2)]
    # per booking: 8 cancels with one key and 8 with keys of their own, all at once
    answers = await asyncio.gather(*(
        cancel(client, booking_id, "same-key" if n % 2 else f"key-{n}")
        for booking_id in booking_ids for n in range(16)))
    assert {a.status_code for a in answers} == {200}, {a.text for a in answers if a.status_code != 200}
    assert {a.json()["status"] for a in answers} == {"cancelled"}
    assert sorted(status for _, status in await ledger(ctx)) == ["refunded"] * 3
    async with ctx.sql.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM cancellations"))).scalar_one() == 3
    books = await audit(ctx)
    books.assert_consistent()
    assert books.settled and (books.bookings, books.refunds) == (0, 3)


async def test_the_seats_go_to_the_first_waiter(ctx: Engine, client: httpx.AsyncClient) -> None:
    show = await small_show(ctx)
    seats = show.ref.seat_ids[:2]
    booking_id = await book(client, show.show_id, seats)
    await fill(ctx, show)  # every other seat held: nothing free
    first = await ctx.waitlist.join(show.show_id, customer(), 2, None)
    second = await ctx.waitlist.join(show.show_id, customer(), 2, None)
    assert first.status == second.status == "waiting"
    assert (await cancel(client, booking_id)).status_code == 200
    granted = await ctx.waitlist.status(first.entry_id)
    assert granted.status == "granted" and sorted(granted.hold.seats) == sorted(seats)
    assert (await ctx.waitlist.status(second.entry_id)).status == "waiting"
    (await audit(ctx)).assert_consistent()


async def test_no_cancel_within_the_cutoff(ctx: Engine, client: httpx.AsyncClient) -> None:
    show = await pick_show(ctx)
    booking_id = await book(client, show.show_id, show.seat_ids[:1])
    async with ctx.sql.connect() as conn:
        starts_at = (await conn.execute(text("SELECT starts_at FROM shows WHERE id = :id"),
                                        {"id": show.show_id})).scalar_one()
    # the cutoff is measured on the database's clock: a cutoff past the show's start refuses
    late = ctx.settings.with_changes(cancel_cutoff_s=int((as_utc(starts_at) - datetime.now(UTC)).total_seconds()) + 60)
    strict = await open_engine(late, background=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(late, engine=strict)),
                                     base_url="http://testserver") as http:
            answer = await cancel(http, booking_id)
        assert answer.status_code == 409 and answer.json()["error"] == "cancel_too_late", answer.text
    finally:
        await strict.close()
    assert (await client.get(f"/v1/bookings/{booking_id}")).json()["status"] == "confirmed"
    assert [status for _, status in await ledger(ctx)] == ["captured"]
    (await audit(ctx)).assert_consistent()


@pytest.fixture
async def cut_off(ctx: Engine, client: httpx.AsyncClient, show: ShowRef) -> AsyncIterator[str]:
    """A booking whose cancellation stopped after its intent was recorded (as a killed
    process leaves it): the row is there, nothing else happened."""
    booking_id = await book(client, show.show_id, show.seat_ids[:2])
    booking = await ctx.bookings.get(booking_id)
    await ctx.cancellations._record_intent(booking, "killed-1")
    yield booking_id


async def test_the_reconciler_finishes_a_cut_off_cancel(ctx: Engine, client: httpx.AsyncClient,
                                                        show: ShowRef, cut_off: str) -> None:
    assert (await client.get(f"/v1/bookings/{cut_off}")).json()["refund"]["status"] == "pending"
    assert not (await audit(ctx)).settled
    await asyncio.sleep(ctx.settings.confirm_grace_s + 0.2)
    report = await ctx.reconciler.reconcile_once()
    assert report.cancelled == 1
    body = (await client.get(f"/v1/bookings/{cut_off}")).json()
    assert body["status"] == "cancelled" and body["refund"]["status"] == "refunded"
    assert await seat_marks_of(ctx, show.show_id, show.seat_ids[:2]) == [None, None]
    assert (await ctx.reconciler.reconcile_once()).cancelled == 0
    books = await audit(ctx)
    books.assert_consistent()
    assert books.settled and books.refunds == 1


async def test_seats_redis_did_not_get_back_are_given_back_by_the_reconciler(
        ctx: Engine, client: httpx.AsyncClient, show: ShowRef, monkeypatch: pytest.MonkeyPatch) -> None:
    seats = show.seat_ids[:2]
    booking_id = await book(client, show.show_id, seats)

    async def redis_fails(*_: object) -> int:
        raise RedisConnectionError("Redis went away")

    with monkeypatch.context() as patched:
        patched.setattr(ctx.gateway, "cancel_booking", redis_fails)
        answer = await cancel(client, booking_id)
    # the refund and PostgreSQL are done: the answer is the cancelled booking
    assert answer.status_code == 200 and answer.json()["refund"]["status"] == "refunded"
    assert await seat_marks_of(ctx, show.show_id, seats) == [f"b:{booking_id}"] * 2
    await asyncio.sleep(ctx.settings.confirm_grace_s + 0.2)
    assert (await ctx.reconciler.reconcile_once()).cancelled == 1
    assert await seat_marks_of(ctx, show.show_id, seats) == [None, None]
    books = await audit(ctx)
    books.assert_consistent()
    assert books.settled and books.refunds == 1
