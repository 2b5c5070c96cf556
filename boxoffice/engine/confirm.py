"""Confirm and pay, write-through (docs/CONFIRM.md):
1. pin the hold under a fresh fencing token (lua/confirm_begin);
2. record the payment intent (engine/payment_records.py), then charge the provider;
3. commit booking, booked seats, payment and idempotency key in one SQL transaction,
   after proving the pin is still ours (lua/confirm_check);
4. mark the seats booked in Redis (lua/confirm_finish).
A charge whose confirm lost its pin (it lapsed, or the process died and the reconciler
took over) goes through `finish_charged`: booked when the hold is still the customer's
or its seats are free again (lua/confirm_reclaim), refunded otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import Histogram
from redis.exceptions import RedisError
from sqlalchemy import bindparam, text
from sqlalchemy.exc import IntegrityError

from boxoffice.engine import metrics
from boxoffice.engine.bookings import Booking, Bookings
from boxoffice.engine.errors import (
    BoxOfficeError,
    HoldExpired,
    HoldNotActive,
    NotFound,
    PaymentDeclined,
    ScriptCode,
    ShowClosed,
    Unavailable,
)
from boxoffice.engine.ids import is_grant_id, new_attempt_id, new_booking_id
from boxoffice.engine.limits import MAX_SEATS_PER_CUSTOMER
from boxoffice.engine.payment_records import PaymentRecord, PaymentRecords, PaymentStatus
from boxoffice.engine.payments import ChargeStatus, ProviderUnavailable
from boxoffice.engine.redis.gateway import Pin, PinRefused
from boxoffice.engine.sales import Sale, SaleWriter

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from boxoffice.engine.catalog import Catalog
    from boxoffice.engine.holds import Holds
    from boxoffice.engine.payments import PaymentProvider
    from boxoffice.engine.redis.gateway import ShowScripts

log = logging.getLogger(__name__)

# How long a confirm waits for another confirm of the same hold (a twin with the same
# key, or a payment still running) before answering 409 hold_not_active "confirming".
WAIT_FOR_OTHER_CONFIRM_S = 15.0
POLL_S = 0.05

STEP_SECONDS = Histogram(
    "boxoffice_confirm_step_seconds",
    "Time spent in each step of a confirm (replay: idempotency lookup in PostgreSQL; pin, check,"
    " mark: Redis scripts; intent, commit: PostgreSQL; payment: the provider; total: the whole"
    " confirm in the engine)",
    ["step"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


@contextlib.contextmanager
def timed(step: str) -> Iterator[None]:
    began = time.perf_counter()
    try:
        yield
    finally:
        STEP_SECONDS.labels(step).observe(time.perf_counter() - began)


@dataclass(frozen=True)
class PinnedHold:
    hold_id: str
    show_id: int
    fence: int
    seats: list[str]
    customer: str


class PinLost(Exception):
    """The pin is not this confirm's any more (lapsed, or fenced out by a newer confirm)."""


class SaleRefused(Exception):
    """PostgreSQL refused the sale: a seat is sold, or the hold already has its booking."""


class PaymentDecided(Exception):
    """The payment row left 'pending' elsewhere: its outcome is not ours to decide."""


# Called with the step a confirm just finished (after_pin, after_intent, after_charge,
# after_commit): nothing in production; the crash tests kill the process there
# (tests/support/crashable.py).
Checkpoint = Callable[[str], None]


def no_checkpoint(step: str) -> None:
    pass


class Confirmations:
    """The confirm sequence, and booking or refunding a captured charge (the reconciler's
    way too). Marked bookings are reported through `on_marked` (the reconciler notes them
    in PostgreSQL in batches)."""

    def __init__(self, sql: AsyncEngine, gateway: ShowScripts, catalog: Catalog, holds: Holds,
                 bookings: Bookings, records: PaymentRecords, payments: PaymentProvider, pin_ms: int,
                 on_marked: Callable[[str], None], checkpoint: Checkpoint = no_checkpoint) -> None:
        self.gateway = gateway
        self.catalog = catalog
        self.holds = holds
        self.bookings = bookings
        self.records = records
        self.payments = payments
        self.pin_ms = pin_ms
        self.on_marked = on_marked
        self.checkpoint = checkpoint
        # Reads of immutable rows need no transaction (no BEGIN/ROLLBACK round trips).
        self.reads = sql.execution_options(isolation_level="AUTOCOMMIT")
        self.sales = SaleWriter(sql)

    # -- the confirm ---------------------------------------------------------------

    async def confirm(self, hold_id: str, idempotency_key: str, token: str) -> Booking:
        with timed("total"):
            return await self._confirm(hold_id, idempotency_key, token)

    async def _confirm(self, hold_id: str, idempotency_key: str, token: str) -> Booking:
        show_id = self.holds.parse_hold_id(hold_id)
        for _ in range(3):
            begun = await self._begin(hold_id, show_id, idempotency_key)
            if isinstance(begun, Booking):
                return begun
            pinned, attempts = begun
            self.checkpoint("after_pin")
            amount, currency = await self._price(pinned)
            try:
                with timed("intent"):
                    payment = await self.records.open(
                        hold_id=hold_id, show_id=show_id, fence=pinned.fence, customer=pinned.customer,
                        seats=pinned.seats, amount=amount, currency=currency, client_key=idempotency_key,
                        attempt=attempts + 1)
            except IntegrityError:
                # A twin with this key recorded the same attempt first: let it finish. The pin
                # is not let go: the twin confirms under it (the same attempt, the same fence).
                continue
            break
        else:
            raise HoldNotActive("another confirm of this hold is still running; try again shortly",
                                status="confirming")
        self.checkpoint("after_intent")
        try:
            with timed("payment"):
                charge = await self.payments.authorize(payment.provider_key, token, amount, currency)
                if charge.status is ChargeStatus.AUTHORIZED:
                    charge = await self.payments.capture(payment.provider_key)
        except ProviderUnavailable as exc:
            await self.records.settle(payment.id, PaymentStatus.FAILED)
            await self.abort(pinned.show_id, hold_id, pinned.fence)
            raise Unavailable("the payment provider is unavailable; nothing was charged or booked") from exc
        if charge.status is not ChargeStatus.CAPTURED:
            await self.records.settle(payment.id, PaymentStatus.DECLINED, provider_settled=True)
            await self.abort(pinned.show_id, hold_id, pinned.fence)
            raise PaymentDeclined("the payment was declined; the hold stays active until it expires")
        self.checkpoint("after_charge")
        try:
            outcome = await self.finish_charged(payment, pinned.fence)
        except BoxOfficeError:
            raise
        except Exception as exc:
            # The money is taken: this confirm cannot say "nothing changed". The reconciler
            # books or refunds it; the same confirm (same Idempotency-Key) answers the outcome.
            log.warning("confirm of %s cut off after the charge: %r", hold_id, exc)
            raise Unavailable("the payment was taken and is being completed; repeat this confirm with the"
                              " same Idempotency-Key for its outcome (it will not charge again)") from exc
        if isinstance(outcome, Booking):
            return outcome
        raise lost_sale_error(outcome)

    async def _begin(self, hold_id: str, show_id: int, key: str) -> Booking | tuple[PinnedHold, int]:
        """Pins the hold: (pin, earlier attempts of this key), or the booking this key already
        made. Waits while another confirm of the hold is running."""
        deadline = time.monotonic() + WAIT_FOR_OTHER_CONFIRM_S
        while True:
            with timed("replay"):
                state = await self.records.key_state(hold_id, key)
            if state.booking_id is not None:
                return await self.bookings.get(state.booking_id)
            if not state.in_flight:
                with timed("pin"):
                    pin = await self.gateway.confirm_begin(show_id, hold_id, self.pin_ms,
                                                          confirm_attempt_id(hold_id, key, state.attempts))
                if isinstance(pin, Pin):
                    return PinnedHold(hold_id, show_id, pin.fence, pin.seats, pin.customer), state.attempts
                if pin.code != ScriptCode.CONFIRM_IN_PROGRESS:
                    # A twin may have finished between our look-up and the script.
                    state = await self.records.key_state(hold_id, key)
                    if state.booking_id is not None:
                        return await self.bookings.get(state.booking_id)
                    raise await self._refusal(hold_id, pin)
            if time.monotonic() > deadline:
                raise HoldNotActive("another confirm of this hold is still running; try again shortly",
                                    status="confirming")
            await asyncio.sleep(POLL_S)

    async def _refusal(self, hold_id: str, refused: PinRefused) -> BoxOfficeError:
        code = refused.code
        if code == ScriptCode.NOT_ACTIVE:
            return HoldNotActive(f"the hold is {refused.status}", status=refused.status)
        if code == ScriptCode.UNKNOWN_HOLD and await self.bookings.booking_of_hold(hold_id) is not None:
            # A confirmed hold Redis lost (wiped): PostgreSQL still knows it was sold.
            return HoldNotActive("the hold is confirmed", status="confirmed")
        if code == ScriptCode.UNKNOWN_HOLD and is_grant_id(hold_id):
            return NotFound("no such hold")
        return HoldExpired("the hold has expired")

    async def _price(self, pinned: PinnedHold) -> tuple[int, str]:
        show = await self.catalog.show(pinned.show_id)
        plan = await self.catalog.hall_plan(show.hall_id)
        return sum(show.prices[plan.by_id[seat].category] for seat in pinned.seats), show.currency

    async def abort(self, show_id: int, hold_id: str, fence: int) -> None:
        """Lets go of a pin: the hold is active again until its own deadline."""
        await self.gateway.confirm_abort(show_id, hold_id, fence)

    # -- a captured charge: book it or give it back ----------------------------------

    async def finish_charged(self, payment: PaymentRecord, fence: int | None) -> Booking | str:
        """Books a payment the provider captured, under `fence` (None: take the hold back
        first). Returns the booking, or the hold's status when the seats could not be
        booked; then the payment is refunded."""
        pin_to_release: int | None = None
        reclaimed = refused = False
        hold_status = ""
        while True:
            if fence is not None:
                try:
                    return await self.commit_sale(payment, fence)
                except PinLost:
                    pass
                except (SaleRefused, PaymentDecided) as exc:
                    pin_to_release, refused = fence, isinstance(exc, SaleRefused)
                    break
            if reclaimed:
                break
            reclaimed = True
            reclaimed_fence = await self.gateway.confirm_reclaim(
                payment.show_id, payment.hold_id, payment.fence, self.pin_ms, payment.customer, new_attempt_id(),
                MAX_SEATS_PER_CUSTOMER, payment.seats)
            if isinstance(reclaimed_fence, str):
                hold_status = reclaimed_fence
                break
            fence = reclaimed_fence
        booking = await self._undo_or_adopt(payment)
        if booking is not None:
            return booking
        if refused:
            # Redis showed free what PostgreSQL had sold: Redis learns the truth, and a
            # hold that can never be paid ends (its other seats go back).
            await self._mark_sold(payment)
        if pin_to_release is not None:
            await self.abort(payment.show_id, payment.hold_id, pin_to_release)
        if refused:
            with contextlib.suppress(HoldNotActive):
                await self.holds.release(payment.hold_id)
        if not hold_status:
            hold_status = (await self.holds.hold_status(payment.hold_id)).status.value
        return hold_status

    async def _undo_or_adopt(self, payment: PaymentRecord) -> Booking | None:
        """After a failed commit: the booking when someone else booked this payment, else
        None once the payment is refunded."""
        status, booking_id = await self.records.status(payment.id)
        if status is PaymentStatus.PENDING and not await self.records.settle(payment.id, PaymentStatus.REFUNDED):
            status, booking_id = await self.records.status(payment.id)
        if status is PaymentStatus.CAPTURED:
            assert booking_id is not None
            booking = await self.bookings.get(booking_id)
            if booking.status == "confirmed":  # a cancelled booking's seats are not to be marked again
                await self.mark_booked(payment.show_id, payment.hold_id, booking_id, booking.seats)
            return booking
        await self.refund_at_provider(payment)
        return None

    async def _mark_sold(self, payment: PaymentRecord) -> None:
        """Marks in Redis the bookings PostgreSQL holds for these seats or this hold."""
        async with self.reads.connect() as conn:
            rows = await conn.execute(
                text("SELECT b.id, b.hold_id, s.seat_id FROM bookings b JOIN booked_seats s ON s.booking_id = b.id"
                     " WHERE b.hold_id = :hold OR (s.show_id = :show AND s.seat_id IN :seats)"
                     ).bindparams(bindparam("seats", expanding=True)),
                {"hold": payment.hold_id, "show": payment.show_id, "seats": payment.seats})
            sold: dict[tuple[str, str], list[str]] = {}
            for booking_id, hold_id, seat in rows:
                sold.setdefault((booking_id, hold_id), []).append(seat)
        for (booking_id, hold_id), seats in sold.items():
            await self.mark_booked(payment.show_id, hold_id if hold_id == payment.hold_id else "", booking_id, seats)

    async def refund_at_provider(self, payment: PaymentRecord) -> None:
        """Gives a charge back (idempotent). A provider that fails now is tried again by the
        reconciler: the row stays marked unsettled."""
        try:
            await self.payments.refund(payment.provider_key)
        except ProviderUnavailable:
            log.warning("refund of %s failed; the reconciler will retry", payment.id)
            return
        await self.records.provider_settled(payment.id)

    async def commit_sale(self, payment: PaymentRecord, fence: int) -> Booking:
        """Step 3 (one transaction, only while the pin is provably ours), then step 4."""
        show_id, hold_id = payment.show_id, payment.hold_id
        with timed("check"):
            ours = await self.gateway.confirm_check(show_id, hold_id, fence, self.pin_ms)
        if not ours:
            raise PinLost(hold_id)
        show = await self.catalog.show(show_id)
        plan = await self.catalog.hall_plan(show.hall_id)
        sale = Sale(new_booking_id(), payment.id, show_id, show.hall_id, hold_id, payment.customer, payment.amount,
                    payment.currency, datetime.now(UTC).replace(microsecond=0),
                    {seat: show.prices[plan.by_id[seat].category] for seat in payment.seats}, payment.idempotency_key)
        try:
            with timed("commit"):
                written = await self.sales.write(sale)
        except IntegrityError as exc:
            # UNIQUE (show_id, seat_id) or one booking per hold: the last line of defence held.
            metrics.integrity_violation("sale_refused")
            raise SaleRefused(hold_id) from exc
        if not written:
            raise PaymentDecided(payment.id)
        self.checkpoint("after_commit")
        seats = sorted(payment.seats)
        await self.mark_booked(show_id, hold_id, sale.booking_id, seats)
        return Booking(sale.booking_id, show_id, seats, payment.customer, payment.amount, payment.currency,
                       "confirmed", sale.created, self.bookings.cancel_until(show.starts_at))

    async def mark_booked(self, show_id: int, hold_id: str, booking_id: str, seats: list[str]) -> None:
        """Step 4. The sale is durable already: if Redis fails here the answer is still the
        booking, and the reconciler marks the seats from PostgreSQL."""
        try:
            with timed("mark"):
                await self.gateway.confirm_finish(show_id, hold_id, booking_id, seats)
        except RedisError:
            log.warning("booking %s committed but not marked in Redis; the reconciler will", booking_id)
            return
        self.on_marked(booking_id)


def confirm_attempt_id(hold_id: str, idempotency_key: str, earlier_attempts: int) -> str:
    """The name of this key's next attempt at the hold, the same for every retry of it: a
    confirm whose pin was taken but whose answer was lost (a timeout) finds its own pin again
    (boxoffice/lua/confirm_begin-1.lua) instead of waiting for it to lapse."""
    named = f"{hold_id}|{idempotency_key}|{earlier_attempts}".encode()
    return "at_" + hashlib.sha256(named).hexdigest()[:32]


def lost_sale_error(hold_status: str) -> BoxOfficeError:
    """The answer to a confirm whose payment was taken but could not be booked (refunded)."""
    if hold_status in ("closed", "started"):
        return ShowClosed(f"the show has {'started' if hold_status == 'started' else 'been closed'};"
                          " the payment was refunded", reason=hold_status)
    if hold_status in ("", "expired"):
        return HoldExpired("the hold ran out before the payment completed; the payment was refunded")
    if hold_status == "active":
        return Unavailable("the payment could not be completed in time and was refunded;"
                           " the hold is still active: try again")
    return HoldNotActive(f"the hold is {hold_status}; the payment was refunded", status=hold_status)
