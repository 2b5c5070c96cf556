"""Confirm and pay, write-through (shared/DESIGN.md, "Confirm"):
1. pin the hold under a fresh fencing token (lua/confirm_begin);
2. record the payment intent, then charge the provider with our idempotency key;
3. commit booking, booked seats, payment and idempotency key in one SQL transaction,
   after proving the pin is still ours (lua/confirm_check);
4. mark the seats booked in Redis (lua/confirm_finish).
The payment row decides who finishes a payment: whoever moves it out of 'pending' (a
live confirm or the reconciler) owns the outcome, so a charge ends in exactly one booking
or one refund."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from engine.db import db_time, rfc3339
from engine.errors import (
    HoldExpired,
    HoldNotActive,
    NotFound,
    PaymentDeclined,
    ScriptCode,
    Unavailable,
)
from engine.ids import BOOKING_PATTERN, new_booking_id, new_payment_id
from engine.payments import ChargeStatus, ProviderUnavailable

if TYPE_CHECKING:
    from engine.service import Context

# Least pin time that must remain when the sale is committed: the commit takes
# milliseconds, so a pin with this much left cannot lapse under it.
COMMIT_MARGIN_MS = 5_000
WAIT_FOR_OTHER_CONFIRM_S = 15.0


@dataclass(frozen=True)
class PinnedHold:
    hold_id: str
    show_id: int
    fence: int
    seats: list[str]
    customer: str


class SaleLost(Exception):
    """The pin lapsed or the seats went elsewhere before the sale could commit."""


def fault_point(ctx: Context, name: str) -> None:
    """Test-only: BOXOFFICE_FAULT_POINT=<name> kills this process right here."""
    if ctx.settings.fault_point == name:
        os.kill(os.getpid(), signal.SIGKILL)


class Bookings:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def confirm(self, hold_id: str, idempotency_key: str, token: str) -> dict[str, Any]:
        ctx = self.ctx
        show_id = ctx.inventory.parse_hold_id(hold_id)
        replay = await self.by_idempotency_key(hold_id, idempotency_key)
        if replay is not None:
            return replay
        pinned = await self._pin(hold_id, show_id, idempotency_key)
        if isinstance(pinned, dict):
            return pinned
        fault_point(ctx, "after_pin")
        show = await ctx.catalog.show(show_id)
        plan = await ctx.catalog.hall_plan(show.hall_id)
        amount = sum(show.prices[plan.by_id[seat].category] for seat in pinned.seats)
        payment_id = new_payment_id()
        provider_key = f"{hold_id}:{pinned.fence}"
        await self._record_intent(payment_id, pinned, provider_key, amount, show.currency)
        try:
            charge = await ctx.payments.authorize(provider_key, token, amount, show.currency)
        except ProviderUnavailable as exc:
            await self._settle_payment(payment_id, "failed")
            await self._abort(pinned)
            raise Unavailable("the payment provider is unavailable; nothing was charged") from exc
        if charge.status is not ChargeStatus.CAPTURED:
            await self._settle_payment(payment_id, "declined")
            await self._abort(pinned)
            raise PaymentDeclined("the payment was declined; the hold stays active until it expires")
        fault_point(ctx, "after_charge")
        try:
            booking = await self.commit_sale(pinned, payment_id, amount, show.currency, idempotency_key)
        except SaleLost as exc:
            await self.refund(payment_id, provider_key)
            raise HoldExpired("the hold ran out before the payment completed; it was refunded") from exc
        fault_point(ctx, "after_commit")
        await self.mark_booked(pinned.show_id, hold_id, booking["booking_id"], pinned.seats)
        return booking

    async def _pin(self, hold_id: str, show_id: int, key: str) -> PinnedHold | dict[str, Any]:
        """Pins the hold, or answers the booking a concurrent twin with the same key made."""
        deadline = time.monotonic() + WAIT_FOR_OTHER_CONFIRM_S
        pin_ms = self.ctx.settings.confirm_pin_s * 1000
        while True:
            result = await self.ctx.inventory.run("confirm_begin", show_id, hold_id, pin_ms)
            code = int(result[0])
            if code == 1:
                seats = _text(result[2]).split(",")
                return PinnedHold(hold_id, show_id, int(result[1]), seats, _text(result[3]))
            if code == ScriptCode.CONFIRM_IN_PROGRESS and time.monotonic() < deadline:
                # Another confirm of this hold is paying; if it carries our key its
                # booking is ours too.
                await asyncio.sleep(0.05)
                replay = await self.by_idempotency_key(hold_id, key)
                if replay is not None:
                    return replay
                continue
            replay = await self.by_idempotency_key(hold_id, key)
            if replay is not None:
                return replay
            if code in (ScriptCode.EXPIRED, ScriptCode.UNKNOWN_HOLD):
                raise HoldExpired("the hold has expired")
            status = _text(result[1]) if len(result) > 1 else "confirming"
            raise HoldNotActive(f"the hold is {status}", status=status)

    async def _record_intent(self, payment_id: str, pinned: PinnedHold, provider_key: str,
                             amount: int, currency: str) -> None:
        async with self.ctx.sql.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO payments (id, hold_id, show_id, provider_key, provider, amount,"
                    " currency, status, fence, customer, seats)"
                    " VALUES (:id, :hold, :show, :key, :provider, :amount, :currency, 'pending',"
                    " :fence, :customer, :seats)"
                ),
                {"id": payment_id, "hold": pinned.hold_id, "show": pinned.show_id, "key": provider_key,
                 "provider": self.ctx.payments.name, "amount": amount, "currency": currency,
                 "fence": pinned.fence, "customer": pinned.customer, "seats": ",".join(pinned.seats)},
            )

    async def _settle_payment(self, payment_id: str, status: str) -> bool:
        """Moves a pending payment to a final status; False when someone else already did."""
        async with self.ctx.sql.begin() as conn:
            moved = await conn.execute(
                text("UPDATE payments SET status = :s, updated_at = CURRENT_TIMESTAMP"
                     " WHERE id = :id AND status = 'pending'"),
                {"s": status, "id": payment_id},
            )
        return moved.rowcount == 1

    async def _abort(self, pinned: PinnedHold) -> None:
        await self.ctx.inventory.run("confirm_abort", pinned.show_id, pinned.hold_id, pinned.fence)

    async def refund(self, payment_id: str, provider_key: str) -> None:
        if await self._settle_payment(payment_id, "refunded"):
            await self.ctx.payments.refund(provider_key)

    async def commit_sale(self, pinned: PinnedHold, payment_id: str, amount: int, currency: str,
                          idempotency_key: str | None) -> dict[str, Any]:
        """Step 3: one transaction, only while the pin is provably ours."""
        ctx = self.ctx
        ok = await ctx.scripts.run(
            "confirm_check",
            ctx.keys.show_keys(pinned.show_id),
            [ctx.keys.show_base(pinned.show_id), "", ctx.hold_ttl_ms, pinned.hold_id, pinned.fence,
             COMMIT_MARGIN_MS, ctx.settings.confirm_pin_s * 1000],
        )
        if int(ok) != 1:
            raise SaleLost("the pin is no longer ours")
        show = await ctx.catalog.show(pinned.show_id)
        plan = await ctx.catalog.hall_plan(show.hall_id)
        booking_id = new_booking_id()
        created = datetime.now(UTC).replace(microsecond=0)
        try:
            async with ctx.sql.begin() as conn:
                await conn.execute(
                    text("INSERT INTO bookings (id, show_id, hold_id, customer, amount, currency, created_at)"
                         " VALUES (:id, :show, :hold, :customer, :amount, :currency, :created)"),
                    {"id": booking_id, "show": pinned.show_id, "hold": pinned.hold_id,
                     "customer": pinned.customer, "amount": amount, "currency": currency,
                     "created": db_time(conn, created)},
                )
                await conn.execute(
                    text("INSERT INTO booked_seats (booking_id, show_id, hall_id, seat_id, amount)"
                         " VALUES (:b, :show, :hall, :seat, :amount)"),
                    [{"b": booking_id, "show": pinned.show_id, "hall": show.hall_id, "seat": seat,
                      "amount": show.prices[plan.by_id[seat].category]} for seat in pinned.seats],
                )
                if idempotency_key is not None:
                    await conn.execute(
                        text("INSERT INTO idempotency_keys (hold_id, key, booking_id) VALUES (:h, :k, :b)"),
                        {"h": pinned.hold_id, "k": idempotency_key, "b": booking_id},
                    )
                moved = await conn.execute(
                    text("UPDATE payments SET status = 'captured', booking_id = :b,"
                         " updated_at = CURRENT_TIMESTAMP WHERE id = :id AND status = 'pending'"),
                    {"b": booking_id, "id": payment_id},
                )
                if moved.rowcount != 1:
                    raise SaleLost("the payment was settled elsewhere")
        except IntegrityError as exc:
            # UNIQUE (show_id, seat_id): the last line of defence held.
            raise SaleLost("a seat was already sold") from exc
        return {"booking_id": booking_id, "show_id": str(pinned.show_id), "seats": sorted(pinned.seats),
                "customer": pinned.customer, "amount": amount, "currency": currency,
                "status": "confirmed", "created_at": rfc3339(created)}

    async def mark_booked(self, show_id: int, hold_id: str, booking_id: str, seats: list[str]) -> None:
        await self.ctx.inventory.run("confirm_finish", show_id, hold_id, booking_id, *seats)

    async def by_idempotency_key(self, hold_id: str, key: str) -> dict[str, Any] | None:
        async with self.ctx.sql.connect() as conn:
            row = (await conn.execute(
                text("SELECT booking_id FROM idempotency_keys WHERE hold_id = :h AND key = :k"),
                {"h": hold_id, "k": key},
            )).first()
        return None if row is None else await self.get(row[0])

    async def get(self, booking_id: str) -> dict[str, Any]:
        if not BOOKING_PATTERN.match(booking_id):
            raise NotFound("no such booking")
        async with self.ctx.sql.connect() as conn:
            row = (await conn.execute(
                text("SELECT id, show_id, customer, amount, currency, status, created_at"
                     " FROM bookings WHERE id = :id"),
                {"id": booking_id},
            )).first()
            if row is None:
                raise NotFound("no such booking")
            seats = [r[0] for r in await conn.execute(
                text("SELECT seat_id FROM booked_seats WHERE booking_id = :id ORDER BY seat_id"),
                {"id": booking_id},
            )]
        return {"booking_id": row[0], "show_id": str(row[1]), "seats": seats, "customer": row[2],
                "amount": row[3], "currency": row[4], "status": row[5], "created_at": rfc3339(row[6])}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
