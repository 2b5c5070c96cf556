"""Reading bookings back from PostgreSQL: a booking by its id, the booking a hold made,
and until when a booking may be cancelled. The confirm (engine/confirm.py), the hold
status of a hold Redis lost (engine/holds.py) and cancelling (engine/cancellations.py)
all read through here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from boxoffice.engine.catalog import Catalog
from boxoffice.engine.db import as_utc
from boxoffice.engine.errors import NotFound
from boxoffice.engine.ids import is_booking_id


@dataclass(frozen=True)
class Refund:
    amount: int
    currency: str
    refunded: bool  # False: asked of the provider, not yet settled


@dataclass(frozen=True)
class Booking:
    """A sale as PostgreSQL records it (api/shapes.py writes its JSON)."""

    booking_id: str
    show_id: int
    seats: list[str]
    customer: str
    amount: int
    currency: str
    status: str  # "confirmed" or "cancelled"
    created_at: datetime
    cancel_until: datetime | None  # None once cancelled
    refund: Refund | None = None


class Bookings:
    def __init__(self, sql: AsyncEngine, catalog: Catalog, cancel_cutoff_s: int) -> None:
        # Reads of immutable rows need no transaction (no BEGIN/ROLLBACK round trips).
        self.reads = sql.execution_options(isolation_level="AUTOCOMMIT")
        self.catalog = catalog
        self.cancel_cutoff_s = cancel_cutoff_s

    def cancel_until(self, starts_at: datetime) -> datetime:
        """When cancelling ends, for clients (a cancel decides on the database's clock)."""
        return starts_at - timedelta(seconds=self.cancel_cutoff_s)

    async def booking_of_hold(self, hold_id: str) -> str | None:
        async with self.reads.connect() as conn:
            row = (await conn.execute(text("SELECT id FROM bookings WHERE hold_id = :h"), {"h": hold_id})).first()
        return None if row is None else str(row[0])

    async def get(self, booking_id: str) -> Booking:
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
        if row[8] is not None:
            return Booking(row[0], int(row[1]), seats, row[2], row[3], row[4], "cancelled", as_utc(row[6]), None,
                           Refund(row[3], row[4], row[8] == "refunded"))
        starts_at = (await self.catalog.show(int(row[1]))).starts_at
        return Booking(row[0], int(row[1]), seats, row[2], row[3], row[4], row[5], as_utc(row[6]),
                       self.cancel_until(starts_at))
