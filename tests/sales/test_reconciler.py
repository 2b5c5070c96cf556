"""The reconciler: a failed payment stays under watch until the
provider's answer is final or the settle window has passed, so a capture that lands after
the first look is still refunded; and every age of a database row is measured on the
database's clock, so an app clock ahead of or behind it changes nothing. On the real
PostgreSQL and, where the engine's SQL differs, on the embedded SQLite too. Every test ends
with the audit of tests/support/sales.py."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, tzinfo
from typing import Any

import pytest
from sqlalchemy import text

from boxoffice.engine.db import is_sqlite
from boxoffice.engine.payment_records import PaymentRecord, PaymentStatus
from boxoffice.engine.payments import Charge, ChargeStatus, SimulatedProvider
from boxoffice.engine.wiring import Engine
from tests.sales.test_confirm import confirm, hold, http
from tests.support.backends import BOTH, Tuned
from tests.support.providers import GATED, GatedProvider
from tests.support.sales import audit, eventually
from tests.support.shows import ShowRef

HOUR = timedelta(hours=1)




class _Skewed(datetime):
    offset = timedelta(0)

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        return datetime.now(tz) + cls.offset


@pytest.fixture
def app_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[timedelta], None]]:
    """Sets the app's clock off the database's: every boxoffice module's `datetime.now`
    answers real time plus the offset (the database keeps the real time)."""

    def skew(offset: timedelta) -> None:
        clock = type("SkewedDatetime", (_Skewed,), {"offset": offset})
        for name, module in list(sys.modules.items()):
            current = getattr(module, "datetime", None) if name.startswith("boxoffice") else None
            if isinstance(current, type) and issubclass(current, datetime):
                monkeypatch.setattr(module, "datetime", clock)

    yield skew


class ScriptedProvider(SimulatedProvider):
    """The simulated provider whose `lookup` answers what the test scripted for a key (when
    it scripted anything), and which counts every look-up."""

    name = "scripted"

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.answers: dict[str, ChargeStatus] = {}
        self.looked_up: list[str] = []

    async def lookup(self, key: str) -> Charge | None:
        self.looked_up.append(key)
        if key in self.answers:
            return Charge(key, self.answers[key], "sim_scripted", 1000, "EUR")
        return await super().lookup(key)


SCRIPTED = "tests.sales.test_reconciler:ScriptedProvider"



async def open_payment(context: Engine, show: ShowRef, key: str = "key-1") -> PaymentRecord:
    """A payment row as a confirm writes it before calling the provider (pending)."""
    held = await context.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    return await context.payment_records.open(
        hold_id=held.hold_id, show_id=show.show_id, fence=1, customer=held.customer, seats=held.seats,
        amount=2000, currency="EUR", client_key=key, attempt=1)


async def move_back(context: Engine, table: str, row_id: str, seconds: int, *columns: str) -> None:
    """Moves a row's timestamps `seconds` into the past, by the database's own arithmetic: the
    row was written that long ago, as the database's clock counts."""
    async with context.sql.begin() as conn:
        if is_sqlite(conn):
            # SQLite keeps times as text: keep each value's own shape (CURRENT_TIMESTAMP's, or db_time's).
            moved = [f"{c} = CASE WHEN {c} LIKE '%+00:00' THEN strftime('%Y-%m-%d %H:%M:%S+00:00', {c},"
                     f" '-{seconds} seconds') ELSE datetime({c}, '-{seconds} seconds') END" for c in columns]
        else:
            moved = [f"{c} = {c} - make_interval(secs => {seconds})" for c in columns]
        await conn.execute(text(f"UPDATE {table} SET {', '.join(moved)} WHERE id = :id"), {"id": row_id})


async def payment_row(context: Engine, payment_id: str) -> dict[str, Any]:
    async with context.sql.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM payments WHERE id = :id"), {"id": payment_id})).one()
    return dict(row._mapping)


async def only_payment(context: Engine) -> dict[str, Any]:
    async with context.sql.connect() as conn:
        (payment_id,) = (await conn.execute(text("SELECT id FROM payments"))).one()
    return await payment_row(context, payment_id)


# -- 1. a failed payment is watched until the provider's answer is final ------------------


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_capture_that_lands_after_the_first_lookup_is_still_refunded(
        tuned: Tuned, show: ShowRef) -> None:
    context = await tuned(confirm_grace_s=0, payment_provider=SCRIPTED)
    provider = context.payments
    assert isinstance(provider, ScriptedProvider)
    async with http(context) as client:
        hold_id = await hold(client, show.show_id, show.seat_ids[:2])
        # The provider took the request but its answer was lost: the confirm gives up.
        answer = await confirm(client, hold_id, "key-1", "tok_timeout")
        assert answer.status_code == 503, answer.text
        payment = await only_payment(context)
        assert payment["status"] == "failed" and payment["provider_settled_at"] is None

        async def looked_up() -> bool:
            await context.reconciler.reconcile_once()
            return payment["provider_key"] in provider.looked_up

        await eventually(looked_up, timeout_s=5)
        assert (await audit(context)).charges == 0, "nothing had landed at the first look"

        (landed,) = await provider.land_in_flight()  # the request in flight lands now
        assert landed.status is ChargeStatus.CAPTURED
        assert (await audit(context)).problems, "a charge stands without a booking"
        refunded = await eventually(lambda: _reconciled(context, "refunded"), timeout_s=5)
        assert refunded == 1
        books = await audit(context)
        books.assert_consistent()
        assert (books.charges, books.bookings, books.refunds) == (1, 0, 1)
        assert (await payment_row(context, payment["id"]))["provider_settled_at"] is not None, \
            "refunded: the provider's answer is final"
        provider.looked_up.clear()
        await context.reconciler.reconcile_once()
        assert provider.looked_up == [], "a settled payment is not looked at again"
        # The customer's hold is still theirs: the retry with the same key books.
        assert (await confirm(client, hold_id, "key-1")).status_code == 201
    (await audit(context)).assert_consistent()


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_nothing_found_is_watched_until_the_settle_window_has_passed(
        tuned: Tuned, show: ShowRef) -> None:
    context = await tuned(confirm_grace_s=30, payment_settle_window_s=3600, payment_provider=SCRIPTED)
    provider = context.payments
    assert isinstance(provider, ScriptedProvider)
    records = context.payment_records
    payment = await open_payment(context, show)
    assert await records.settle(payment.id, PaymentStatus.FAILED)  # the provider was down
    # Failed a minute ago (past the grace): looked up, nothing there, still watched.
    await move_back(context, "payments", payment.id, 60, "created_at", "updated_at")
    await context.reconciler.reconcile_once()
    assert provider.looked_up == [payment.provider_key]
    assert (await payment_row(context, payment.id))["provider_settled_at"] is None, "nothing found is not final"
    # Two hours later the window has passed: one last look, then the watch ends.
    await move_back(context, "payments", payment.id, 7200, "created_at", "updated_at", "provider_checked_at")
    await context.reconciler.reconcile_once()
    assert provider.looked_up == [payment.provider_key] * 2
    assert (await payment_row(context, payment.id))["provider_settled_at"] is not None
    await context.reconciler.reconcile_once()
    assert len(provider.looked_up) == 2, "not looked at again"
    (await audit(context)).assert_consistent()


async def test_the_watch_looks_less_often_as_a_failed_payment_ages(tuned: Tuned, show: ShowRef) -> None:
    """A look-up at every pass for a whole day would hammer a provider just back from an
    outage: the next look comes once the payment is twice as old as at the last one."""
    context = await tuned(confirm_grace_s=30, payment_provider=SCRIPTED)
    provider = context.payments
    assert isinstance(provider, ScriptedProvider)
    payment = await open_payment(context, show)
    assert await context.payment_records.settle(payment.id, PaymentStatus.FAILED)
    # Failed 10 minutes ago, last looked at 2 minutes ago (at 8 minutes of age): not due.
    async with context.sql.begin() as conn:
        await conn.execute(text(
            "UPDATE payments SET updated_at = CURRENT_TIMESTAMP - interval '10 minutes',"
            " provider_checked_at = CURRENT_TIMESTAMP - interval '2 minutes' WHERE id = :id"), {"id": payment.id})
    await context.reconciler.reconcile_once()
    assert provider.looked_up == []
    # Last looked at 6 minutes ago (at 4 minutes of age): due.
    async with context.sql.begin() as conn:
        await conn.execute(text("UPDATE payments SET provider_checked_at = CURRENT_TIMESTAMP - interval '6 minutes'"
                                " WHERE id = :id"), {"id": payment.id})
    await context.reconciler.reconcile_once()
    assert provider.looked_up == [payment.provider_key]
    assert (await payment_row(context, payment.id))["provider_settled_at"] is None


@pytest.mark.parametrize("answer", [ChargeStatus.DECLINED, ChargeStatus.REFUNDED, ChargeStatus.EXPIRED])
async def test_a_final_answer_ends_the_watch_at_once(tuned: Tuned, show: ShowRef, answer: ChargeStatus) -> None:
    context = await tuned(confirm_grace_s=0, payment_provider=SCRIPTED)
    provider = context.payments
    assert isinstance(provider, ScriptedProvider)
    payment = await open_payment(context, show)
    assert await context.payment_records.settle(payment.id, PaymentStatus.FAILED)
    provider.answers[payment.provider_key] = answer
    await move_back(context, "payments", payment.id, 5, "created_at", "updated_at")
    report = await context.reconciler.reconcile_once()
    assert report.refunded == 0 and provider.looked_up == [payment.provider_key]
    assert (await payment_row(context, payment.id))["provider_settled_at"] is not None
    (await audit(context)).assert_consistent()


async def test_a_cut_off_confirm_whose_authorization_expired_fails_and_books_nothing(
        tuned: Tuned, show: ShowRef) -> None:
    context = await tuned(confirm_grace_s=0, payment_provider=SCRIPTED)
    provider = context.payments
    assert isinstance(provider, ScriptedProvider)
    payment = await open_payment(context, show)
    provider.answers[payment.provider_key] = ChargeStatus.EXPIRED
    await move_back(context, "payments", payment.id, 5, "created_at", "updated_at")
    report = await context.reconciler.reconcile_once()
    assert (report.failed, report.completed) == (1, 0)
    row = await payment_row(context, payment.id)
    assert row["status"] == "failed" and row["provider_settled_at"] is not None
    books = await audit(context)
    books.assert_consistent()
    assert books.bookings == 0


async def _reconciled(context: Engine, outcome: str) -> int:
    return int(getattr(await context.reconciler.reconcile_once(), outcome))


# -- 2. one clock: the database's ------------------------------------------------------------


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_an_app_clock_ahead_of_the_database_leaves_a_running_confirm_alone(
        tuned: Tuned, show: ShowRef, app_clock: Callable[[timedelta], None]) -> None:
    context = await tuned(confirm_grace_s=30, payment_provider=GATED)
    provider = context.payments
    assert isinstance(provider, GatedProvider)
    async with http(context) as client:
        hold_id = await hold(client, show.show_id, show.seat_ids[:2])
        paying = asyncio.create_task(confirm(client, hold_id, "key-1", "tok_slow"))
        try:
            await asyncio.wait_for(provider.waiting.wait(), 10)
            app_clock(HOUR)  # the reconciler's host runs an hour ahead of the database
            report = await context.reconciler.reconcile_once()
            assert report.failed == 0, f"a payment seconds old was taken from its running confirm: {report}"
            assert (await only_payment(context))["status"] == "pending"
        finally:
            provider.gate.set()
            answer = await asyncio.wait_for(paying, 10)
    assert answer.status_code == 201, answer.text
    books = await audit(context)
    books.assert_consistent()
    assert (books.charges, books.bookings, books.refunds) == (1, 1, 0)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize("left", ["pending payment", "failed payment charged", "booking not in redis"])
async def test_an_app_clock_behind_the_database_still_finishes_what_was_cut_off(
        tuned: Tuned, show: ShowRef, app_clock: Callable[[timedelta], None], monkeypatch: pytest.MonkeyPatch,
        left: str) -> None:
    context = await tuned(confirm_grace_s=30, reconcile_interval_s=10)
    records = context.payment_records
    if left == "booking not in redis":
        # Committed a minute ago by a process that died before it marked the seats in Redis.
        async def no_mark(*_: object) -> None:
            return None

        held = await context.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
        with monkeypatch.context() as patch:
            patch.setattr(context.confirmations, "mark_booked", no_mark)
            booking = await context.confirmations.confirm(held.hold_id, "key-1", "tok_ok")
        assert (await audit(context)).problems, "Redis does not show the sale"
        payment = await only_payment(context)
        await move_back(context, "payments", payment["id"], 60, "created_at", "updated_at")
        await move_back(context, "bookings", booking.booking_id, 60, "created_at")
    else:
        payment_record = await open_payment(context, show)
        if left == "failed payment charged":
            # Given up on a minute ago; the charge landed after all.
            assert await records.settle(payment_record.id, PaymentStatus.FAILED)
            await context.payments.authorize(payment_record.provider_key, "tok_ok", 2000, "EUR")
        await move_back(context, "payments", payment_record.id, 60, "created_at", "updated_at")
    app_clock(-HOUR)  # the reconciler's host runs an hour behind the database
    report = await context.reconciler.reconcile_once()
    done = {"pending payment": report.failed, "failed payment charged": report.refunded,
            "booking not in redis": report.redis_repaired}[left]
    assert done == 1, f"a {left} a minute old (grace 30 s) was left alone: {report}"
    books = await audit(context)
    books.assert_consistent()
    assert books.pending == 0


async def test_the_clock_tests_skew_the_clock_the_engine_reads(app_clock: Callable[[timedelta], None]) -> None:
    from boxoffice.engine import confirm

    app_clock(HOUR)
    assert confirm.datetime.now(tz=None) - datetime.now() > HOUR - timedelta(minutes=1)
