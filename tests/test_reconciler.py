"""The reconciler (issue 14, finding 6): every age of a database row is measured on the
database's clock, so an app clock ahead of or behind it changes nothing. On the real
PostgreSQL and, where the engine's SQL differs, on the embedded SQLite too. Every test ends
with the audit of tests/support/sales.py."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta, tzinfo
from typing import Any

import pytest
from sqlalchemy import text

from boxoffice.engine.db import is_sqlite
from boxoffice.engine.payment_records import PaymentRecord, PaymentStatus
from boxoffice.engine.payments import Charge, SimulatedProvider
from boxoffice.engine.service import Context, close_context, open_context
from tests.conftest import BOTH, ShowRef
from tests.support.sales import audit
from tests.test_confirm import confirm, hold, http

Tuned = Callable[..., Awaitable[Context]]
HOUR = timedelta(hours=1)


@pytest.fixture
async def tuned(ctx: Context) -> AsyncIterator[Tuned]:
    """Contexts with changed settings on the test's key prefix and database."""
    opened: list[Context] = []

    async def make(**changes: Any) -> Context:
        opened.append(await open_context(ctx.settings.with_changes(**changes), background=False))
        return opened[-1]

    yield make
    for context in opened:
        await close_context(context)


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


class GatedProvider(SimulatedProvider):
    """tok_slow approves when the test opens the gate: the test decides what happens while
    a payment runs, without racing a clock."""

    name = "gated"

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.waiting = asyncio.Event()
        self.gate = asyncio.Event()

    async def authorize(self, key: str, token: str, amount: int, currency: str) -> Charge:
        if token == "tok_slow":
            self.waiting.set()
            await self.gate.wait()
            token = "tok_ok"
        return await super().authorize(key, token, amount, currency)


GATED = "tests.test_reconciler:GatedProvider"


async def open_payment(context: Context, show: ShowRef, key: str = "key-1") -> PaymentRecord:
    """A payment row as a confirm writes it before calling the provider (pending)."""
    held = await context.inventory.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    return await context.bookings.records.open(
        hold_id=held.hold_id, show_id=show.show_id, fence=1, customer=held.customer, seats=held.seats,
        amount=2000, currency="EUR", client_key=key, attempt=1)


async def move_back(context: Context, table: str, row_id: str, seconds: int, *columns: str) -> None:
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


async def payment_row(context: Context, payment_id: str) -> dict[str, Any]:
    async with context.sql.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM payments WHERE id = :id"), {"id": payment_id})).one()
    return dict(row._mapping)


async def only_payment(context: Context) -> dict[str, Any]:
    async with context.sql.connect() as conn:
        (payment_id,) = (await conn.execute(text("SELECT id FROM payments"))).one()
    return await payment_row(context, payment_id)


# -- one clock: the database's ------------------------------------------------------------


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
    records = context.bookings.records
    if left == "booking not in redis":
        # Committed a minute ago by a process that died before it marked the seats in Redis.
        async def no_mark(*_: object) -> None:
            return None

        held = await context.inventory.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
        with monkeypatch.context() as patch:
            patch.setattr(context.bookings, "mark_booked", no_mark)
            booking = await context.bookings.confirm(held.hold_id, "key-1", "tok_ok")
        assert (await audit(context)).problems, "Redis does not show the sale"
        payment = await only_payment(context)
        await move_back(context, "payments", payment["id"], 60, "created_at", "updated_at")
        await move_back(context, "bookings", booking["booking_id"], 60, "created_at")
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
    from boxoffice.engine import bookings

    app_clock(HOUR)
    assert bookings.datetime.now(tz=None) - datetime.now() > HOUR - timedelta(minutes=1)
