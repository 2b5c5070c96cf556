"""Confirm and pay (docs/CONFIRM.md): the provider, the confirm's outcomes, the fencing token,
idempotency, a wiped Redis and 200 clients at once, on the real Redis and PostgreSQL.
Every test ends with the audit of tests/support/sales.py: each charge has exactly one
booking or one refund, no seat is sold twice, Redis shows every booked seat."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from boxoffice.api.app import create_app
from boxoffice.engine.confirm import PinLost
from boxoffice.engine.errors import ScriptCode
from boxoffice.engine.payment_records import PaymentRecord, PaymentStatus
from boxoffice.engine.payments import Charge, ChargeStatus, ProviderUnavailable, SimulatedProvider
from boxoffice.engine.statuses import SeatStatus
from boxoffice.engine.wiring import Engine
from tests.support.backends import BOTH, Tuned
from tests.support.providers import GATED
from tests.support.sales import audit, eventually, redis_now_ms
from tests.support.services import RedisServer
from tests.support.shows import ShowRef, pick_show


def pay(token: str = "tok_ok") -> dict[str, Any]:  # noqa: S107 - a test card token
    return {"payment": {"method": "card", "token": token}}


async def hold(client: httpx.AsyncClient, show_id: int, seats: list[str], customer: str = "ana@example.org") -> str:
    answer = await client.post(f"/v1/shows/{show_id}/holds", json={"seats": seats, "customer": customer})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["hold_id"])


async def confirm(client: httpx.AsyncClient, hold_id: str, key: str,
                  token: str = "tok_ok") -> httpx.Response:  # noqa: S107 - a test card token
    return await client.post(f"/v1/holds/{hold_id}/confirm", json=pay(token), headers={"Idempotency-Key": key})


async def hold_record(ctx: Engine, show_id: int, hold_id: str) -> dict[str, str]:
    return dict(await ctx.redis.hgetall(ctx.keys.hold(show_id, hold_id)))




def http(context: Engine) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(context.settings, engine=context))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


# -- 1. the provider -------------------------------------------------------------------


class TwoStepProvider(SimulatedProvider):
    """Stands for a real provider named by BOXOFFICE_PAYMENT_PROVIDER: it only authorizes
    at first, and takes the money (into the simulated ledger) when captured."""

    name = "two-step"

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.authorized: dict[str, tuple[int, str]] = {}

    async def authorize(self, key: str, token: str, amount: int, currency: str) -> Charge:
        if token != "tok_ok":
            return await super().authorize(key, token, amount, currency)
        self.authorized[key] = (amount, currency)
        return Charge(key, ChargeStatus.AUTHORIZED, None, amount, currency)

    async def capture(self, key: str) -> Charge:
        amount, currency = self.authorized.pop(key)
        return await super().authorize(key, "tok_ok", amount, currency)



async def test_the_simulated_provider_charges_once_per_key_and_keeps_books(ctx: Engine) -> None:
    provider = ctx.payments
    first = await provider.authorize("k-1", "tok_ok", 1200, "EUR")
    again = await provider.authorize("k-1", "tok_ok", 1200, "EUR")
    assert first.status is ChargeStatus.CAPTURED and again.reference == first.reference
    assert (await provider.authorize("k-2", "tok_decline", 1200, "EUR")).status is ChargeStatus.DECLINED
    with pytest.raises(ProviderUnavailable):
        await provider.authorize("k-3", "tok_error", 1200, "EUR")
    assert (await provider.refund("k-1")).status is ChargeStatus.REFUNDED
    assert (await provider.lookup("k-1")).status is ChargeStatus.REFUNDED  # type: ignore[union-attr]
    assert await provider.lookup("k-2") is None and await provider.lookup("k-3") is None
    books = await audit(ctx)
    assert (books.charges, books.refunds) == (1, 1)


async def test_a_provider_plugs_in_by_configuration_and_may_capture_apart(
        tuned: Tuned, show: ShowRef) -> None:
    context = await tuned(payment_provider="tests.sales.test_confirm:TwoStepProvider")
    assert isinstance(context.payments, TwoStepProvider)
    async with http(context) as client:
        hold_id = await hold(client, show.show_id, show.seat_ids[:2])
        answer = await confirm(client, hold_id, "key-1")
    assert answer.status_code == 201, answer.text
    assert context.payments.authorized == {}, "the engine captured what it authorized"
    books = await audit(context)
    books.assert_consistent()
    assert (books.charges, books.bookings) == (1, 1)


# -- 2. confirm ------------------------------------------------------------------------


async def test_confirm_books_and_answers_only_after_the_commit(ctx: Engine, client: httpx.AsyncClient,
                                                               show: ShowRef, database_url: str) -> None:
    seats = show.seat_ids[:2]
    hold_id = await hold(client, show.show_id, seats)
    answer = await confirm(client, hold_id, "key-1")
    assert answer.status_code == 201, answer.text
    booking = answer.json()
    assert booking["seats"] == sorted(seats) and booking["status"] == "confirmed" and booking["amount"] > 0
    # Another connection sees the whole sale the moment the answer arrives.
    with psycopg.connect(database_url) as conn:
        sold = {r[0] for r in conn.execute("SELECT seat_id FROM booked_seats WHERE booking_id = %s",
                                           (booking["booking_id"],))}
        payment = conn.execute("SELECT status, amount FROM payments WHERE booking_id = %s",
                               (booking["booking_id"],)).fetchone()
        key = conn.execute("SELECT booking_id FROM idempotency_keys WHERE hold_id = %s AND key = 'key-1'",
                           (hold_id,)).fetchone()
    assert sold == set(seats) and payment == ("captured", booking["amount"]) and key == (booking["booking_id"],)
    assert (await client.get(f"/v1/bookings/{booking['booking_id']}")).json() == booking
    held = (await client.get(f"/v1/holds/{hold_id}")).json()
    assert held["status"] == "confirmed" and held["booking_id"] == booking["booking_id"]
    seat_map = {s["id"]: s["status"] for s in (await client.get(f"/v1/shows/{show.show_id}/seats")).json()["seats"]}
    assert [seat_map[s] for s in seats] == ["booked", "booked"]
    books = await audit(ctx)
    books.assert_consistent()
    assert (books.charges, books.bookings, books.refunds) == (1, 1, 0)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_declined_payment_books_nothing_and_the_hold_stays_until_its_deadline(
        ctx: Engine, client: httpx.AsyncClient, show: ShowRef) -> None:
    hold_id = await hold(client, show.show_id, show.seat_ids[:2])
    before = (await client.get(f"/v1/holds/{hold_id}")).json()
    declined = await confirm(client, hold_id, "key-1", "tok_decline")
    assert declined.status_code == 402 and declined.json()["error"] == "payment_declined"
    after = (await client.get(f"/v1/holds/{hold_id}")).json()
    assert after["status"] == "active" and after["expires_at"] == before["expires_at"]
    assert (await audit(ctx)).charges == 0
    # The customer tries another card, with the same key: it books.
    retried = await confirm(client, hold_id, "key-1", "tok_ok")
    assert retried.status_code == 201, retried.text
    books = await audit(ctx)
    books.assert_consistent()
    assert (books.charges, books.bookings) == (1, 1)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_provider_outage_answers_503_and_charges_and_books_nothing(
        ctx: Engine, client: httpx.AsyncClient, show: ShowRef) -> None:
    hold_id = await hold(client, show.show_id, show.seat_ids[:1])
    answer = await confirm(client, hold_id, "key-1", "tok_error")
    assert answer.status_code == 503 and answer.json()["error"] == "unavailable"
    assert int(answer.headers["Retry-After"]) > 0
    assert (await client.get(f"/v1/holds/{hold_id}")).json()["status"] == "active"
    books = await audit(ctx)
    assert (books.charges, books.bookings, books.pending) == (0, 0, 0)
    assert (await confirm(client, hold_id, "key-1")).status_code == 201


async def test_a_confirm_after_expiry_is_410_and_never_takes_the_seats_of_the_next_customer(
        ctx: Engine, client: httpx.AsyncClient, show: ShowRef) -> None:
    seats = show.seat_ids[:2]
    # A hold made a hold time ago: its deadline has passed.
    long_ago = await redis_now_ms(ctx) - ctx.gateway.hold_ttl_ms - 1000
    late = await ctx.holds.hold(show.show_id, seats, "ana@example.org", now_ms=long_ago)
    assert (await confirm(client, late.hold_id, "key-1")).status_code == 410
    bob = await hold(client, show.show_id, seats, "bob@example.org")
    answer = await confirm(client, late.hold_id, "key-2")
    assert answer.status_code == 410 and answer.json()["error"] == "hold_expired"
    assert (await client.get(f"/v1/holds/{bob}")).json()["status"] == "active"
    books = await audit(ctx)
    assert (books.charges, books.bookings) == (0, 0)


async def test_the_pin_keeps_a_hold_alive_while_its_payment_runs(tuned: Tuned, show: ShowRef) -> None:
    context = await tuned(hold_ttl_s=1)
    async with http(context) as client:
        hold_id = await hold(client, show.show_id, show.seat_ids[:2])
        answer = await confirm(client, hold_id, "key-1", "tok_slow")  # 2 s: past the hold's 1 s
    assert answer.status_code == 201, answer.text
    (await audit(context)).assert_consistent()


async def test_a_stale_confirm_cannot_commit_once_a_newer_one_holds_the_fence(
        tuned: Tuned, show: ShowRef) -> None:
    context = await tuned(confirm_pin_s=1, payment_provider=GATED)
    async with http(context) as client:
        hold_id = await hold(client, show.show_id, show.seat_ids[:2])
        slow = asyncio.create_task(confirm(client, hold_id, "key-slow", "tok_slow"))
        await _pin_lapsed(context, show.show_id, hold_id)
        # The slow confirm's pin lapsed while it pays: a newer confirm takes the hold.
        fresh = await confirm(client, hold_id, "key-fresh")
        context.payments.gate.set()  # type: ignore[attr-defined]
        stale = await slow
    assert fresh.status_code == 201, fresh.text
    assert stale.status_code == 409 and stale.json()["status"] == "confirmed", stale.text
    books = await audit(context)
    books.assert_consistent()
    assert (books.charges, books.bookings, books.refunds) == (2, 1, 1)


async def test_the_fencing_token_shuts_out_a_confirm_whose_pin_lapsed(ctx: Engine, show: ShowRef) -> None:
    held = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    now = await redis_now_ms(ctx)

    async def begin(at_ms: int) -> list[Any]:
        return list(await ctx.gateway.call("confirm_begin", show.show_id, held.hold_id, 1000, f"at-{at_ms}",
                                           now_ms=at_ms))

    async def check(fence: int, at_ms: int) -> int:
        return int(await ctx.gateway.call("confirm_check", show.show_id, held.hold_id, fence, 1000, now_ms=at_ms))

    stale = int((await begin(now))[1])
    assert int((await begin(now + 999))[0]) == ScriptCode.CONFIRM_IN_PROGRESS, "a live pin is exclusive"
    assert await check(stale, now + 1000) == 0, "a lapsed pin does not commit"
    fresh = int((await begin(now + 1001))[1])
    assert fresh > stale
    assert await check(stale, now + 1002) == 0 and await check(fresh, now + 1002) == 1
    payment = PaymentRecord("pay_" + "x" * 22, held.hold_id, show.show_id, "k", 100, "EUR", stale,
                            "ana@example.org", held.seats, "key")
    with pytest.raises(PinLost):
        await ctx.confirmations.commit_sale(payment, stale)
    assert (await audit(ctx)).bookings == 0


async def test_a_confirm_whose_hold_ran_out_and_whose_seats_went_elsewhere_is_refunded(
        ctx: Engine, tuned: Tuned, show: ShowRef) -> None:
    context = await tuned(hold_ttl_s=1, confirm_pin_s=1, payment_provider=GATED)
    seats = show.seat_ids[:2]
    async with http(context) as client:
        hold_id = await hold(client, show.show_id, seats)
        slow = asyncio.create_task(confirm(client, hold_id, "key-1", "tok_slow"))
        await _pin_lapsed(context, show.show_id, hold_id)
        await eventually(lambda: _status_is(context, hold_id, "expired"))
        bob = await ctx.holds.hold(show.show_id, seats, "bob@example.org")  # a 300 s hold
        context.payments.gate.set()  # type: ignore[attr-defined]
        answer = await slow
        assert answer.status_code == 410 and "refunded" in answer.json()["message"], answer.text
    assert (await ctx.holds.hold_status(bob.hold_id)).status.value == "active"
    books = await audit(context)
    books.assert_consistent()
    assert (books.charges, books.bookings, books.refunds) == (1, 0, 1)


@pytest.mark.parametrize("hold_ttl_s", [300, 1], ids=["hold-still-active", "hold-expired-seats-free"])
async def test_a_confirm_that_lost_its_pin_books_when_the_seats_are_still_free(
        tuned: Tuned, show: ShowRef, hold_ttl_s: int) -> None:
    context = await tuned(hold_ttl_s=hold_ttl_s, confirm_pin_s=1, payment_provider=GATED)
    async with http(context) as client:
        hold_id = await hold(client, show.show_id, show.seat_ids[:2])
        slow = asyncio.create_task(confirm(client, hold_id, "key-1", "tok_slow"))
        await _pin_lapsed(context, show.show_id, hold_id)
        expected = "active" if hold_ttl_s == 300 else "expired"
        await eventually(lambda: _status_is(context, hold_id, expected))
        context.payments.gate.set()  # type: ignore[attr-defined]
        answer = await slow
    assert answer.status_code == 201, answer.text
    books = await audit(context)
    books.assert_consistent()
    assert (books.charges, books.bookings, books.refunds) == (1, 1, 0)


async def _pin_lapsed(context: Engine, show_id: int, hold_id: str) -> None:
    """Waits until a confirm has pinned the hold and that pin's time has run out."""
    await context.payments.waiting.wait()  # type: ignore[attr-defined]
    record = await hold_record(context, show_id, hold_id)
    assert record["status"] == "confirming"
    await eventually(lambda: _later_than(context, int(record["pinned_until"])))


async def _later_than(context: Engine, ms: int) -> bool:
    return await redis_now_ms(context) > ms


async def _status_is(context: Engine, hold_id: str, status: str) -> bool:
    return (await context.holds.hold_status(hold_id)).status.value == status


async def test_postgresql_refuses_a_double_sale_even_when_redis_is_wrong(
        ctx: Engine, tuned: Tuned, client: httpx.AsyncClient, show: ShowRef) -> None:
    seat, other = show.seat_ids[:2]
    assert await ctx.holds.seat_statuses(show.show_id) == {}, "our Redis knows the show: all free"
    # The seat is sold through another Redis namespace: PostgreSQL knows, our Redis does
    # not (as after a failover to a replica that missed the last writes).
    elsewhere = await tuned(key_prefix=f"{ctx.settings.key_prefix}x")
    async with http(elsewhere) as other_client:
        sold = await hold(other_client, show.show_id, [seat])
        assert (await confirm(other_client, sold, "key-1")).status_code == 201
    second = await hold(client, show.show_id, [seat, other], "bob@example.org")
    answer = await confirm(client, second, "key-2")
    assert answer.status_code == 409 and "refunded" in answer.json()["message"], answer.text
    books = await audit(ctx)
    books.assert_consistent()
    assert (books.charges, books.bookings, books.refunds) == (2, 1, 1)
    statuses = await ctx.holds.seat_statuses(show.show_id)
    assert statuses.get(seat) is SeatStatus.BOOKED and other not in statuses, "Redis learnt the truth"


async def test_a_charge_that_lands_after_the_reconciler_gave_up_is_refunded(tuned: Tuned, show: ShowRef) -> None:
    context = await tuned(confirm_grace_s=0, payment_provider=GATED)
    async with http(context) as client:
        hold_id = await hold(client, show.show_id, show.seat_ids[:2])
        slow = asyncio.create_task(confirm(client, hold_id, "key-1", "tok_slow"))
        await context.payments.waiting.wait()  # type: ignore[attr-defined]
        # The provider is slower than the grace time: the reconciler finds nothing charged.
        await eventually(lambda: _reconciled(context, "failed"))
        context.payments.gate.set()  # type: ignore[attr-defined]
        answer = await slow
        assert answer.status_code == 503 and "refunded" in answer.json()["message"], answer.text
        assert (await client.get(f"/v1/holds/{hold_id}")).json()["status"] == "active"
        books = await audit(context)
        books.assert_consistent()
        assert (books.charges, books.bookings, books.refunds) == (1, 0, 1)
        assert (await confirm(client, hold_id, "key-1", "tok_ok")).status_code == 201


async def test_the_reconciler_gives_back_a_charge_whose_refund_was_cut_off(tuned: Tuned, show: ShowRef) -> None:
    context = await tuned(confirm_grace_s=0)
    held = await context.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    records = context.payment_records
    payment = await records.open(hold_id=held.hold_id, show_id=show.show_id, fence=1, customer=held.customer,
                                 seats=held.seats, amount=2000, currency="EUR", client_key="key-1", attempt=1)
    await context.payments.authorize(payment.provider_key, "tok_ok", payment.amount, payment.currency)
    # Decided "refund", then the process died before the provider was told.
    assert await records.settle(payment.id, PaymentStatus.REFUNDED)
    assert (await audit(context)).problems, "a charge stands without a booking"
    await eventually(lambda: _reconciled(context, "refunded"))
    books = await audit(context)
    books.assert_consistent()
    assert (books.charges, books.bookings, books.refunds) == (1, 0, 1)
    assert (await context.reconciler.reconcile_once()).refunded == 0, "settled: not looked at again"


async def _reconciled(context: Engine, outcome: str) -> int:
    """One reconciler pass; how many payments it gave `outcome` (times are kept to the second,
    so a row can wait up to a second past the grace time)."""
    return int(getattr(await context.reconciler.reconcile_once(), outcome))


# -- 3. idempotency --------------------------------------------------------------------


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_one_key_sent_twenty_times_at_once_books_and_charges_once(
        ctx: Engine, client: httpx.AsyncClient, show: ShowRef) -> None:
    hold_id = await hold(client, show.show_id, show.seat_ids[:3])
    answers = await asyncio.gather(*(confirm(client, hold_id, "same-key") for _ in range(20)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers if a.status_code != 201]
    assert len({a.json()["booking_id"] for a in answers}) == 1
    assert len({a.content for a in answers}) == 1, "every replay is the same booking, byte for byte"
    later = await confirm(client, hold_id, "same-key")
    assert later.status_code == 201 and later.json() == answers[0].json()
    other = await confirm(client, hold_id, "another-key")
    assert other.status_code == 409 and other.json()["error"] == "hold_not_active"
    books = await audit(ctx)
    books.assert_consistent()
    assert (books.charges, books.bookings) == (1, 1)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_two_keys_racing_for_one_hold_book_it_once(ctx: Engine, client: httpx.AsyncClient,
                                                         show: ShowRef) -> None:
    hold_id = await hold(client, show.show_id, show.seat_ids[:2])
    answers = await asyncio.gather(*(confirm(client, hold_id, f"key-{i % 2}") for i in range(10)))
    won = [a for a in answers if a.status_code == 201]
    lost = [a for a in answers if a.status_code != 201]
    assert won and len({a.json()["booking_id"] for a in won}) == 1
    assert all(a.status_code == 409 and a.json()["error"] == "hold_not_active" for a in lost)
    winner_key = won[0].request.headers["Idempotency-Key"]
    assert all(a.request.headers["Idempotency-Key"] == winner_key for a in won)
    books = await audit(ctx)
    books.assert_consistent()
    assert (books.charges, books.bookings) == (1, 1)


async def test_a_confirm_without_a_valid_key_or_token_is_refused_before_anything_happens(
        ctx: Engine, client: httpx.AsyncClient, show: ShowRef) -> None:
    hold_id = await hold(client, show.show_id, show.seat_ids[:1])
    missing = await client.post(f"/v1/holds/{hold_id}/confirm", json=pay())
    bad_token = await confirm(client, hold_id, "k", "tok ok")
    assert (missing.status_code, bad_token.status_code) == (422, 422)
    assert (await client.post("/v1/holds/H1-nope/confirm", json=pay(), headers={"Idempotency-Key": "k"})
            ).status_code == 404
    assert (await client.get("/v1/bookings/bk_doesnotexistatall0000")).status_code == 404
    assert (await audit(ctx)).charges == 0


# -- 5. a wiped Redis --------------------------------------------------------------------


async def test_after_redis_is_wiped_sales_come_back_from_postgresql_and_lost_holds_are_expired(
        ctx: Engine, client: httpx.AsyncClient, show: ShowRef, redis_server: RedisServer) -> None:
    sold_seats, held_seats = show.seat_ids[:2], show.seat_ids[2:4]
    sold_hold = await hold(client, show.show_id, sold_seats)
    booking = (await confirm(client, sold_hold, "key-1")).json()
    lost_hold = await hold(client, show.show_id, held_seats, "bob@example.org")

    redis_server.restart_empty()

    # The very first request after the wipe is served: the pool reconnects by itself.
    seat_map = await client.get(f"/v1/shows/{show.show_id}/seats")
    assert seat_map.status_code == 200, seat_map.text
    statuses = {s["id"]: s["status"] for s in seat_map.json()["seats"]}
    assert [statuses[s] for s in sold_seats + held_seats] == ["booked", "booked", "available", "available"]
    lost = await client.get(f"/v1/holds/{lost_hold}")
    assert lost.status_code == 200 and lost.json()["status"] == "expired"
    paid = (await client.get(f"/v1/holds/{sold_hold}")).json()
    assert (paid["status"], paid["booking_id"], paid["seats"]) == ("confirmed", booking["booking_id"], sold_seats)
    assert (await confirm(client, lost_hold, "key-2")).status_code == 410
    replay = await confirm(client, sold_hold, "key-1")
    assert replay.status_code == 201 and replay.json() == booking
    other = await confirm(client, sold_hold, "key-3")
    assert other.status_code == 409 and other.json()["status"] == "confirmed"
    again = await hold(client, show.show_id, held_seats, "carla@example.org")
    assert (await confirm(client, again, "key-4")).status_code == 201
    books = await audit(ctx)
    books.assert_consistent()
    assert (books.charges, books.bookings) == (2, 2)


# -- 6. two hundred clients ----------------------------------------------------------------


async def test_two_hundred_clients_confirming_overlapping_holds_and_replaying_keys(
        ctx: Engine, client: httpx.AsyncClient) -> None:
    """50 holds of 2 seats; each gets 4 confirms from 2 keys (one key declines on every
    other hold) while 10 of them are released and their seats held and confirmed by
    someone else at the same time: 200 concurrent clients in all."""
    show = await pick_show(ctx, min_seats=120)
    rng = random.Random(4)
    holds = [await hold(client, show.show_id, show.seat_ids[2 * i : 2 * i + 2], f"c{i}@example.org")
             for i in range(50)]
    answers: dict[tuple[str, str], list[httpx.Response]] = defaultdict(list)

    async def confirmer(i: int) -> None:
        hold_id = holds[i % 50]
        key = f"{hold_id[-6:]}-{(i // 50) % 2}"
        token = "tok_decline" if key.endswith("1") and i % 2 else "tok_ok"
        answers[(hold_id, key)].append(await confirm(client, hold_id, key, token))

    async def rival(i: int) -> None:
        released = await client.delete(f"/v1/holds/{holds[i]}")
        if released.status_code != 204:
            return
        seats = show.seat_ids[2 * i : 2 * i + 2]
        answer = await client.post(f"/v1/shows/{show.show_id}/holds",
                                   json={"seats": seats, "customer": f"rival{i}@example.org"})
        if answer.status_code == 201:
            rival_hold = answer.json()["hold_id"]
            answers[(rival_hold, "rival")].append(await confirm(client, rival_hold, "rival"))

    clients = [confirmer(i) for i in range(190)] + [rival(i) for i in rng.sample(range(50), 10)]
    rng.shuffle(clients)
    await asyncio.wait_for(asyncio.gather(*clients), timeout=60)

    codes = [a.status_code for replies in answers.values() for a in replies]
    assert set(codes) <= {201, 402, 409, 410}, [a.text for r in answers.values() for a in r if a.status_code >= 500]
    bookings_per_hold: dict[str, set[str]] = defaultdict(set)
    for (hold_id, _key), replies in answers.items():
        booked = {a.json()["booking_id"] for a in replies if a.status_code == 201}
        assert len(booked) <= 1, "one key, one booking"
        bookings_per_hold[hold_id] |= booked
    assert all(len(b) <= 1 for b in bookings_per_hold.values()), "one hold, one booking"
    books = await audit(ctx)
    books.assert_consistent()
    assert books.bookings == sum(len(b) for b in bookings_per_hold.values()) >= 40
    async with ctx.sql.connect() as conn:
        sold, distinct = (await conn.execute(text(
            "SELECT count(*), count(DISTINCT seat_id) FROM booked_seats WHERE show_id = :s"),
            {"s": show.show_id})).one()
        payments = dict(list(await conn.execute(text("SELECT status, count(*) FROM payments GROUP BY status"))))
    assert sold == distinct == 2 * books.bookings
    assert payments.get("captured") == books.bookings and "pending" not in payments
    seat_map = (await client.get(f"/v1/shows/{show.show_id}/seats")).json()
    assert seat_map["counts"]["booked"] == sold
