"""Step 3 of a confirm: booking, booked seats, idempotency key and the payment's capture,
written in ONE transaction. On PostgreSQL that is one statement (data-modifying CTEs, run
in autocommit): a single round trip, the hot path's biggest saving. The embedded SQLite
takes the same rows statement by statement inside one transaction.

The payment row gates the rest: nothing is written unless this call moves the payment out
of 'pending', so a payment decided elsewhere (by the reconciler, or a twin) books nothing.
UNIQUE (show_id, seat_id) and one booking per hold are the last line of defence: a
violation raises IntegrityError and nothing is written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from boxoffice.engine.db import db_time, is_sqlite


@dataclass(frozen=True)
class Sale:
    booking_id: str
    payment_id: str
    show_id: int
    hall_id: int
    hold_id: str
    customer: str
    amount: int
    currency: str
    created: datetime
    seat_prices: dict[str, int]
    idempotency_key: str | None


SALE_STATEMENT = text("""
WITH paid AS (
    UPDATE payments SET status = 'captured', booking_id = :booking, updated_at = CURRENT_TIMESTAMP
    WHERE id = :payment AND status = 'pending' RETURNING id),
booking AS (
    INSERT INTO bookings (id, show_id, hold_id, customer, amount, currency, created_at)
    SELECT :booking, :show, :hold, :customer, :amount, :currency, :created FROM paid RETURNING id),
seats AS (
    INSERT INTO booked_seats (booking_id, show_id, hall_id, seat_id, amount)
    SELECT booking.id, :show, :hall, sold.seat, sold.amount FROM booking,
        unnest(CAST(:seats AS text[]), CAST(:amounts AS integer[])) AS sold (seat, amount)),
client_key AS (
    INSERT INTO idempotency_keys (hold_id, key, booking_id)
    SELECT :hold, CAST(:key AS text), booking.id FROM booking WHERE CAST(:key AS text) IS NOT NULL)
SELECT count(*) FROM booking""")


class _NotPending(Exception):
    pass


class SaleWriter:
    def __init__(self, sql: AsyncEngine) -> None:
        self.sql = sql
        self.autocommit = sql.execution_options(isolation_level="AUTOCOMMIT")

    async def write(self, sale: Sale) -> bool:
        """Writes the sale; False when the payment was no longer pending (nothing written)."""
        if is_sqlite(self.sql):
            return await self._write_statement_by_statement(sale)
        async with self.autocommit.connect() as conn:
            written = (await conn.execute(SALE_STATEMENT, {
                "booking": sale.booking_id, "payment": sale.payment_id, "show": sale.show_id,
                "hall": sale.hall_id, "hold": sale.hold_id, "customer": sale.customer, "amount": sale.amount,
                "currency": sale.currency, "created": sale.created, "seats": list(sale.seat_prices),
                "amounts": list(sale.seat_prices.values()), "key": sale.idempotency_key,
            })).scalar_one()
        return int(written) == 1

    async def _write_statement_by_statement(self, sale: Sale) -> bool:
        try:
            async with self.sql.begin() as conn:
                await self._insert_rows(conn, sale)  # first: the payment row refers to the booking
                moved = await conn.execute(
                    text("UPDATE payments SET status = 'captured', booking_id = :b, updated_at = CURRENT_TIMESTAMP"
                         " WHERE id = :id AND status = 'pending'"),
                    {"b": sale.booking_id, "id": sale.payment_id})
                if moved.rowcount != 1:
                    raise _NotPending
        except _NotPending:
            return False  # the transaction rolled back: nothing written
        return True

    @staticmethod
    async def _insert_rows(conn: AsyncConnection, sale: Sale) -> None:
        await conn.execute(
            text("INSERT INTO bookings (id, show_id, hold_id, customer, amount, currency, created_at)"
                 " VALUES (:id, :show, :hold, :customer, :amount, :currency, :created)"),
            {"id": sale.booking_id, "show": sale.show_id, "hold": sale.hold_id, "customer": sale.customer,
             "amount": sale.amount, "currency": sale.currency, "created": db_time(conn, sale.created)})
        rows: list[dict[str, Any]] = [
            {"b": sale.booking_id, "show": sale.show_id, "hall": sale.hall_id, "seat": seat, "amount": amount}
            for seat, amount in sale.seat_prices.items()]
        await conn.execute(
            text("INSERT INTO booked_seats (booking_id, show_id, hall_id, seat_id, amount)"
                 " VALUES (:b, :show, :hall, :seat, :amount)"), rows)
        if sale.idempotency_key is not None:
            await conn.execute(
                text("INSERT INTO idempotency_keys (hold_id, key, booking_id) VALUES (:h, :k, :b)"),
                {"h": sale.hold_id, "k": sale.idempotency_key, "b": sale.booking_id})
