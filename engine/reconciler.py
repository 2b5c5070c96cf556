"""Finishes or undoes every confirm that was cut off (crash, kill, lost connection).

- A payment still 'pending' after the grace time: ask the provider. Not charged (or
  declined): the payment fails and the hold's pin is let go. Charged: the sale is
  completed if the seats are still this hold's, or free again and taken back atomically
  (lua/confirm_reclaim); otherwise the charge is refunded.
- A payment marked 'refunded' whose provider charge is still captured (cut off between
  the two): refunded at the provider.
- A booking committed but not marked in Redis: marked from PostgreSQL (lua/confirm_finish
  is idempotent), for every booking younger than twice the pin time.
Runs at start and every `reconcile_interval_s`; several reconcilers at once are safe
because the payment row's status is the single point of decision."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import text

from engine.bookings import PinnedHold, SaleLost
from engine.db import db_time
from engine.errors import ScriptCode
from engine.payments import ChargeStatus

if TYPE_CHECKING:
    from engine.service import Context

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    completed: int = 0
    refunded: int = 0
    failed: int = 0
    redis_repaired: int = 0


class Reconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run_forever(self) -> None:
        while True:
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile pass failed; trying again")
            await asyncio.sleep(self.ctx.settings.reconcile_interval_s)

    async def reconcile_once(self) -> ReconcileReport:
        report = ReconcileReport()
        await self._finish_pending(report)
        await self._finish_refunds()
        await self._repair_redis(report)
        if report.completed or report.refunded or report.failed or report.redis_repaired:
            log.info("reconciled: %s", report)
        return report

    async def _finish_pending(self, report: ReconcileReport) -> None:
        ctx = self.ctx
        cutoff = datetime.now(UTC) - timedelta(seconds=ctx.settings.confirm_grace_s)
        async with ctx.sql.connect() as conn:
            rows = list(await conn.execute(
                text("SELECT id, hold_id, show_id, provider_key, amount, currency, fence, customer, seats"
                     " FROM payments WHERE status = 'pending' AND created_at < :cutoff"
                     " ORDER BY created_at LIMIT 500"),
                {"cutoff": db_time(conn, cutoff)},
            ))
        for payment_id, hold_id, show_id, key, amount, currency, fence, customer, seats in rows:
            charge = await ctx.payments.lookup(key)
            pinned = PinnedHold(hold_id, int(show_id), int(fence), seats.split(","), customer)
            if charge is None or charge.status is ChargeStatus.DECLINED:
                await ctx.bookings._settle_payment(payment_id, "failed")
                await ctx.inventory.run("confirm_abort", pinned.show_id, hold_id, pinned.fence)
                report.failed += 1
                continue
            if charge.status is ChargeStatus.REFUNDED:
                await ctx.bookings._settle_payment(payment_id, "refunded")
                continue
            reclaimed = await ctx.inventory.run(
                "confirm_reclaim", pinned.show_id, hold_id, pinned.fence,
                ctx.settings.confirm_pin_s * 1000, customer, *pinned.seats,
            )
            if int(reclaimed[0]) == 1:
                repinned = PinnedHold(hold_id, pinned.show_id, int(reclaimed[1]), pinned.seats, customer)
                try:
                    booking = await ctx.bookings.commit_sale(repinned, payment_id, amount, currency, None)
                except SaleLost:
                    await ctx.bookings.refund(payment_id, key)
                    report.refunded += 1
                    continue
                await ctx.bookings.mark_booked(pinned.show_id, hold_id, booking["booking_id"], pinned.seats)
                report.completed += 1
            else:
                await ctx.bookings.refund(payment_id, key)
                report.refunded += 1

    async def _finish_refunds(self) -> None:
        ctx = self.ctx
        since = datetime.now(UTC) - timedelta(hours=1)
        async with ctx.sql.connect() as conn:
            rows = list(await conn.execute(
                text("SELECT provider_key FROM payments WHERE status = 'refunded' AND updated_at > :since"),
                {"since": db_time(conn, since)},
            ))
        for (key,) in rows:
            charge = await ctx.payments.lookup(key)
            if charge is not None and charge.status is ChargeStatus.CAPTURED:
                await ctx.payments.refund(key)

    async def _repair_redis(self, report: ReconcileReport) -> None:
        ctx = self.ctx
        since = datetime.now(UTC) - timedelta(seconds=2 * ctx.settings.confirm_pin_s + 60)
        async with ctx.sql.connect() as conn:
            rows = list(await conn.execute(
                text("SELECT b.id, b.show_id, b.hold_id, s.seat_id FROM bookings b"
                     " JOIN booked_seats s ON s.booking_id = b.id WHERE b.created_at > :since"
                     " ORDER BY b.id"),
                {"since": db_time(conn, since)},
            ))
        bookings: dict[str, tuple[int, str, list[str]]] = {}
        for booking_id, show_id, hold_id, seat in rows:
            bookings.setdefault(booking_id, (int(show_id), hold_id, []))[2].append(seat)
        # One pipelined read finds the bookings Redis does not show as booked yet.
        pipe = ctx.redis.pipeline(transaction=False)
        for show_id, _hold, seats in bookings.values():
            pipe.hget(ctx.keys.show_keys(show_id)[2], seats[0])
        marks = await pipe.execute() if bookings else []
        for (booking_id, (show_id, hold_id, seats)), mark in zip(bookings.items(), marks, strict=True):
            if _text(mark) == f"b:{booking_id}":
                continue
            keys = ctx.keys.show_keys(show_id)
            answer = await ctx.scripts.run(
                "confirm_finish", keys,
                [ctx.keys.show_base(show_id), "", ctx.hold_ttl_ms, hold_id, booking_id, *seats],
            )
            if answer != ScriptCode.NOT_LOADED and int(answer[0]) > 0:
                report.redis_repaired += 1


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
