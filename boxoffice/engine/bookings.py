"""Reading bookings back from PostgreSQL: a booking by its id, the booking a hold made,
and until when a booking may be cancelled. The confirm (engine/confirm.py), the hold
status of a hold Redis lost (engine/holds.py) and cancelling (engine/cancellations.py)
all read through here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from boxoffice.engine.catalog import Catalog
from boxoffice.engine.db import rfc3339
from boxoffice.engine.errors import NotFound
from boxoffice.engine.ids import is_booking_id


class Bookings:
    def __init__(self, sql: AsyncEngine, catalog: Catalog, cancel_cutoff_s: int) -> None:
        # Reads of immutable rows need no transaction (no BEGIN/ROLLBACK round trips).
        self.reads = sql.execution_options(isolation_level="AUTOCOMMIT")
        self.catalog = catalog
        self.cancel_cutoff_s = cancel_cutoff_s

    def cancel_until(self, starts_at: datetime) -> str:
        """When cancelling ends, for clients (a cancel decides on the database's clock)."""
        return rfc3339(starts_at - timedelta(seconds=self.cancel_cutoff_s))

    async def booking_of_hold(self, hold_id: str) -> str | None:
        async with self.reads.connect() as conn:
            row = (await conn.execute(text("SELECT id FROM bookings WHERE hold_id = :h"), {"h": hold_id})).first()
        return None if row is None else str(row[0])

    async def get(self, booking_id: str) -> dict[str, Any]:
        """The booking: confirmed, or cancelled with its refund (engine/cancellations.py)."""
        if not is_booking_id(booking_id):
            raise NotFound("no such booking")
        async with self.reads.connect() as conn:
            row = (await conn.execute(
                text("SELECT b.id, b.show_id, b.customer, b.amount, b.currency, b.status, b.created_at,"
                     " c.seats, c.status FROM bookings b LEFT JOIN cancellations c ON c.booking_id = b.id"
                     " WHERE b.id = :id"),
                {"id": booking_id},
            )).first()
            if row is None:
                raise NotFound("no such booking")
            if row[7] is not None:
                # A cancelled booking's seats left booked_seats: the cancellation keeps them.
                seats = sorted(str(row[7]).split(","))
            else:
                seats = [r[0] for r in await conn.execute(
                    text("SELECT seat_id FROM booked_seats WHERE booking_id = :id ORDER BY seat_id"),
                    {"id": booking_id},
                )]
        booking = {"booking_id": row[0], "show_id": str(row[1]), "seats": seats, "customer": row[2],
                   "amount": row[3], "currency": row[4], "status": row[5], "created_at": rfc3339(row[6])}
        if row[8] is None:
            booking["cancel_until"] = self.cancel_until((await self.catalog.show(int(row[1]))).starts_at)
        else:
            booking["status"] = "cancelled"
            booking["refund"] = {"amount": row[3], "currency": row[4],
                                 "status": "refunded" if row[8] == "refunded" else "pending"}
        return booking
