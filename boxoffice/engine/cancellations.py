"""Cancelling a booking, crash-safe the way a confirm is (docs/API.md, "Cancelling a booking"):
1. record the intent (a `cancellations` row) in the same statement that checks the cutoff,
   so the decision is made once, on one clock: the database's, which stamped the show's
   start and every age the reconciler measures (Redis's clock decides holds, but a
   cancellation is a sale's business and must be decided with its record);
2. refund the booking's charge at the provider (idempotent by the payment's key);
3. in one transaction: delete the booked seats, mark the cancellation refunded;
4. give the seats back in Redis, waiters first (lua/cancel_booking).
Every step may be repeated: a cancel cut off anywhere is finished by the next cancel of
the booking (whatever its key) or by the reconciler. The booking row stays: a booking
with a cancellation is cancelled, and its refund never happens twice."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from boxoffice.engine.bookings import Booking, Bookings
from boxoffice.engine.catalog import Catalog
from boxoffice.engine.confirm import Checkpoint, no_checkpoint
from boxoffice.engine.db import elapsed_s
from boxoffice.engine.errors import CancelTooLate, NotFound, Unavailable
from boxoffice.engine.payments import PaymentProvider, ProviderUnavailable
from boxoffice.engine.redis.gateway import ShowScripts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cancellation:
    booking_id: str
    show_id: int
    seats: list[str]
    amount: int
    currency: str
    status: str  # pending | refunded
    released: bool

    @classmethod
    def from_row(cls, row: Any) -> Cancellation:
        return cls(row[0], int(row[1]), str(row[2]).split(","), int(row[3]), row[4], row[5], row[6] is not None)


COLUMNS = "booking_id, show_id, seats, amount, currency, status, released_at"


class Cancellations:
    """`checkpoint` is called with each step done (after_cancel_intent, after_refund):
    nothing in production; the crash tests kill the process there."""

    def __init__(self, sql: AsyncEngine, gateway: ShowScripts, catalog: Catalog, bookings: Bookings,
                 payments: PaymentProvider, cancel_cutoff_s: int,
                 checkpoint: Checkpoint = no_checkpoint) -> None:
        self.gateway = gateway
        self.catalog = catalog
        self.bookings = bookings
        self.payments = payments
        self.cancel_cutoff_s = cancel_cutoff_s
        self.checkpoint = checkpoint
        self.transactions = sql
        # Every statement stands alone but step 3's: autocommit saves round trips.
        self.sql = sql.execution_options(isolation_level="AUTOCOMMIT")

    async def cancel(self, booking_id: str, idempotency_key: str) -> Booking:
        """Cancels the booking (or finishes its cancellation) and answers it cancelled. A
        booking cancelled before answers the same, whatever the key: one refund only."""
        cancellation = await self.find(booking_id)
        if cancellation is None:
            booking = await self.bookings.get(booking_id)  # 404 for an unknown id
            cancellation = await self._record_intent(booking, idempotency_key)
            self.checkpoint("after_cancel_intent")
        if cancellation.status != "refunded" or not cancellation.released:
            await self.finish(cancellation)
        return await self.bookings.get(booking_id)

    async def find(self, booking_id: str) -> Cancellation | None:
        async with self.sql.connect() as conn:
            row = (await conn.execute(text(f"SELECT {COLUMNS} FROM cancellations WHERE booking_id = :b"),
                                      {"b": booking_id})).first()
        return None if row is None else Cancellation.from_row(row)

    async def _record_intent(self, booking: Booking, key: str) -> Cancellation:
        booking_id = booking.booking_id
        async with self.sql.connect() as conn:
            inserted = await conn.execute(
                text("INSERT INTO cancellations (booking_id, show_id, idempotency_key, seats, amount, currency,"
                     " status) SELECT :b, s.id, :key, :seats, :amount, :currency, 'pending' FROM shows s"
                     f" WHERE s.id = :show AND {elapsed_s(conn, 'CURRENT_TIMESTAMP', 's.starts_at')} > :cutoff"
                     " ON CONFLICT (booking_id) DO NOTHING"),
                {"b": booking_id, "key": key, "seats": ",".join(booking.seats), "amount": booking.amount,
                 "currency": booking.currency, "show": booking.show_id,
                 "cutoff": self.cancel_cutoff_s})
        found = await self.find(booking_id)  # ours, or a twin's that came first
        if found is None:
            assert inserted.rowcount == 0
            raise CancelTooLate(f"a booking can be cancelled until {self.cancel_cutoff_s} s before"
                                " its show starts", cutoff_s=self.cancel_cutoff_s)
        return found

    async def finish(self, cancellation: Cancellation) -> None:
        """Steps 2-4, each safe to repeat."""
        booking_id = cancellation.booking_id
        if cancellation.status == "pending":
            refund_status = await self._refund(booking_id)
            self.checkpoint("after_refund")
            async with self.transactions.begin() as conn:
                await conn.execute(text("DELETE FROM booked_seats WHERE booking_id = :b"), {"b": booking_id})
                await conn.execute(
                    text("UPDATE cancellations SET status = 'refunded', refund_status = :r,"
                         " updated_at = CURRENT_TIMESTAMP WHERE booking_id = :b AND status = 'pending'"),
                    {"b": booking_id, "r": refund_status})
            self.catalog.browse_cache.clear()
        try:
            await self.gateway.cancel_booking(cancellation.show_id, booking_id, cancellation.seats)
        except RedisError:
            log.warning("cancellation of %s not yet told to Redis; the reconciler will", booking_id)
            return
        async with self.sql.connect() as conn:
            await conn.execute(text("UPDATE cancellations SET released_at = CURRENT_TIMESTAMP"
                                    " WHERE booking_id = :b AND released_at IS NULL"), {"b": booking_id})

    async def _refund(self, booking_id: str) -> str:
        async with self.sql.connect() as conn:
            row = (await conn.execute(text("SELECT provider_key FROM payments WHERE booking_id = :b"),
                                      {"b": booking_id})).first()
        if row is None:
            raise NotFound("no payment for this booking")
        try:
            charge = await self.payments.refund(row[0])
        except ProviderUnavailable as exc:
            raise Unavailable("the payment provider is unavailable; the cancellation is recorded and its refund"
                              " will be made: repeat the request for its outcome") from exc
        return charge.status.value

    async def unfinished(self, age_s: float, limit: int = 500) -> list[Cancellation]:
        """Cancellations cut off (or still running) more than `age_s` ago, oldest first."""
        async with self.sql.connect() as conn:
            rows = await conn.execute(
                text(f"SELECT {COLUMNS} FROM cancellations WHERE released_at IS NULL"
                     f" AND {elapsed_s(conn, 'created_at')} > :age ORDER BY created_at LIMIT :limit"),
                {"age": age_s, "limit": limit})
            return [Cancellation.from_row(r) for r in rows]
