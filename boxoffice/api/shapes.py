"""The contract's JSON shapes of the engine's domain objects (docs/API.md), each written
once and used by the routes and the streams alike."""

from __future__ import annotations

from typing import Any

from boxoffice.engine.bookings import Booking
from boxoffice.engine.db import rfc3339
from boxoffice.engine.holds import Hold
from boxoffice.engine.times import ms_to_rfc3339


def hold_json(hold: Hold) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hold_id": hold.hold_id,
        "show_id": str(hold.show_id),
        "seats": hold.seats,
        "customer": hold.customer,
        "status": hold.status.value,
        "expires_at": ms_to_rfc3339(hold.expires_at_ms),
        "ttl_s": hold.ttl_s,
    }
    if hold.booking_id:
        body["booking_id"] = hold.booking_id
    return body


def entry_json(entry: dict[str, Any]) -> dict[str, Any]:
    """A waitlist entry as engine/waitlist.py answers it, its granted hold shaped."""
    hold = entry.get("hold")
    return {**entry, "hold": hold_json(hold)} if isinstance(hold, Hold) else entry


def booking_json(booking: Booking) -> dict[str, Any]:
    body: dict[str, Any] = {
        "booking_id": booking.booking_id,
        "show_id": str(booking.show_id),
        "seats": booking.seats,
        "customer": booking.customer,
        "amount": booking.amount,
        "currency": booking.currency,
        "status": booking.status,
        "created_at": rfc3339(booking.created_at),
    }
    if booking.refund is not None:
        body["refund"] = {"amount": booking.refund.amount, "currency": booking.refund.currency,
                          "status": "refunded" if booking.refund.refunded else "pending"}
    elif booking.cancel_until is not None:
        body["cancel_until"] = rfc3339(booking.cancel_until)
    return body
