"""Finishes or undoes every confirm that was cut off (crash, kill, lost connection).
Runs at start and every `reconcile_interval_s`; in PostgreSQL one process at a time does
the work (an advisory lock), and even two at once would be safe: the payment row's
status is the single point of decision (engine/payment_records.py).

- A payment still 'pending' after the grace time: ask the provider. Not charged (nothing
  found, declined, an authorization expired): the payment fails and the pin is let go.
  Charged: the sale is completed if the hold is still the customer's, or its seats are
  free again and taken back atomically (lua/confirm_reclaim); otherwise it is refunded.
- The watch: a payment that failed or was refunded but whose provider side was not yet
  seen to agree is looked up until the provider's answer is final. A charge or a live
  authorization found there is refunded (voided) at once. Only a final answer (declined,
  refunded, expired: payments.ChargeStatus.final) ends the watch, or the settle window
  (`payment_settle_window_s`, BOXOFFICE_PAYMENT_SETTLE_WINDOW_S) after the payment failed:
  "nothing found" is not final, since the request that timed out may still be in flight
  and land. Look-ups thin out as the payment ages (each once it is twice as old as at the
  last), so a day's watch costs about a dozen per payment even after a long outage.
  The window's default, 24 h, is far past the life of any request in flight (seconds to
  minutes) and matches how long providers keep idempotency keys (Stripe: 24 h); an
  authorization that lands later still takes no money unless captured, which only this
  engine does, and lapses by itself (card authorizations live for days).
- A cancellation cut off (engine/cancellations.py): its intent recorded more than the
  grace time ago and its seats not yet back in Redis. Finished from its row: the refund
  (idempotent at the provider), the booked seats let go, the seats given back in Redis.
- A booking committed but not marked in Redis (the process died between steps 3 and 4,
  or Redis failed): marked from PostgreSQL (lua/confirm_finish is idempotent). The first
  pass after a start looks at every unmarked booking, later ones at those whose payment
  was captured more than two intervals ago (younger ones are being marked by their own
  confirm).

One clock per decision: every age of a row is measured on the database's clock against a
time the database wrote (payment_records, db.elapsed_s), never with the app's clock, which
may be off and is another clock on every host."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from boxoffice.engine import metrics
from boxoffice.engine.bookings import Booking
from boxoffice.engine.cancellations import Cancellations
from boxoffice.engine.confirm import Confirmations
from boxoffice.engine.db import elapsed_s, is_sqlite
from boxoffice.engine.errors import Unavailable
from boxoffice.engine.payment_records import PaymentRecord, PaymentRecords, PaymentStatus
from boxoffice.engine.payments import ChargeStatus, PaymentProvider, ProviderUnavailable
from boxoffice.engine.redis.gateway import ShowScripts
from boxoffice.engine.redis.gateway import text as reply_text
from boxoffice.engine.redis.keys import Keys

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every service process.
RECONCILE_LOCK_ID = 0x626F7263
REPAIR_BATCH = 1000


@dataclass
class ReconcileReport:
    completed: int = 0  # cut-off confirms booked
    refunded: int = 0  # charges given back
    failed: int = 0  # cut-off confirms that had charged nothing
    redis_repaired: int = 0  # bookings whose seats Redis did not show as booked
    cancelled: int = 0  # cut-off cancellations finished

    def __bool__(self) -> bool:
        return bool(self.completed or self.refunded or self.failed or self.redis_repaired or self.cancelled)


@dataclass(frozen=True)
class ReconcileTimes:
    """The reconciler's settings (engine/settings.py)."""

    grace_s: float  # confirm_grace_s: a confirm or cancel this old is cut off
    settle_window_s: float  # payment_settle_window_s: how long the watch looks
    interval_s: float  # reconcile_interval_s: between passes


class Reconciler:
    """`marked`: the bookings this process's confirms marked in Redis (filled by
    Confirmations' on_marked), noted in PostgreSQL in batches by each pass."""

    def __init__(self, sql: AsyncEngine, redis: Any, keys: Keys, gateway: ShowScripts, payments: PaymentProvider,
                 records: PaymentRecords, confirmations: Confirmations, cancellations: Cancellations,
                 marked: deque[str], times: ReconcileTimes) -> None:
        self.sql = sql
        self.redis = redis
        self.keys = keys
        self.gateway = gateway
        self.payments = payments
        self.records = records
        self.confirmations = confirmations
        self.cancellations = cancellations
        self.marked = marked
        self.times = times

    async def run_forever(self) -> None:
        first = True
        while True:
            try:
                await self.reconcile_once(after_start=first)
                first = False
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile pass failed; trying again")
            await asyncio.sleep(self.times.interval_s)

    async def reconcile_once(self, after_start: bool = False) -> ReconcileReport:
        report = ReconcileReport()
        await self._note_marked()
        await self._sample_pending()
        async with self._exclusive() as ours:
            if ours:
                await self._finish_pending(report)
                await self._watch(report)
                await self._finish_cancellations(report)
                await self._repair_redis(report, after_start)
        if report:
            log.info("reconciled: %s", report)
        return report

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[bool]:
        """One reconciler at a time across processes; the lock dies with its connection."""
        if is_sqlite(self.sql):
            yield True
            return
        # A session lock on a connection held for the pass, in autocommit: no transaction
        # stays open meanwhile.
        async with self.sql.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            ours = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:id)"),
                                            {"id": RECONCILE_LOCK_ID})).scalar_one())
            try:
                yield ours
            finally:
                if ours:
                    await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": RECONCILE_LOCK_ID})

    async def _finish_pending(self, report: ReconcileReport) -> None:
        records, confirmations = self.records, self.confirmations
        for payment in await records.pending_before(self.times.grace_s):
            charge = await self.payments.lookup(payment.provider_key)
            if charge is not None and charge.status is ChargeStatus.AUTHORIZED:
                charge = await self.payments.capture(payment.provider_key)  # cut off before capture
            if charge is None or charge.status in (ChargeStatus.DECLINED, ChargeStatus.EXPIRED):
                # Nothing charged. Nothing found is not final: the watch (below) looks again.
                if await records.settle(payment.id, PaymentStatus.FAILED, provider_settled=charge is not None):
                    await confirmations.abort(payment.show_id, payment.hold_id, payment.fence)
                    report.failed += 1
            elif charge.status is ChargeStatus.REFUNDED:
                await records.settle(payment.id, PaymentStatus.REFUNDED, provider_settled=True)
            elif isinstance(await confirmations.finish_charged(payment, fence=None), Booking):
                report.completed += 1
            else:
                report.refunded += 1

    async def _finish_cancellations(self, report: ReconcileReport) -> None:
        cancellations = self.cancellations
        for cancellation in await cancellations.unfinished(self.times.grace_s):
            try:
                await cancellations.finish(cancellation)
            except Unavailable:
                log.warning("the payment provider is unavailable; cancellations go on next pass")
                return
            report.cancelled += 1

    async def _watch(self, report: ReconcileReport) -> None:
        records = self.records
        due = await records.watched_due(self.times.grace_s, self.times.settle_window_s)
        for payment, past_window in due:
            try:
                settled = await self._look_again(payment, past_window, report)
            except ProviderUnavailable:
                log.warning("the payment provider is unavailable; the watch goes on next pass")
                return
            if settled:
                await records.provider_settled(payment.id)
            else:
                await records.looked_up(payment.id)

    async def _look_again(self, payment: PaymentRecord, past_window: bool, report: ReconcileReport) -> bool:
        """One look at a watched payment; True when the watch over it may end."""
        payments = self.payments
        charge = await payments.lookup(payment.provider_key)
        if charge is None:
            return past_window
        if not charge.status.final:
            # Captured, or an authorization that could still be: give it back (void it) now.
            metrics.integrity_violation("charge_unbooked")
            charge = await payments.refund(payment.provider_key)
            report.refunded += 1
        return charge.status.final

    async def _sample_pending(self) -> None:
        """Every process counts, lock or not: the gauge is the highest over the workers, so
        it does not depend on which one holds the lock. Taken before the pass, a payment
        counted here is one a pass has not finished yet; one that stays counted pass after
        pass is stuck (the provider does not answer, or the pass fails)."""
        async with self.sql.connect() as conn:
            stuck = (await conn.execute(
                text(f"SELECT count(*) FROM payments WHERE status = 'pending'"
                     f" AND {elapsed_s(conn, 'created_at')} > :grace"),
                {"grace": self.times.grace_s})).scalar_one()
        metrics.PENDING_PAST_GRACE.set(int(stuck))

    async def _note_marked(self) -> None:
        marked = self.marked
        ids = [marked.popleft() for _ in range(len(marked))]
        if ids:
            await self._set_marked(ids)

    async def _set_marked(self, booking_ids: list[str]) -> None:
        statement = text("UPDATE bookings SET marked_at = CURRENT_TIMESTAMP WHERE id IN :ids").bindparams(
            bindparam("ids", expanding=True))
        async with self.sql.begin() as conn:
            for i in range(0, len(booking_ids), REPAIR_BATCH):
                await conn.execute(statement, {"ids": booking_ids[i : i + REPAIR_BATCH]})

    async def _repair_redis(self, report: ReconcileReport, after_start: bool) -> None:
        params: dict[str, float] = {"n": REPAIR_BATCH}
        async with self.sql.connect() as conn:
            old_enough = ""
            if not after_start:
                # A sale's age on the database's clock: its payment's capture, stamped by the
                # database in the sale's transaction (bookings.created_at is the app's clock).
                old_enough = (" AND EXISTS (SELECT 1 FROM payments p WHERE p.hold_id = bookings.hold_id"
                              f" AND p.booking_id = bookings.id AND {elapsed_s(conn, 'p.updated_at')} >= :age)")
                params["age"] = 2 * self.times.interval_s
            rows = list(await conn.execute(
                text("SELECT b.id, b.show_id, b.hold_id, s.seat_id FROM bookings b"
                     " JOIN booked_seats s ON s.booking_id = b.id WHERE b.id IN (SELECT id FROM bookings"
                     f" WHERE marked_at IS NULL{old_enough} ORDER BY created_at LIMIT :n)"),
                params,
            ))
        unmarked: dict[str, tuple[int, str, list[str]]] = {}
        for booking_id, show_id, hold_id, seat in rows:
            unmarked.setdefault(booking_id, (int(show_id), hold_id, []))[2].append(seat)
        if not unmarked:
            return
        # One pipelined read finds the bookings Redis does not show as booked.
        pipe = self.redis.pipeline(transaction=False)
        for show_id, _hold, seats in unmarked.values():
            for seat in seats:
                pipe.hget(self.keys.show_keys(show_id)[2], seat)
        marks = iter(await pipe.execute())
        for booking_id, (show_id, hold_id, seats) in unmarked.items():
            current = [reply_text(next(marks)) for _ in seats]
            if all(mark == f"b:{booking_id}" for mark in current):
                continue
            # A show Redis does not hold is loaded from PostgreSQL, bookings included.
            if await self.gateway.confirm_finish(show_id, hold_id, booking_id, seats, load=False) is not None:
                report.redis_repaired += 1
                metrics.integrity_violation("booking_unmarked")
        await self._set_marked(list(unmarked))
